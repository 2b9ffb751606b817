"""The tiny-world chapter's tables from committed files: the teacher runs tried on a schedule (issue 19's remedies)."""
from __future__ import annotations

import json
import os

from ...distill.bars import teacher_acceptance


def _recipe(r: dict) -> str:
    """A run's recipe in a few words: its start, steps, offset noise (from which step), the learning-rate decay tail."""
    start = f"continues {r['init_from']} (seed {r.get('seed', 0)}): " if r.get("init_from") else ""
    s = start + f"{r['steps']:,} steps, offset noise {r['offset_noise']:.2f} from step {r['offset_noise_start']:,}"
    return s + (f", cosine lr decay over the last {r['decay_steps']:,}" if r.get("decay_steps") else ", constant lr")


def attempt_rows(variant_root: str) -> list[dict]:
    """One row per teacher run recorded in <variant_root>/teacher_attempts.json, with its acceptance checks."""
    path = os.path.join(variant_root, "teacher_attempts.json")
    if not os.path.exists(path):
        return []
    rows = []
    for a in json.load(open(path)):
        m = a["metrics"]
        factors = {k[len("adherence_"):]: v for k, v in m.items() if k.startswith("adherence_")}
        acc = teacher_acceptance(m["fid_tiny_teacher_vs_data"], m["adherence"], factors, m["diversity_teacher_mean"],
                                 m["diversity_data_mean"])
        failed = [k.replace("factor:", "") for k, ok in acc.items() if k != "all" and not ok]
        rows.append({"run": a["label"], "recipe": _recipe(a["recipe"]), "n": m["n_samples"],
                     "FID_tiny": m["fid_tiny_teacher_vs_data"], "adherence": m["adherence"],
                     "background": m["adherence_bg"], "shape": m["adherence_shape"], "size": m["adherence_size"],
                     "diversity ÷ data": m["diversity_ratio_teacher_over_data"],
                     "passes": "yes" if acc["all"] else "no: " + ", ".join(failed),
                     "wall (s)": a["wall_time_s"], "device": a["device"], "created": a["created"]})
    return rows
