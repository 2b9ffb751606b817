"""Diagnostic student runs beside a world's shipped students (issue 19: "a method that cannot reach its bar stays in
the book with its numbers, its curves and your reason"): each run's recipe changes against the shipped student of the
same recipe and its probe curve, recorded in <world>/students/attempts.json. A record never replaces the shipped
student; checkpoints are chosen by FID_tiny alone, here as everywhere (bars.best_checkpoint)."""
from __future__ import annotations

import json
import os

from .bars import best_checkpoint, probe_curve

ATTEMPTS_FILE = "attempts.json"


def _provenance(folder: str) -> dict:
    path = os.path.join(folder, "provenance.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{folder!r} has no provenance.json: pass a student folder that "
                                "`python -m divdistill.distill train` wrote")
    with open(path) as f:
        return json.load(f)


def recipe_changes(config: dict, shipped: dict) -> dict:
    """{key: [shipped value, this run's value]} for every config field the run changed (seed and bookkeeping too)."""
    keys = sorted(set(config) | set(shipped))
    return {k: [shipped.get(k), config.get(k)] for k in keys if config.get(k) != shipped.get(k)}


EVAL_KEYS = ("fid", "fid_std", "adherence", "diversity", "n", "seeds")


def attempt_record(student_dir: str, shipped_dir: str, label: str, eval_row: dict | None = None) -> dict:
    """One diagnostic run's record: what it changed against the shipped student, its probe curve, the step FID_tiny
    chose, where and when it ran, and (optional) its row of the students table measured as the shipped ones are."""
    if not label.strip():
        raise ValueError("label must say what the run tried, e.g. 'real-score guidance 2 instead of 4'")
    run, shipped = _provenance(student_dir), _provenance(shipped_dir)
    cfg = run["config"]
    if cfg.get("method") != shipped["config"].get("method"):
        raise ValueError(f"{student_dir!r} is a {cfg.get('method')} run but the shipped student {shipped_dir!r} is "
                         f"{shipped['config'].get('method')}: compare a run with the student of its own recipe")
    if not run["metrics"].get("probes"):
        raise ValueError(f"{student_dir!r} has no training probes: train it with --probe-n > 0")
    curve = probe_curve(run["metrics"], run["steps"])  # provenance steps: PD's stages counted, as training_curves does
    measured = {} if eval_row is None else {"eval": _eval_part(eval_row)}
    return {**measured, "label": label, "student": os.path.basename(os.path.normpath(shipped_dir)),
            "changes": recipe_changes(cfg, shipped["config"]), "curve": curve, "chosen_step": best_checkpoint(curve),
            "created": run["created"], "git_commit": run["git_commit"], "device": run["device"],
            "wall_time_s": run["wall_time_s"]}


def _eval_part(row: dict) -> dict:
    missing = [k for k in EVAL_KEYS if k not in row]
    if missing:
        raise ValueError(f"the eval row lacks {missing}: pass a row of an eval.json written by "
                         f"`python -m divdistill.chapters.ddil --out` (keys {list(EVAL_KEYS)})")
    return {k: row[k] for k in EVAL_KEYS}


def eval_row(path: str, model: str) -> dict:
    """The row of `model` in an eval.json (`python -m divdistill.chapters.ddil --out`)."""
    with open(path) as f:
        rows = json.load(f)
    row = next((r for r in rows if r.get("model") == model), None)
    if row is None:
        raise ValueError(f"{path!r} has no row for {model!r}; it has {[r.get('model') for r in rows]}")
    return row


def load_attempts(world_root: str) -> list[dict]:
    """The diagnostic runs recorded for a world ([] when none)."""
    path = os.path.join(world_root, "students", ATTEMPTS_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def record_attempt(world_root: str, student_dir: str, student: str, label: str, eval_path: str | None = None
                   ) -> list[dict]:
    """Add (or replace in place, by student and label) a diagnostic run of `student`'s recipe in
    <world_root>/students/attempts.json, with its row of `eval_path` when given; returns every record."""
    from ..io import atomic_write_json

    shipped = os.path.join(world_root, "students", student)
    new = attempt_record(student_dir, shipped, label, None if eval_path is None else eval_row(eval_path, student))
    rows = load_attempts(world_root)
    key = (student, label)
    at = next((i for i, r in enumerate(rows) if (r["student"], r["label"]) == key), len(rows))
    rows = rows[:at] + [new] + rows[at + 1:]
    atomic_write_json(os.path.join(world_root, "students", ATTEMPTS_FILE), rows)
    return rows
