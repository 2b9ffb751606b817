"""The tiny-world chapter's tables from committed files: each variant's teacher, its acceptance, and the teacher runs
tried on a schedule (issue 19's remedies)."""
from __future__ import annotations

import json
import os

from ...distill.bars import teacher_acceptance
from ...tiny.teacher import TeacherConfig


def _recipe(r: dict) -> str:
    """A run's recipe in a few words: its start, steps, offset noise (from which step), the learning-rate decay tail."""
    start = f"continues {r['init_from']} (seed {r.get('seed', 0)}): " if r.get("init_from") else ""
    batch = r.get("batch", TeacherConfig.batch)  # records before batch was kept: their runs used the default
    s = start + (f"{r['steps']:,} steps × {batch}, offset noise {r['offset_noise']:.2f} from step "
                 f"{r['offset_noise_start']:,}")
    return s + (f", cosine lr decay over the last {r['decay_steps']:,}" if r.get("decay_steps") else ", constant lr")


def acceptance(m: dict) -> dict:
    """The teacher's acceptance checks (distill.bars.teacher_acceptance) from its evaluated metrics."""
    factors = {k[len("adherence_"):]: x for k, x in m.items() if k.startswith("adherence_")
               and isinstance(x, (int, float))}
    return teacher_acceptance(m["fid_tiny_teacher_vs_data"], m["adherence"], factors, m["diversity_teacher_mean"],
                              m["diversity_data_mean"])


def _init_label(variant: str, init: str | None) -> str:
    """Where a teacher started: from scratch, its own previous version (a continued run), or another teacher."""
    if not init:
        return "scratch"
    return "its previous version (git history)" if init.rstrip("/").endswith(f"{variant}/teacher") else init


def teacher_rows(prov: dict) -> list[dict]:
    """One row per variant's teacher from its provenance {variant: provenance}; a continued run shows "+steps"."""
    rows = []
    for v, p in prov.items():
        m, init = p["metrics"], p["config"].get("init_from")
        fin = m.get("final") or {}
        rows.append({"variant": v, "train steps": f"+{p['steps']:,}" if init else p["steps"],
                     "wall (s)": p["wall_time_s"], "init from": _init_label(v, init),
                     "adherence": m.get("adherence", fin.get("adherence")),
                     "FID_tiny vs data": m.get("fid_tiny_teacher_vs_data", fin.get("fid")),
                     "diversity": m.get("diversity_teacher_mean", fin.get("diversity")),
                     "train loss (last 100)": m.get("train_loss_last100")})
    return rows


def acceptance_rows(prov: dict) -> list[dict]:
    """One row of acceptance checks per variant whose teacher has been evaluated (`python -m divdistill.tiny evaluate`)."""
    return [{"variant": v, "n": p["metrics"]["n_samples"], **acceptance(p["metrics"])}
            for v, p in prov.items() if "fid_tiny_teacher_vs_data" in p["metrics"]]


def attempt_rows(variant_root: str) -> list[dict]:
    """One row per teacher run recorded in <variant_root>/teacher_attempts.json, with its acceptance checks."""
    path = os.path.join(variant_root, "teacher_attempts.json")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        attempts = json.load(f)
    for a in attempts:
        m = a["metrics"]
        acc = acceptance(m)
        failed = [k.replace("factor:", "") for k, ok in acc.items() if k != "all" and not ok]
        rows.append({"run": a["label"], "recipe": _recipe(a["recipe"]), "n": m["n_samples"],
                     "FID_tiny": m["fid_tiny_teacher_vs_data"], "adherence": m["adherence"],
                     "background": m["adherence_bg"], "shape": m["adherence_shape"], "size": m["adherence_size"],
                     "diversity ÷ data": m["diversity_ratio_teacher_over_data"],
                     "passes": "yes" if acc["all"] else "no: " + ", ".join(failed),
                     "wall (s)": a["wall_time_s"], "device": a["device"], "created": a["created"]})
    return rows
