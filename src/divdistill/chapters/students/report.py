"""The students chapter's tables read from the students' provenance: issue 8's plateau rule per student."""
from __future__ import annotations

import json
import os


def half_way_probe(probes: dict, steps: int) -> dict:
    """The half-way probe of a run (probes keyed by step; older runs have only that one)."""
    return probes.get(str(steps // 2)) or min(probes.items(), key=lambda kv: abs(int(kv[0]) - steps // 2))[1]


def plateau_rows(variants: dict[str, str]) -> list[dict]:
    """Issue 8's plateau test per student: half-way vs final training probe (FID_tiny, diversity), plateau when both
    changed by less than their seed-to-seed std. `variants`: {variant: world folder}; students without probes skip."""
    rows = []
    for v, s, rec in _student_records(variants):
        m = rec.get("metrics", {})
        if not (m.get("final_probe") and m.get("probes")):
            continue
        half, fin = half_way_probe(m["probes"], rec["steps"]), m["final_probe"]
        flat = {k: abs(fin[k] - half[k]) < max(fin[f"{k}_std"], half[f"{k}_std"]) for k in ("fid", "diversity")}
        rows.append({"variant": v, "student": s, "iterations": rec["steps"], "batch": rec["config"].get("batch"),
                     "device": rec.get("device"), "wall (s)": round(rec["wall_time_s"]),
                     **{f"{lab} {when}": f"{d[k]:.{p}f} ± {d[f'{k}_std']:.{p}f}" for k, lab, p in
                        (("fid", "FID", 1), ("diversity", "diversity", 3)) for when, d in
                        (("half-way", half), ("final", fin))},
                     "plateau (|Δ| < seed std)": flat["fid"] and flat["diversity"]})
    return rows


def _provenance(root: str, student: str) -> dict | None:
    path = os.path.join(root, "students", student, "provenance.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _student_records(variants: dict[str, str]):
    """(variant, student, provenance) of every student folder with a provenance.json, in name order."""
    for v, root in variants.items():
        sdir = os.path.join(root, "students")
        for s in sorted(os.listdir(sdir)) if os.path.isdir(sdir) else []:
            rec = _provenance(root, s)
            if rec is not None:
                yield v, s, rec


def training_curves(variants: dict[str, str]) -> dict[str, dict[str, list]]:
    """{variant: {student: [(step, FID_tiny, seed std)]}} from every student's training probes (issue 19)."""
    from ...distill.bars import probe_curve

    out = {}
    for v, s, rec in _student_records(variants):
        if rec.get("metrics", {}).get("final_probe"):
            out.setdefault(v, {})[s] = probe_curve(rec["metrics"], rec["steps"])
    return out


def quality_rows(eval_rows: list[dict], variants: dict[str, str], variant: str) -> list[dict]:
    """Issue 19's bars per student of one world: FID_tiny over the teacher's (both from eval.json, same protocol)
    against the method's bar, stability half-way → final, and the best probed checkpoint (by FID alone)."""
    from ...distill.bars import best_checkpoint, meets_quality_bar, method_of, probe_curve, stable, student_ratio

    by = {r["model"]: r for r in eval_rows}
    teacher = by.get("teacher")
    rows = []
    for name, r in by.items():
        if name == "teacher" or teacher is None:
            continue
        method = method_of(name)
        rec = _provenance(variants[variant], name)
        m = (rec or {}).get("metrics", {})
        curve = probe_curve(m, rec["steps"]) if rec and m.get("final_probe") else []
        half = half_way_probe(m["probes"], rec["steps"]) if curve and m.get("probes") else None
        rows.append({"student": name, "FID_tiny": r["fid"], "÷ teacher's": r["fid"] / teacher["fid"],
                     "bar": f"≤ {student_ratio(method)}×", "meets bar": meets_quality_bar(method, r["fid"], teacher["fid"]),
                     "stable (half → final)": stable(half, m["final_probe"]) if half else None,
                     "best probed step (FID)": best_checkpoint(curve) if curve else None,
                     "kept step": m.get("chosen_step", rec["steps"] if rec else None),  # earlier runs kept the last
                     "trained steps": rec["steps"] if rec else None})
    return rows


def prior_rows(res: dict) -> list[dict]:
    """Per student, from `measure.prior_sensitivity`: FID_tiny at every scanned x_T std (the world's prior starred),
    the std with the lowest FID_tiny, the scan's highest over lowest, and how far the world's prior sits above the
    lowest."""
    per = {}
    for r in res["rows"]:
        per.setdefault(r["student"], []).append(r)
    out = []
    for s, rows in per.items():
        best, own = min(rows, key=lambda r: r["fid"]), next((r for r in rows if r["world's"]), None)
        out.append({"student": s, **{_std_label(r): f"{r['fid']:.1f}" for r in rows},
                    "lowest at": f"{best['x_T std']:.4f}",
                    "highest ÷ lowest": f"{max(r['fid'] for r in rows) / best['fid']:.2f}",
                    "world's − lowest": f"{own['fid'] - best['fid']:.1f}" if own else None})
    return out


def _std_label(row: dict) -> str:
    return f"{row['x_T std']:.4f}" + (" *" if row["world's"] else "")


def spread_by_sampler(res: dict, root: str) -> dict[str, list[float]]:
    """{the students' scheduler class: [the scan's highest ÷ lowest FID_tiny of each of its students]}; the class from
    each student's registry entry (students/<name>/student.json)."""
    out = {}
    for r in prior_rows(res):
        with open(os.path.join(root, "students", r["student"], "student.json")) as f:
            out.setdefault(json.load(f)["scheduler"].replace("Scheduler", ""), []).append(float(r["highest ÷ lowest"]))
    return out


def bar_reasons(rows: list[dict], curves: dict[str, list]) -> list[str]:
    """Why each student that misses its bar (`quality_rows`) misses it, read from its probe curve (step, FID, std):
    where along its run FID_tiny was lowest says whether more of the same recipe could reach the bar."""
    from ...distill.bars import best_checkpoint

    out = []
    for r in rows:
        if r["meets bar"]:
            continue
        s, curve = r["student"], curves.get(r["student"], [])
        ratio = r["÷ teacher's"]
        text = f"{s} misses its bar: FID_tiny {r['FID_tiny']:.1f}, {ratio:.2f}× the teacher's against {r['bar'][2:]}."
        if len(curve) >= 2:
            best, path = best_checkpoint(curve), " → ".join(f"{f:.1f}" for _, f, _ in curve)
            if best == curve[0][0]:
                text += (f" Its probes ({path}) were lowest at the first, step {best}, and rose after: on this "
                         "world the recipe got worse as it trained, so training it longer is not the remedy.")
            elif best == curve[-1][0]:
                text += f" Its probes ({path}) were still falling at the last: a longer run might reach the bar."
            else:
                text += (f" Its probes ({path}) were lowest at step {best} of {curve[-1][0]} and rose "
                         "after: the recipe peaked before its end.")
        out.append(text)
    return out


def _change_text(changes: dict) -> str:
    return "; ".join(f"{k} {a} → {b}" for k, (a, b) in sorted(changes.items()))


def _attempts(root: str):
    """(record, the shipped student's probe curve, the teacher's probe FID or None) per diagnostic run."""
    from ...distill.attempts import load_attempts
    from ...distill.bars import probe_curve

    with open(os.path.join(root, "teacher", "provenance.json")) as f:
        teacher = json.load(f)["metrics"].get("final")  # the teacher's probe: 50 DDIM steps, n × 3 seeds
    for rec in load_attempts(root):
        shipped = _provenance(root, rec["student"])
        ref = probe_curve(shipped["metrics"], shipped["steps"]) if shipped else []
        yield rec, ref, (teacher["fid"] if teacher else None)


def _lowest(curve) -> tuple:
    """(step, FID_tiny, seed std) of a curve's lowest probe."""
    return tuple(min(curve, key=lambda p: (p[1], -p[0])))


def attempt_rows(root: str) -> list[dict]:
    """The world's diagnostic runs (distill/attempts.py), each student's shipped run first: the setting each changed,
    its probe curve, its lowest probe over the teacher's own probe at the same n (FID_tiny's bias depends on n, so only
    equal-n numbers are compared), and its students-table FID_tiny against the bar where it was measured."""
    path = lambda c: "→".join(f"{x:.1f}" for _, x, _ in c)  # noqa: E731  (no spaces: the page is narrow)
    rows, shipped_done = [], set()
    for rec, ref, teacher in _attempts(root):
        if rec["student"] not in shipped_done and ref:
            shipped_done.add(rec["student"])
            was = "; ".join(f"{k} {a}" for k, (a, _) in sorted(rec["changes"].items()))
            rows.append(_attempt_row(rec["student"], f"{was} (shipped)", path(ref), _lowest(ref)[1], teacher,
                                     _shipped_measured(root, rec["student"])))
        changed = "; ".join(f"{k} {b}" for k, (_, b) in sorted(rec["changes"].items()))
        rows.append(_attempt_row(rec["student"], changed, path(rec["curve"]), _lowest(rec["curve"])[1], teacher,
                                 _measured(root, rec)))
    return rows


def _attempt_row(student: str, setting: str, probes: str, lowest: float, teacher: float | None, m) -> dict:
    return {"run": f"{student}: {setting}", "FID_tiny probes": probes,
            "lowest ÷ teacher's": f"{lowest / teacher:.2f}" if teacher else "–", **_measured_columns(m)}


def _shipped_measured(root: str, student: str) -> dict | None:
    path = os.path.join(root, "students", "eval.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        row = next((r for r in json.load(f) if r["model"] == student), None)
    return None if row is None else _measured(root, {"student": student, "eval": row})


def _measured(root: str, rec: dict) -> dict | None:
    """The run's students-table row against the world's teacher row (eval.json), as the bar reads it; None when either
    is missing."""
    from ...distill.bars import meets_quality_bar, method_of, student_ratio

    ev, path = rec.get("eval"), os.path.join(root, "students", "eval.json")
    if not ev or not os.path.exists(path):
        return None
    with open(path) as f:
        teacher = next((r for r in json.load(f) if r["model"] == "teacher"), None)
    if teacher is None:
        return None
    method = method_of(rec["student"])
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

    out = []
    for rec, ref, teacher in _attempts(root):
        (step, best, sd), curve = _lowest(rec["curve"]), rec["curve"]
        text = (f"{rec['student']}, {rec['label']} ({_change_text(rec['changes'])}): lowest probe {best:.1f} at step "
                f"{step}" + (f", {best / teacher:.2f}× the teacher's probe" if teacher else ""))
        if ref:
            _, rb, rsd = _lowest(ref)
            gap = rb - best
            word = ("clearly lower than" if gap > max(sd, rsd) else "clearly higher than" if -gap > max(sd, rsd)
                    else "within the seed spread of")
            text += f"; {word} the shipped student's lowest, {rb:.1f}"
        m = _measured(root, rec)
        if m is not None:
            text += (f"; measured as the table above ({m['n']:,} × {m['seeds']} seeds), FID_tiny {m['fid']:.1f} ± "
                     f"{m['fid_std']:.1f}, {m['ratio']:.2f}× the teacher's: {'meets' if m['meets'] else 'misses'} "
                     f"its {m['bar']:g}× bar")
        half = min(curve, key=lambda p: abs(p[0] - curve[-1][0] / 2))
        ok = stable({"fid": half[1], "fid_std": half[2]}, {"fid": curve[-1][1], "fid_std": curve[-1][2]})
        out.append(text + (". It stayed stable from half-way to its end." if ok else
                           f". It rose from {half[1]:.1f} half-way to {curve[-1][1]:.1f} at its end, by more than "
                           "the seed spread."))
    return " ".join(out + _trends(root)) if out else "No diagnostic runs are recorded for this world."


def _trends(root: str) -> list[str]:
    """Per student whose runs each change the same one setting: the students-table FID_tiny against that setting,
    the shipped student included, and whether it moves one way across them (at least three points)."""
    from ...distill.attempts import load_attempts

    path = os.path.join(root, "students", "eval.json")
    table = {}
    if os.path.exists(path):
        with open(path) as f:
            table = {r["model"]: r["fid"] for r in json.load(f)}
    by = {}
    for rec in load_attempts(root):
        if len(rec["changes"]) == 1 and rec.get("eval"):
            (key, (shipped, value)), = rec["changes"].items()
            by.setdefault((rec["student"], key), {shipped: table.get(rec["student"])})[value] = rec["eval"]["fid"]
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
