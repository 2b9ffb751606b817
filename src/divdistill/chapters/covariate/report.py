"""Reading the committed covariate-shift study (DDIL Table 9, Sec. 5.2): tables, CIs over seeds, D1's verdicts."""
from __future__ import annotations

import json
import os

import numpy as np

from . import shift as cs
from .measure import SHIFT_PAIRS, TEACHER


def study_path(world) -> str:
    """The committed study of a tiny world: <world folder>/covariate_shift.json."""
    return os.path.join(world.extras["root"], "covariate_shift.json")


def load_study(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def seed_ci(values):
    """Bootstrap CI over seeds of the finite values (NaN dropped)."""
    from ...book.claims import bootstrap

    return bootstrap([v for v in values if v == v])


def beta_rows(study: dict) -> list[dict]:
    """Table 9 (β sweep): per β, mean [95% CI over seeds] of FID_tiny, adherence, MMD² to data, distance to the teacher."""
    from ...paper import DDIL_TABLE9_BETA

    rows = []
    for b in cs.BETAS:
        per = [s["beta"][f"{b:.1f}"] for s in study["per_seed"]]
        rows.append({"β": b, "teacher share": float(np.mean([p["teacher_share"] for p in per])),
                     "NFE": float(np.mean([p["nfe"] for p in per])),
                     **{c: str(seed_ci([p[c] for p in per])) for c in ("fid", "adherence", "mmd_data", "dist_teacher")},
                     "FID": DDIL_TABLE9_BETA[b][0], "CLIP": DDIL_TABLE9_BETA[b][1]})
    return rows


def switch_rows(study: dict) -> list[dict]:
    """Table 9 (switches): per switch, the pattern, NFE and the same metrics, paper numbers beside."""
    from ...paper import DDIL_TABLE9_SWITCH

    rows = []
    for name, (pf, pc) in DDIL_TABLE9_SWITCH.items():
        per = [s["switch"][name] for s in study["per_seed"]]
        rows.append({"switch": name, "pattern": per[0]["pattern"], "NFE": per[0]["nfe"],
                     **{c: str(seed_ci([p[c] for p in per])) for c in ("fid", "adherence", "mmd_data", "dist_teacher")},
                     "FID": pf, "CLIP": pc})
    return rows


def _slope(y) -> float:
    return float(np.polyfit(np.asarray(cs.BETAS), np.asarray(y, dtype=float), 1)[0])


def d1_effects(study: dict) -> dict:
    """D1's effects, each a CI over seeds: slopes over β, and early-vs-late teacher use at equal NFE."""
    seeds = study["per_seed"]
    sw = lambda s, name, c: s["switch"][name][c]  # noqa: E731
    return {
        "fid_slope": seed_ci([_slope([s["beta"][f"{b:.1f}"]["fid"] for b in cs.BETAS]) for s in seeds]),
        "adherence_slope": seed_ci([_slope([s["beta"][f"{b:.1f}"]["adherence"] for b in cs.BETAS]) for s in seeds]),
        "mmd_slope": seed_ci([_slope([s["beta"][f"{b:.1f}"]["mmd_data"] for b in cs.BETAS]) for s in seeds]),
        "fid_student_minus_teacher": seed_ci([s["beta"]["0.0"]["fid"] - s["beta"]["1.0"]["fid"] for s in seeds]),
        # one teacher transition, late (SSST) minus early (TSSS): > 0 when the early one brings the image closer
        "late_minus_early_dist": seed_ci([sw(s, "S→T@250", "dist_teacher") - sw(s, "T→S@749", "dist_teacher") for s in seeds]),
        "late_minus_early_fid": seed_ci([sw(s, "S→T@250", "fid") - sw(s, "T→S@749", "fid") for s in seeds]),
        "late2_minus_early2_dist": seed_ci([sw(s, "S→T@500", "dist_teacher") - sw(s, "T→S@500", "dist_teacher")
                                         for s in seeds]),
    }


def d1_entries(study: dict, scale: str = "tiny") -> list[dict]:
    """D1's summary entries; `holds` from `claims.verdict` on the CIs of `d1_effects`."""
    from ...book.claims import all_hold, entry, verdict

    e, n = d1_effects(study), study["config"]["n"] * len(study["per_seed"])
    where = f"{study['config'].get('variant')} world, {len(study['per_seed'])} seeds × {study['config']['n']} images"
    return [
        entry("D1", "Table 9: CLIP 0.302 → 0.319 as β 0 → 0.8; FID not monotone (21.9–23.1)",
              f"FID slope over β {e['fid_slope']}; adherence slope {e['adherence_slope']}",
              verdict(e["fid_slope"], "<"), scale, n, f"slope of FID_tiny (per seed) against β; {where}",
              claim="Covariate shift: more teacher in mixed rollouts gives better FID (DDIL Table 9)"),
        entry("D1", "Fig. 5: a teacher start at 749 keeps the structure; a late teacher cannot fix it",
              f"distance to the teacher's image, late − early teacher: 1 transition {e['late_minus_early_dist']}, "
              f"2 transitions {e['late2_minus_early2_dist']}",
              all_hold([verdict(e["late_minus_early_dist"], ">"), verdict(e["late2_minus_early2_dist"], ">")]),
              scale, n, f"SSST vs TSSS and SSTT vs TTSS at equal NFE; evaluator-feature cosine distance; {where}. "
              f"FID_tiny reads the other way: late − early teacher {e['late_minus_early_fid']} (the late teacher "
              f"polishes what FID sees; the paper's Table 9 FIDs favour the late teacher too)",
              claim="Early switches matter more: early teacher steps set the structure (DDIL Fig. 5)"),
    ]


def shift_rows(study: dict) -> list[dict]:
    """The measured shift: per model and student timestep, MMD² (evaluator features; pooled pixels) over seeds."""
    by: dict[tuple, list] = {}
    for rows in study["shift"].values():
        for r in rows:
            by.setdefault((r["model"], r["t"]), []).append(r)
    return [{"model": m, "t": t, "MMD² features": str(seed_ci([r["mmd_feat"] for r in rs])),
             "MMD² pixels": str(seed_ci([r["mmd_pix"] for r in rs])), "seeds": len(rs)} for (m, t), rs in by.items()]


def shift_effects(study: dict) -> list[dict]:
    """DDIL − plain MMD² (features) per timestep, paired by seed (same prompts and noise): < 0 = less shift; and
    student − teacher (the teacher's own 32-step rollouts, when the study has them): > 0 = the student meets more."""
    from ...book.claims import bootstrap_diff

    out = []
    for plain, ddil in (*SHIFT_PAIRS, (TEACHER, "pd"), (TEACHER, "pd_ddil")):
        for t in sorted({r["t"] for rows in study["shift"].values() for r in rows if r["model"] == plain}, reverse=True):
            get = lambda m: [next(r["mmd_feat"] for r in rows if r["model"] == m and r["t"] == t)  # noqa: E731
                             for rows in study["shift"].values()]
            if any(r["model"] == ddil for rows in study["shift"].values() for r in rows) and \
                    all(any(r["model"] == plain and r["t"] == t for r in rows) for rows in study["shift"].values()):
                out.append({"pair": f"{ddil} − {plain}", "t": t, "ΔMMD² features": str(bootstrap_diff(get(ddil), get(plain),
                                                                                                    paired=True))})
    return out


def estimates(study: dict, part: str, metric: str) -> dict:
    """{β or switch name: Estimate over seeds} of one metric, for plots (part: "beta" or "switch")."""
    keys = study["per_seed"][0][part]
    return {k: seed_ci([s[part][k][metric] for s in study["per_seed"]]) for k in keys}


def reading(study: dict) -> str:
    """One paragraph that reads D1's effects and the shift off the committed study (no numbers typed by hand)."""
    from ...book.claims import verdict

    e = d1_effects(study)
    side = {True: "below zero", False: "above zero", None: "straddling zero"}
    eff = {r["pair"] + str(r["t"]): r for r in shift_effects(study)}
    more = [p for p in {r["pair"] for r in eff.values()} if TEACHER not in p
            if sum(float(r["ΔMMD² features"].split()[0]) for r in eff.values() if r["pair"] == p) > 0]
    fid_word = "lower" if e["fid_slope"].mean < 0 else "higher"
    near = "closer to" if e["late_minus_early_dist"].mean > 0 else "farther from"
    late_fid = "lower" if e["late_minus_early_fid"].mean < 0 else "higher"
    return (f"More teacher, {fid_word} FID_tiny: the per-seed slope over β is {e['fid_slope']} (CI "
            f"{side[verdict(e['fid_slope'], '<')]}); adherence changes by {e['adherence_slope']} per unit β. At equal "
            f"NFE the early teacher transition brings the image {near} the pure teacher's (late − early distance "
            f"{e['late_minus_early_dist']}), and FID_tiny is {late_fid} with the late one (late − early "
            f"{e['late_minus_early_fid']}). Pairs whose summed shift over the timesteps grows with DDIL: "
            f"{', '.join(sorted(more)) or 'none'}." + _teacher_reading(eff))


def _teacher_reading(eff: dict) -> str:
    rows = [r for r in eff.values() if r["pair"] == f"pd − {TEACHER}"]
    if not rows:
        return ""
    return (" The plain PD student against the teacher's own rollouts, per timestep (student − teacher MMD²): "
            + "; ".join(f"t = {r['t']}: {r['ΔMMD² features']}" for r in rows) + ".")
