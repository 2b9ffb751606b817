"""The students chapter's diagnostic runs (distill/attempts.py): each shipped student beside the runs that vary one
setting of its recipe, read from <world>/students/attempts.json, eval.json and the provenance files."""
from __future__ import annotations

import json
import os

from .report import student_provenance


def _change_text(changes: dict) -> str:
    return "; ".join(f"{k} {a} → {b}" for k, (a, b) in sorted(changes.items()))


def _table(root: str) -> dict:
    """The world's students table (eval.json) by model, {} when it has none."""
    path = os.path.join(root, "students", "eval.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {r["model"]: r for r in json.load(f)}


def _attempts(root: str):
    """(record, the shipped student's probe curve, the teacher's probe FID or None, the students table by model) per
    diagnostic run; each file is read once."""
    from ...distill.attempts import load_attempts
    from ...distill.bars import probe_curve

    with open(os.path.join(root, "teacher", "provenance.json")) as f:
        teacher = json.load(f)["metrics"].get("final")  # the teacher's probe: 50 DDIM steps, n × 3 seeds
    table = _table(root)
    for rec in load_attempts(root):
        shipped = student_provenance(root, rec["student"])
        ref = probe_curve(shipped["metrics"], shipped["steps"]) if shipped else []
        yield rec, ref, (teacher["fid"] if teacher else None), table


def _lowest(curve) -> tuple:
    """(step, FID_tiny, seed std) of a curve's lowest probe: the point bars.best_checkpoint chooses."""
    from ...distill.bars import best_checkpoint

    step = best_checkpoint(curve)
    return tuple(next(p for p in curve if p[0] == step))


def attempt_rows(root: str) -> list[dict]:
    """The world's diagnostic runs (distill/attempts.py), each student's shipped run first: the setting each changed,
    its probe curve, its lowest probe over the teacher's own probe at the same n (FID_tiny's bias depends on n, so only
    equal-n numbers are compared), and its students-table FID_tiny against the bar where it was measured."""
    path = lambda c: "→".join(f"{x:.1f}" for _, x, _ in c)  # noqa: E731  (no spaces: the page is narrow)
    rows, shipped_done = [], set()
    for rec, ref, teacher, table in _attempts(root):
        if rec["student"] not in shipped_done and ref:
            shipped_done.add(rec["student"])
            was = "; ".join(f"{k} {a}" for k, (a, _) in sorted(rec["changes"].items()))
            rows.append(_attempt_row(rec["student"], f"{was} (shipped)", path(ref), _lowest(ref)[1], teacher,
                                     _measured(rec["student"], table.get(rec["student"]), table)))
        changed = "; ".join(f"{k} {b}" for k, (_, b) in sorted(rec["changes"].items()))
        rows.append(_attempt_row(rec["student"], changed, path(rec["curve"]), _lowest(rec["curve"])[1], teacher,
                                 _measured(rec["student"], rec.get("eval"), table)))
    return rows


def _attempt_row(student: str, setting: str, probes: str, lowest: float, teacher: float | None, m) -> dict:
    return {"run": f"{student}: {setting}", "FID_tiny probes": probes,
            "lowest ÷ teacher's": f"{lowest / teacher:.2f}" if teacher else "–", **_measured_columns(m)}


def _measured(student: str, ev: dict | None, table: dict) -> dict | None:
    """A students-table row (`ev`: the shipped student's, or a run's recorded one) against the world's teacher row, as
    the bar reads it; None when either is missing."""
    from ...distill.bars import meets_quality_bar, method_of, student_ratio

    teacher = table.get("teacher")
    if not ev or teacher is None:
        return None
    method = method_of(student)
    return {"fid": ev["fid"], "fid_std": ev["fid_std"], "n": ev["n"], "seeds": ev["seeds"],
            "ratio": ev["fid"] / teacher["fid"], "bar": student_ratio(method),
            "meets": meets_quality_bar(method, ev["fid"], teacher["fid"])}


def _measured_columns(m: dict | None) -> dict:
    if m is None:
        return {"FID_tiny (table; ÷ teacher's)": "–", "bar": "–"}
    return {"FID_tiny (table; ÷ teacher's)": f"{m['fid']:.1f} ± {m['fid_std']:.1f} ({m['ratio']:.2f}×)",
            "bar": f"{'✓' if m['meets'] else '✗'} ({m['bar']:g}×)"}


def attempt_summary(root: str) -> str:
    """What each diagnostic run says, every number read from the records: its lowest probe against the shipped
    student's (clearly lower when the gap exceeds both seed spreads), and whether it stayed stable to its end."""
    from ...distill.bars import stable

    out, recs, table = [], [], {}
    for rec, ref, teacher, table in _attempts(root):
        recs.append(rec)
        (step, best, sd), curve = _lowest(rec["curve"]), rec["curve"]
        text = (f"{rec['student']}, {rec['label']} ({_change_text(rec['changes'])}): lowest probe {best:.1f} at step "
                f"{step}" + (f", {best / teacher:.2f}× the teacher's probe" if teacher else ""))
        if ref:
            _, rb, rsd = _lowest(ref)
            gap = rb - best
            word = ("clearly lower than" if gap > max(sd, rsd) else "clearly higher than" if -gap > max(sd, rsd)
                    else "within the seed spread of")
            text += f"; {word} the shipped student's lowest, {rb:.1f}"
        m = _measured(rec["student"], rec.get("eval"), table)
        if m is not None:
            text += (f"; measured as the table above ({m['n']:,} × {m['seeds']} seeds), FID_tiny {m['fid']:.1f} ± "
                     f"{m['fid_std']:.1f}, {m['ratio']:.2f}× the teacher's: {'meets' if m['meets'] else 'misses'} "
                     f"its {m['bar']:g}× bar")
        half = min(curve, key=lambda p: abs(p[0] - curve[-1][0] / 2))
        ok = stable({"fid": half[1], "fid_std": half[2]}, {"fid": curve[-1][1], "fid_std": curve[-1][2]})
        out.append(text + (". It stayed stable from half-way to its end." if ok else
                           f". It rose from {half[1]:.1f} half-way to {curve[-1][1]:.1f} at its end, by more than "
                           "the seed spread."))
    return " ".join(out + _trends(recs, table)) if out else "No diagnostic runs are recorded for this world."


def _trends(recs: list[dict], table: dict) -> list[str]:
    """Per student whose runs each change the same one setting: the students-table FID_tiny (`table`, by model)
    against that setting, the shipped student included, and whether it moves one way across them (≥ 3 points)."""
    by = {}
    for rec in recs:
        if len(rec["changes"]) == 1 and rec.get("eval"):
            (key, (shipped, value)), = rec["changes"].items()
            own = table.get(rec["student"], {}).get("fid")
            by.setdefault((rec["student"], key), {shipped: own})[value] = rec["eval"]["fid"]
    out = []
    for (student, key), pts in sorted(by.items()):
        pts = sorted((v, f) for v, f in pts.items() if f is not None)
        if len(pts) < 3:
            continue
        fids = [f for _, f in pts]
        ups, downs = all(a < b for a, b in zip(fids, fids[1:])), all(a > b for a, b in zip(fids, fids[1:]))
        seq = ", ".join(f"{v:g}: {f:.1f}" for v, f in pts)
        how = "rises with" if ups else "falls with" if downs else "does not move one way with"
        out.append(f"Across {student}'s runs and the shipped student, FID_tiny {how} {key} ({seq}).")
    return out
