"""The hybrid chapter's tables, figures and summary entries from `hybrid_eval.evaluate` results (Tables 2–4, Fig. 7)."""
from __future__ import annotations

import json
import math
import os

from ... import paper
from ...book import claims
from ...book.claims import Estimate
from ...tiny.loader import VARIANTS  # the tiny world's schedule variants, one folder each under data/tiny/

PAPER_T2 = {r["method"]: r for r in paper.TABLE2}
PAPER_ROW = {"base50": "Base", "student": "Distilled (DMD)", "hybrid": "Hybrid", "skip_first": "Skip first timestep"}
PAPER_T3 = dict(zip(("base50", "student", "hybrid"), paper.DIVERSITY_TABLE3["Average"]))


def results_path(variant: str, root: str | None = None) -> str:
    """Where the CLI writes a tiny-world variant's full-size numbers."""
    from ...tiny.loader import data_dir

    return os.path.join(root or data_dir(), variant, "hybrid_eval.json")


def load_results(variant: str, root: str | None = None) -> dict | None:
    """The committed full-size results of a variant, or None when that variant has none (yet)."""
    path = results_path(variant, root)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def base_grain_note(variant: str, student: str, root: str | None = None) -> str | None:
    """The caveat on the base's FID from the variant's committed teacher_grain.json (tiny-world chapter), or None."""
    from ...tiny.loader import data_dir

    path = os.path.join(root or data_dir(), variant, "teacher_grain.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        g = json.load(f)
    fid = {r["sampler"]: r for r in g["fid"]}
    if "DDIM" not in fid or "Euler ancestral" not in fid:
        return None
    st = next((r for r in g["students"] if r["student"] == student), None)
    lead = "carries its grain" if fid["DDIM"]["grain_visible_frac"] >= 0.5 else "depends on its sampler"
    return (f"**The base's FID {lead}.** On this world the teacher's 50-step DDIM leaves a visible grain on "
            f"{fid['DDIM']['grain_visible_frac']:.0%} of its samples (90th percentile "
            f"{fid['DDIM']['grain_p90']:.1f} levels; the tiny-world chapter). On the teacher evaluation's "
            f"{fid['DDIM']['n']:,} prompts and seeds its FID_tiny is {fid['DDIM']['fid']:.1f} on DDIM and "
            f"{fid['Euler ancestral']['fid']:.1f} on Euler ancestral, whose grain is visible on "
            f"{fid['Euler ancestral']['grain_visible_frac']:.0%}. "
            + (f"{student} on its own sampler leaves {st['grain_p90']:.1f} levels at the 90th percentile. "
               if st else "")
            + "So the FID gap between the hybrid and the 50-step base partly measures the base's deterministic "
              "sampler (its grain, and whatever else a stochastic sampler changes), not only what the first step "
              "decides.")


def from_record(d: dict | None) -> Estimate | None:
    """The Estimate of a stored record (as_record), None when missing."""
    return None if d is None else Estimate(**d)


def fmt(d: dict | None, digits: int = 3) -> str:
    """'mean [lo, hi]' of a stored estimate ('–' when missing or not computed)."""
    if d is None or d["mean"] is None or math.isnan(d["mean"]):
        return "–"
    return f"{d['mean']:.{digits}f} [{d['lo']:.{digits}f}, {d['hi']:.{digits}f}]"


def _diff(res, key, digits=3):
    return fmt(res["diffs"].get(key), digits)


def table3_rows(res: dict) -> list[dict]:
    """Table 3: mean pairwise distance per prompt, averaged, with 95% CIs over seeds; Δ to the 50-step base."""
    others = dict.fromkeys(k.split(":")[0] for k in res["rows"] if k.count(":") == 1)
    keys = ["base50", "student", "hybrid", "control"] + [f"{s}:{r}" for s in others
                                                         for r in ("student", "hybrid", "control")]
    out = []
    for k in keys:
        if k not in res["rows"]:
            continue
        r = res["rows"][k]
        base_key = f"diversity:{k}-base50"
        ctrl_key = f"diversity:{k}-control" if k == "student" else f"diversity:{k}-{k.split(':')[0]}:control"
        out.append({"plan": r["label"], "NFE": r["nfe"], "images": r["n"], "diversity": fmt(r["metrics"]["diversity"]),
                    "Δ vs base 50": _diff(res, base_key) if k != "base50" else "",
                    "Δ vs control": _diff(res, ctrl_key) if ctrl_key in res["diffs"] else "",
                    "DMD2 (paper)": PAPER_T3.get(k) if ":" not in k and res["student"] == "dmd2" else None})
    return out


def table3_prompt_rows(res: dict, keys=("base50", "student", "hybrid", "control")) -> list[dict]:
    """Table 3 per prompt: each prompt's mean pairwise distance with its CI, for the main student's rows."""
    out = []
    for i, p in enumerate(res["prompts"]):
        row = {"prompt": p}
        for k in keys:
            if k in res["rows"] and i < len(res["rows"][k]["per_prompt_diversity"]):
                row[res["rows"][k]["label"]] = fmt(res["rows"][k]["per_prompt_diversity"][i])
        out.append(row)
    return out


def table2_rows(res: dict, keys=("base50", "student", "hybrid", "control")) -> list[dict]:
    """Table 2: FID, IS, adherence, NFE and seconds per image, all from the same run; the paper's row beside."""
    fid = "FID_tiny" if res["scale"] == "tiny" else "FID"
    is_ = "IS (evaluator shape×color)" if res["scale"] == "tiny" else "IS"
    adh = "adherence" if res["scale"] == "tiny" else "CLIP score"
    out = []
    for k in keys:
        if k not in res["rows"]:
            continue
        r, p = res["rows"][k], PAPER_T2.get(PAPER_ROW.get(k, ""), {})
        m = r["metrics"]
        out.append({"plan": r["label"], "steps": len(r["timesteps"]), "NFE": r["nfe"], "images": r["n"],
                    fid: fmt(m["fid"], 2), is_: fmt(m["inception_score"], 3), adh: fmt(m["adherence"]),
                    "s / image": fmt(r["seconds_per_image"], 4),
                    "FID": p.get("FID"), "IS": p.get("IS"), "CLIP": p.get("CLIP"), "time (s)": p.get("time_s")})
    return out


def table4_rows(res: dict) -> list[dict]:
    """Table 4: skip the student's first step versus the hybrid, with the paired differences."""
    rows = table2_rows(res, ("hybrid", "skip_first"))
    if len(rows) == 2:
        rows.append({"plan": "skip first − hybrid (paired, 95% CI)", "steps": None, "NFE": None, "images": None,
                     **{c: _diff(res, f"{m}:skip_first-hybrid", d) for c, m, d in
                        zip(list(rows[0])[4:7], ("fid", "inception_score", "adherence"), (2, 3, 3))},
                     "s / image": _diff(res, "seconds:skip_first-hybrid", 4)})
    return rows


def frontier_rows(res: dict) -> list[dict]:
    """'Is the hybrid better than simply running the base with few steps?': paired hybrid − base-only plan."""
    out = []
    for k in ("base_own2", "base_own4", "base_own8", "base_dpm4", "base_dpm8", "control"):
        if k in res["rows"] and f"diversity:hybrid-{k}" in res["diffs"]:
            r = res["rows"][k]
            out.append({"base-only plan": r["label"], "its NFE": r["nfe"], "hybrid NFE": res["rows"]["hybrid"]["nfe"],
                        "its diversity": fmt(r["frontier"]["diversity"]), "its FID": fmt(r["frontier"]["fid"], 2),
                        "Δ diversity (hybrid − it)": _diff(res, f"diversity:hybrid-{k}"),
                        "Δ FID (hybrid − it)": _diff(res, f"fid:hybrid-{k}", 2)})
    return out


def sweep(res: dict, family: str) -> list[tuple]:
    """(x, label, frontier diversity, frontier FID) of a Fig. 7 panel, the default hybrid (and student) included."""
    rows = res["rows"]
    pts = []
    for k, r in rows.items():
        if family == "fig7a" and (r["family"] == "fig7a" or k == "hybrid"):
            pts.append((r["guidance"][0], r["label"], r["frontier"]["diversity"], r["frontier"]["fid"]))
        elif family == "fig7b" and (r["family"] == "fig7b" or k in ("hybrid", "student")):
            x = 0 if k == "student" else sum(m == "base" for m in r["models"])
            pts.append((x, r["label"], r["frontier"]["diversity"], r["frontier"]["fid"]))
        elif family == "fig7c" and r["family"] == "fig7c":
            pts.append((sum(m == "base" for m in r["models"]), r["label"], r["frontier"]["diversity"],
                        r["frontier"]["fid"]))
    return sorted(pts, key=lambda p: p[0])


def _errorbar(ax, pts, idx, **kw):
    xs = [p[0] for p in pts]
    ds = [p[idx] for p in pts]
    m = [d["mean"] for d in ds]
    err = [[d["mean"] - d["lo"] for d in ds], [d["hi"] - d["mean"] for d in ds]]
    return ax.errorbar(xs, m, yerr=err, capsize=3, marker="o", **kw)


def plot_fig7(res: dict, caption: str):
    """Fig. 7 (a) base CFG, (b) k base steps, (c) base steps spent on the first interval: diversity (left axis) and
    FID (right axis) with 95% CIs, all on the common footing (replicate 0, the sweep's seeds)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    xlabels = {"fig7a": "(a) base CFG of the first step", "fig7b": "(b) k = student steps run by the base",
               "fig7c": "(c) base DPM++ steps for the first interval"}
    for ax, fam in zip(axes, ("fig7a", "fig7b", "fig7c")):
        pts = sweep(res, fam)
        if not pts:
            ax.set_title(f"{xlabels[fam]}: not run"), ax.axis("off")
            continue
        _errorbar(ax, pts, 2, color="C0", label="diversity")
        ax.set_xlabel(xlabels[fam]), ax.set_ylabel("diversity ↑", color="C0")
        ax2 = ax.twinx()
        _errorbar(ax2, pts, 3, color="C3", label="FID", linestyle="--")
        ax2.set_ylabel("FID ↓", color="C3")
        ax.set_xticks(sorted({p[0] for p in pts}))
        if fam == "fig7c" and "hybrid" in res["rows"]:  # the paper's hybrid: one base step on the student's sampler
            ax.axhline(res["rows"]["hybrid"]["frontier"]["diversity"]["mean"], color="C0", linestyle=":", lw=1)
            ax.annotate("k=1 hybrid (student's sampler)", (pts[0][0], res["rows"]["hybrid"]["frontier"]["diversity"]
                                                            ["mean"]), fontsize=7, color="C0", xytext=(2, 3),
                        textcoords="offset points")
    fig.suptitle(caption, fontsize=10)
    fig.tight_layout()
    return fig


FRONTIER_FAMILIES = {  # legend label → row keys (ordered by NFE)
    "hybrid over k (k=0: student)": lambda rows: ["student", "hybrid"] + [k for k in rows if k.startswith("hybrid_k")],
    "skip first step": lambda rows: ["skip_first"],
    "base, own sampler (2–50 steps)": lambda rows: [k for k in rows if k.startswith("base_own")] + ["base50"],
    "base, DPM-Solver++": lambda rows: [k for k in rows if k.startswith("base_dpm")],
    "base on the student's sampler": lambda rows: ["control"],
    "hybrid, base CFG > 0": lambda rows: [k for k in rows if k.startswith("hybrid_g")],
}


def plot_frontier(res: dict, caption: str):
    """The honest frontier: diversity and FID against NFE for every plan family, 95% CIs, common footing."""
    import matplotlib.pyplot as plt

    rows = res["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for i, (label, pick) in enumerate(FRONTIER_FAMILIES.items()):
        keys = [k for k in pick(rows) if k in rows]
        if not keys:
            continue
        pts = sorted([(rows[k]["nfe"], k, rows[k]["frontier"]["diversity"], rows[k]["frontier"]["fid"]) for k in keys],
                     key=lambda p: p[0])
        same = [p for p in pts if p[0] == pts[0][0]]  # points at one NFE (hybrid over k): spread them a little
        pts = [(x * 1.05 ** j, *rest) if len(same) > 1 else (x, *rest) for j, (x, *rest) in enumerate(pts)]
        for ax, idx in zip(axes, (2, 3)):
            _errorbar(ax, pts, idx, color=f"C{i}", label=label, linestyle="-" if len(pts) > 1 else "none")
            for x, k, *vals in pts:
                ax.annotate(_short(k), (x, vals[idx - 2]["mean"]), fontsize=6, xytext=(3, 2),
                            textcoords="offset points")
    for ax, name in zip(axes, ("diversity ↑", "FID ↓")):
        ax.set_xscale("log", base=2), ax.set_xlabel("NFE per image (log scale)"), ax.set_ylabel(name)
    axes[1].legend(fontsize=8, loc="upper right")
    fig.suptitle(caption, fontsize=10)
    fig.tight_layout()
    return fig


def _short(key: str) -> str:
    """A point's tag on the frontier: k for the hybrid family, g for the CFG sweep, steps for the base."""
    tags = {"student": "k=0", "hybrid": "k=1", "control": "", "skip_first": "", "base50": "50"}
    if key in tags:
        return tags[key]
    for prefix, tag in (("hybrid_k", "k="), ("hybrid_g", "g="), ("base_own", ""), ("base_dpm", "")):
        if key.startswith(prefix):
            return tag + key[len(prefix):]
    return ""


def _n(res, *keys) -> int:
    return min(res["rows"][k]["n"] for k in keys if k in res["rows"]) if any(k in res["rows"] for k in keys) else 0


def summary_entries(res: dict) -> list[dict]:
    """C4–C8 entries; `holds` is read from the verdicts `hybrid_eval.verdicts` computed on the CIs."""
    v, rows, s, sc = res["verdicts"], res["rows"], res["student"], res["scale"]
    t3 = paper.DIVERSITY_TABLE3["Average"]
    others = v.get("C4_others_vs_base", {})
    c4_note = (f"vs the control (base on {s}'s sampler and grid): Δ {_diff(res, 'diversity:student-control')}, "
               f"verdict {v.get('C4_vs_control')}; other students less diverse than base 50: "
               f"{sum(x is True for x in others.values())}/{len(others)} (not: "
               f"{[k for k, x in others.items() if x is False]}, inconclusive: "
               f"{[k for k, x in others.items() if x is None]})")
    ents = [
        claims.entry("C4", f"DreamSim diversity base {t3[0]} vs DMD2 {t3[1]}",
                     f"{s} − base 50: {_diff(res, 'diversity:student-base50')}", v.get("C4"), sc,
                     _n(res, "student", "base50"), c4_note),
        claims.entry("C5", f"hybrid {t3[2]} ≥ base {t3[0]} at the student's 4 steps",
                     f"hybrid − base 50: {_diff(res, 'diversity:hybrid-base50')}; hybrid − {s}: "
                     f"{_diff(res, 'diversity:hybrid-student')}; NFE hybrid {rows.get('hybrid', {}).get('nfe')} vs "
                     f"{s} {rows.get('student', {}).get('nfe')}", v.get("C5"), sc, _n(res, "hybrid", "base50"),
                     "holds needs hybrid > base 50 and > student (paired CIs) at no extra NFE; hybrid − base on few "
                     f"steps: own 2 steps {_diff(res, 'diversity:hybrid-base_own2')}, DPM++ 4 steps "
                     f"{_diff(res, 'diversity:hybrid-base_dpm4')}"),
        claims.entry("C6", "FID base 12.74, DMD2 15.52, hybrid 10.79",
                     f"FID hybrid − base 50: {_diff(res, 'fid:hybrid-base50', 2)}; hybrid − {s}: "
                     f"{_diff(res, 'fid:hybrid-student', 2)}", v.get("C6"), sc, _n(res, "hybrid", "base50"),
                     "FID_tiny on the evaluator's features (tiny) / Inception (sdxl); paired bootstrap over seeds"),
        claims.entry("C7", "skip-first: FID 10.12 vs 10.79 (better), IS 24.69 vs 26.13 and CLIP 31.71 vs 32.12 (worse)",
                     f"skip − hybrid: FID {_diff(res, 'fid:skip_first-hybrid', 2)}, IS "
                     f"{_diff(res, 'inception_score:skip_first-hybrid')}, adherence "
                     f"{_diff(res, 'adherence:skip_first-hybrid')}", v.get("C7"), sc, _n(res, "skip_first"),
                     "holds needs the paper's whole pattern: lower FID, lower IS and lower adherence"),
        claims.entry("C8", "base CFG ≈ 0 and k = 1 best (Fig. 7a, 7b)",
                     f"hybrid (g=0, k=1) − strongest rival: g → {v.get('C8_guidance_rival')}: "
                     f"{_diff(res, 'diversity:hybrid-' + str(v.get('C8_guidance_rival')))}; k → "
                     f"{v.get('C8_k_rival')}: {_diff(res, 'diversity:hybrid-' + str(v.get('C8_k_rival')))}",
                     v.get("C8"), sc, _n(res, "hybrid_k2"),
                     "diversity on the common footing; the rival is the sweep point with the highest diversity"),
    ]
    return ents


def _cmp(h, better: str, worse: str, same: str) -> str:
    return {True: better, False: worse, None: same + " (the CI straddles 0)"}[h]


def frontier_answer(res: dict) -> str:
    """'Is the hybrid better than simply running the base with few steps?', answered from the paired CIs."""
    from ...book.claims import verdict

    rows, out = res["rows"], []
    if "hybrid" not in rows:
        return "The hybrid was not run."
    for k in ("base_own2", "base_dpm4", "control"):
        if k not in rows or f"diversity:hybrid-{k}" not in res["diffs"]:
            continue
        dv, df = from_record(res["diffs"][f"diversity:hybrid-{k}"]), from_record(res["diffs"].get(f"fid:hybrid-{k}"))
        out.append(f"Against **{rows[k]['label']}** ({rows[k]['nfe']} NFE; the hybrid uses {rows['hybrid']['nfe']}) "
                   f"the hybrid is {_cmp(verdict(dv, '>'), 'more diverse', 'less diverse', 'as diverse')} "
                   f"(Δ {fmt(res['diffs'][f'diversity:hybrid-{k}'])}) and "
                   f"its FID is {_cmp(verdict(df, '<'), 'better', 'worse', 'indistinguishable')} "
                   f"(Δ {fmt(res['diffs'].get(f'fid:hybrid-{k}'), 2)}).")
    return " ".join(out)
