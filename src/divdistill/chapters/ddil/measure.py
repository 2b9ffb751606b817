"""One table in the format of DDIL Tables 3/5 and the distillation paper's Table 3, for teacher and students."""
from __future__ import annotations

import os
import statistics
import time

from ...plan import base, distilled
from ...sampling import generate
from ...io import update_metrics
from ...tiny.evaluator import load_evaluator
from ...tiny.quality import evaluate_plan

COLUMNS = ("fid", "adherence", "precision", "recall", "density", "coverage", "diversity")


def evaluate_students(world, names=None, n: int = 1000, seeds=(0, 1, 2), write: bool = True, progress=print,
                      teacher: bool = True) -> list[dict]:
    """Rows (mean ± std over seeds) for the teacher (its 50-step plan; `teacher=False` skips it) and each named
    student (its own 4 steps)."""
    ev = load_evaluator(world.extras["evaluator_root"])
    names = list(world.students if names is None else names)
    rows = []
    for name in (["base"] if teacher else []) + names:
        plan = base(world) if name == "base" else distilled(world, name)
        t0 = time.time()
        per_seed = [evaluate_plan(world, plan, ev, n, s) for s in seeds]
        row = {"model": "teacher" if name == "base" else name, "steps": len(plan),
               "nfe": generate(world, plan, ["a shape"], [0]).nfe, "n": n, "seeds": len(seeds)}
        for c in COLUMNS:
            vals = [r[c] for r in per_seed]
            row[c], row[f"{c}_std"] = statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0
        row["eval_s"] = time.time() - t0
        rows.append(row)
        if progress:
            progress(f"{row['model']}: " + ", ".join(f"{c} {row[c]:.3f}±{row[c + '_std']:.3f}" for c in COLUMNS))
        if write and name != "base":
            update_metrics(os.path.join(world.extras["root"], "students", name, "provenance.json"),
                           {"eval": {k: v for k, v in row.items() if k != "model"}})
    return rows


def merge_rows(old: list[dict], new: list[dict], n: int, seeds: int) -> list[dict]:
    """`old` with each of `new`'s models replaced in place (appended if absent); both measured at the same n, seeds."""
    if any((r["n"], r["seeds"]) != (n, seeds) for r in old):
        raise ValueError(f"--merge: the existing rows were measured at another n or seed count than n={n}, "
                         f"seeds={seeds}; re-measure them all instead")
    by = {r["model"]: r for r in new}
    return [by.pop(r["model"], r) for r in old] + list(by.values())


def format_table(rows: list[dict]) -> str:
    """Markdown: model, steps, NFE, then each metric as mean ± std."""
    head = "| model | steps | NFE | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(COLUMNS))]
    for r in rows:
        cells = [f"{r[c]:.3f} ± {r[c + '_std']:.3f}" for c in COLUMNS]
        lines.append(f"| {r['model']} | {r['steps']} | {r['nfe']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
