"""Issue 19's bars, computed from provenance: the teacher's acceptance, each student's quality bar, stability, and
checkpoint choice by quality alone (FID_tiny; never diversity, never a claim's verdict)."""
from __future__ import annotations

from ..tiny.quality import GRAIN_VISIBLE

# grain: the 90th percentile of the flat-background grain, 8-bit levels (tiny.quality.GRAIN_VISIBLE): "no visible grain"
TEACHER_BAR = {"fid": 45.0, "adherence": 0.95, "factor": 0.90, "diversity_ratio": (0.9, 1.1),
               "grain_p90": GRAIN_VISIBLE}
STUDENT_BAR = {"dmd2": 1.5}  # FID_tiny ≤ ratio × the teacher's (the paper: 15.52 vs 12.74); every other method 2×
DEFAULT_STUDENT_RATIO = 2.0


def teacher_acceptance(fid: float, adherence: float, factors: dict, diversity: float, data_diversity: float,
                       grain_p90: float | None = None) -> dict:
    """Each of the teacher's acceptance checks (50 DDIM steps, CFG 4, from its world's sampling prior) → bool, and 'all';
    the grain check only where grain was measured (runs evaluated before it have none)."""
    if not data_diversity > 0:
        raise ValueError(f"data_diversity must be > 0, got {data_diversity}")
    lo, hi = TEACHER_BAR["diversity_ratio"]
    checks = {"fid": fid <= TEACHER_BAR["fid"], "adherence": adherence >= TEACHER_BAR["adherence"],
              **{f"factor:{k}": v >= TEACHER_BAR["factor"] for k, v in sorted(factors.items())},
              "diversity_ratio": lo <= diversity / data_diversity <= hi}
    if grain_p90 is not None:
        checks["grain"] = grain_p90 <= TEACHER_BAR["grain_p90"]
    return {**checks, "all": all(checks.values())}


def adherence_factors(m: dict) -> dict:
    """{factor: adherence} from metrics keyed adherence_<factor> (metrics.factor_adherence's output)."""
    return {k[len("adherence_"):]: x for k, x in m.items()
            if k.startswith("adherence_") and isinstance(x, (int, float))}


def acceptance_of(m: dict) -> dict:
    """`teacher_acceptance` from a teacher's evaluated metrics (`python -m divdistill.tiny evaluate`, provenance)."""
    return teacher_acceptance(m["fid_tiny_teacher_vs_data"], m["adherence"], adherence_factors(m),
                              m["diversity_teacher_mean"], m["diversity_data_mean"], m.get("teacher_grain_p90"))


def failed_checks(acc: dict) -> list[str]:
    """The names of the checks an acceptance dict fails ('factor:size' → 'size')."""
    return [k.replace("factor:", "") for k, ok in acc.items() if k != "all" and not ok]


def start_caused(leak: dict | None) -> list[str]:
    """The acceptance checks a teacher fails from its sampling prior and passes from the prompt's Gaussian q(x_T | c)
    (teacher_leak.json's first two rows, chapters/tiny_world/leak.py): failures of the start, not of the weights."""
    if not leak or len(leak.get("rows", ())) < 2:
        return []
    prior, given = leak["rows"][0], leak["rows"][1]
    return [c for c in prior["fails"] if c not in given["fails"]]


def rollout_prior_mismatch(config: dict, world_prior: str) -> bool:
    """True when a student was distilled on rollouts (DDIL's teacher/student sources, DMD2's backward simulation) whose
    starts do not cover its world's sampling prior now (provenance "prior", "unit" before it was recorded;
    tiny.schedule.starts_covered: the marginal prior's draws cover the same draws with SDXL's narrower spread)."""
    from ..tiny.schedule import starts_covered

    d = config.get("ddil") or {}
    shares = [p for ps in (d.get("priors"), d.get("late_priors")) if ps for p in ps[1:]]
    return bool(d.get("enabled", True)) and any(p > 0 for p in shares) and \
        not starts_covered(config.get("prior", "unit"), world_prior)


def method_of(student: str) -> str:
    """A student's method from its registry name (dmd2_ddil → dmd2, lcm_reflected → lcm): which bar it meets."""
    return "dmd2" if student.startswith("dmd2") else student.split("_")[0]


def below_bar(eval_rows: list[dict]) -> list[str]:
    """The students of an eval.json (`python -m divdistill.chapters.ddil`) over their FID_tiny bar against its teacher
    row, measured the same way; [] without a teacher row."""
    teacher = next((r for r in eval_rows if r["model"] == "teacher"), None)
    return [] if teacher is None else [r["model"] for r in eval_rows if r["model"] != "teacher" and not
                                       meets_quality_bar(method_of(r["model"]), r["fid"], teacher["fid"])]


def student_ratio(method: str) -> float:
    """The FID_tiny ratio a student of `method` may reach over the teacher's."""
    return STUDENT_BAR.get(method, DEFAULT_STUDENT_RATIO)


def meets_quality_bar(method: str, student_fid: float, teacher_fid: float) -> bool:
    """FID_tiny(student) ≤ ratio × FID_tiny(teacher), both measured the same way."""
    if not teacher_fid > 0:
        raise ValueError(f"teacher_fid must be > 0, got {teacher_fid}")
    return student_fid <= student_ratio(method) * teacher_fid


def seed_spread(half: dict, final: dict) -> float:
    """The stability rule's seed spread: the larger FID_tiny seed std of the two probes."""
    return max(half.get("fid_std", 0.0), final.get("fid_std", 0.0))


def stable(half: dict, final: dict) -> bool:
    """FID_tiny did not rise from the half-way to the final probe by more than the seed spread."""
    return final["fid"] - half["fid"] <= seed_spread(half, final)


def probe_curve(metrics: dict, steps: int) -> list[tuple[int, float, float]]:
    """[(step, FID_tiny, seed std)] of a run's training probes (provenance metrics), the final one at `steps`."""
    pts = [(int(k), v["fid"], v.get("fid_std", 0.0)) for k, v in metrics.get("probes", {}).items()]
    fin = metrics.get("final_probe")
    if fin is not None:
        pts.append((int(steps), fin["fid"], fin.get("fid_std", 0.0)))
    return sorted(pts)


def best_checkpoint(curve: list[tuple[int, float, float]]) -> int:
    """The probed step with the lowest FID_tiny (quality alone)."""
    if not curve:
        raise ValueError("no probes to choose a checkpoint from")
    return min(curve, key=lambda p: (p[1], -p[0]))[0]
