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


def student_provenance(root: str, student: str) -> dict | None:
    """A student's provenance.json under a world root (None when it has none)."""
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
            rec = student_provenance(root, s)
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
        rec = student_provenance(variants[variant], name)
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


def scan_spread_note(res: dict, schedule: dict) -> str:
    """'' when the prior scan drew its starts with the amplitude spread the world's prior declares now, else a sentence
    saying what its starred column is (the scan's settings record the spread; older scans drew the draws' own)."""
    from ...tiny.schedule import prior_spread

    got, now = res["settings"].get("prior_spread"), prior_spread(schedule)
    if got == now:
        return ""
    was = "each draw's own amplitude spread" if got is None else f"an amplitude spread of ±{got:.2%}"
    return (f"This scan was measured with {was}, before the world's prior "
            + ("narrowed each draw's spread to an SDXL latent's" if now is not None else "changed its spread")
            + ": its starred column is the same std with the old spread, not the world's prior as it is now, and the "
              "scan has not been repeated on it yet.")


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


def stability_reasons(rows: list[dict], root: str) -> list[str]:
    """Each student of the world at `root` whose run fails issue 19's stability rule (`quality_rows`): how far FID_tiny
    rose from the half-way probe to the last against the seed spread, and which probe was kept (by FID alone)."""
    from ...distill.bars import seed_spread

    out = []
    for r in rows:
        rec = student_provenance(root, r["student"]) if r["stable (half → final)"] is False else None
        if rec is None:
            continue
        m = rec["metrics"]
        half, fin = half_way_probe(m["probes"], rec["steps"]), m["final_probe"]
        text = (f"{r['student']}'s run is not stable by the rule: FID_tiny rose from {half['fid']:.1f} at the half-way "
                f"probe to {fin['fid']:.1f} at the last, step {rec['steps']}, by more than the seed spread "
                f"({seed_spread(half, fin):.1f}).")
        kept = m.get("chosen_step")
        if kept is not None and kept != rec["steps"]:
            text += (f" The shipped checkpoint is its lowest-FID probe, step {kept}, so the tables measure that "
                     "probe's weights, not the run's end.")
        out.append(text)
    return out
