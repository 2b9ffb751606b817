"""The papers' reported numbers (transcribed in ../shared/notes/paper-numbers.md), for "paper vs ours" tables, and the
one home of their prompt lists."""
from __future__ import annotations

# "Distilling Diversity and Control", Table 3's prompts: the paper prints only its row labels; these are the one wording
# every SDXL-scale run uses (divdistill-evaluate --write-diversity-csv, the hybrid and DT chapters)
TABLE3_PROMPTS = {"Sunset beach": "a sunset beach", "Cute puppy": "a cute puppy", "Futuristic city": "a futuristic city",
                  "Person": "a person", "Van Gogh art": "Van Gogh art"}

# "Distilling Diversity and Control", Table 3: mean pairwise DreamSim distance per prompt (SDXL, DMD2)
DIVERSITY_TABLE3 = {
    "Sunset beach": (0.396, 0.271, 0.373), "Cute puppy": (0.233, 0.199, 0.265),
    "Futuristic city": (0.237, 0.198, 0.283), "Person": (0.484, 0.347, 0.461), "Van Gogh art": (0.337, 0.305, 0.366),
    "Average": (0.337, 0.264, 0.350),
}  # (base, distilled, hybrid)

# Table 2 (SDXL-base vs DMD2 vs hybrid) and Table 4 (skip the first timestep)
TABLE2 = [
    {"method": "Base", "steps": 50, "FID": 12.74, "IS": 24.74, "CLIP": 31.83, "time_s": 9.22},
    {"method": "Distilled (DMD)", "steps": 4, "FID": 15.52, "IS": 27.20, "CLIP": 31.69, "time_s": 0.64},
    {"method": "Hybrid", "steps": 4, "FID": 10.79, "IS": 26.13, "CLIP": 32.12, "time_s": 0.64},
    {"method": "Skip first timestep", "steps": 3, "FID": 10.12, "IS": 24.69, "CLIP": 31.71, "time_s": 0.53},
]

# DDIL main table (SD v1.5-class teacher, COCO): FID@5K, CLIP, precision, recall, density, coverage
DDIL_TABLE = [
    {"model": "PD (4)", "fid5k": 23.34, "clip": 0.302, "precision": 0.595, "recall": 0.605, "density": 0.301, "coverage": 0.397},
    {"model": "PD + DDIL (4)", "fid5k": 22.42, "clip": 0.302, "precision": 0.603, "recall": 0.605, "density": 0.318, "coverage": 0.411},
    {"model": "LCM (4)", "fid5k": 24.39, "clip": 0.305, "precision": 0.668, "recall": 0.687, "density": 0.376, "coverage": 0.481},
    {"model": "LCM + Reflected", "fid5k": 24.25, "clip": 0.306, "precision": 0.670, "recall": 0.687, "density": 0.378, "coverage": 0.478},
    {"model": "LCM + DDIL", "fid5k": 23.44, "clip": 0.308, "precision": 0.672, "recall": 0.690, "density": 0.382, "coverage": 0.493},
    {"model": "LCM + Reflected + DDIL", "fid5k": 22.86, "clip": 0.309, "precision": 0.669, "recall": 0.692, "density": 0.381, "coverage": 0.499},
    {"model": "SSD1B-DMD2 (4)", "fid5k": 31.77, "clip": 0.320, "precision": 0.361, "recall": 0.605, "density": 0.136, "coverage": 0.196},
    {"model": "SSD1B-DMD2 + DDIL (4)", "fid5k": 27.72, "clip": 0.326, "precision": 0.426, "recall": 0.658, "density": 0.163, "coverage": 0.234},
]

# Which of our tiny recipes corresponds to which paper row
OURS_FOR_DDIL_ROW = {"PD (4)": "pd", "PD + DDIL (4)": "pd_ddil", "LCM (4)": "lcm", "LCM + Reflected": "lcm_reflected",
                     "LCM + DDIL": "lcm_ddil", "LCM + Reflected + DDIL": "lcm_ddil_reflected",
                     "SSD1B-DMD2 (4)": "dmd2", "SSD1B-DMD2 + DDIL (4)": "dmd2_ddil"}

# DDIL Table 9 (App. E): mixed rollouts of a 32-step CFG teacher and a 4-step PD(+DDIL) student, COCO-2017 5K.
# β = prior of the teacher per student transition: (FID, CLIP). β = 1 is the teacher alone (SD, 32 steps, CFG).
DDIL_TABLE9_BETA = {1.0: (22.50, 0.321), 0.8: (23.14, 0.319), 0.6: (22.33, 0.317), 0.4: (21.95, 0.313),
                    0.2: (21.92, 0.307), 0.0: (22.42, 0.302)}
# Switches at t: "T→S@t" = teacher down to x_t, then student; "S→T@t" the reverse. The extracted text lost the two
# sub-tables' captions; labels inferred from their CLIP trend and App. E.1 (../shared/notes/paper-numbers.md).
DDIL_TABLE9_SWITCH = {"T→S@749": (23.60, 0.309), "T→S@500": (23.80, 0.317), "T→S@250": (24.21, 0.320),
                      "S→T@749": (21.64, 0.321), "S→T@500": (21.16, 0.314), "S→T@250": (22.05, 0.306)}
