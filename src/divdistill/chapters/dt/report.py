"""Verdicts of claims C2 (Fig. 3–4: students commit in their first step) and C3 (Fig. 5: early steps decide)."""
from __future__ import annotations

from ...book import claims as C
from .trajectory import CONTROL, PAPER_STUDENTS, commit, commit_t_diff, fmt_pct, fmt_t

PAPER_C2 = ("Fig. 3–4: a distilled model's first-step x̂0 already shows the final structure; the base's x̂0 needs "
            "≈30% of its steps")
PAPER_C3 = ("Fig. 5 (DreamSim(DT_t, final) vs % of steps): distilled models settle within the first step "
            "(≈10%), the base after ≈30%")


def claim_students(curves: dict) -> list[str]:
    """The students a verdict is about: the paper's four where present (tiny analogues share names), else all."""
    names = [n for n in curves if n != "base" and not n.startswith("base on ")]
    paper = [n for n in names if n in PAPER_STUDENTS]
    return paper or names


def c2(curves: dict, threshold: float) -> tuple[list[dict], dict]:
    """Per student: first-step distance(x̂0, final) with CI, committed (CI below threshold), and paired difference
    to the base's first step (> 0: the student is closer). Returns (table rows, summary entry fields)."""
    b0 = curves["base"].dist[0]
    rows, verdicts, parts = [], [], []
    judged = claim_students(curves)
    for s in [n for n in curves if n != "base" and not n.startswith("base on ")]:
        d0 = curves[s].dist[0]
        est, diff = C.bootstrap(d0), C.bootstrap_diff(b0, d0, paired=True)
        committed, closer = C.verdict(est, "<", threshold), C.verdict(diff, ">")
        ctrl = curves.get(CONTROL.format(s))
        rows.append({"student": s, "in verdict": s in judged, "first-step distance": str(est),
                     "below threshold?": committed, "base first step − student first step": str(diff),
                     "student closer?": closer,
                     "control first-step distance": str(C.bootstrap(ctrl.dist[0])) if ctrl is not None else None})
        if s in judged:
            verdicts += [committed, closer]
            parts.append(f"{s} {est.mean:.3f} [{est.lo:.3f}, {est.hi:.3f}]")
    base = C.bootstrap(b0)
    ours = (f"first-step distance(x̂0, final), threshold {threshold:.3f}: base {base}; " + "; ".join(parts))
    return rows, {"ours": ours, "holds": C.all_hold(verdicts), "n": len(b0)}


def c3(curves: dict, threshold: float) -> tuple[list[dict], dict, dict]:
    """Commit points (first step after which the mean distance stays below threshold) per model with CIs, and for
    each student the paired difference of commit t to the base's (> 0: the student commits at more noise).
    Returns (table rows, summary entry fields, name → commit point)."""
    cps = {n: commit(c, threshold) for n, c in curves.items()}
    rows = [{"model": n, "steps": len(curves[n].timesteps), "commit t": fmt_t(cp["t"]),
             "commit % of steps": fmt_pct(cp["fraction"]),
             "Fig. 5 commit % of steps": _paper_pct(n)} for n, cp in cps.items()]
    verdicts, parts = [], []
    for s in claim_students(curves):
        diff = commit_t_diff(curves[s], curves["base"], threshold)
        v = C.verdict(diff, ">")
        verdicts.append(v)
        parts.append(f"{s} t {cps[s]['t'].mean:.0f} ({100 * cps[s]['fraction'].mean:.0f}%), Δt vs base {fmt_t(diff)}")
        for r in rows:
            if r["model"] == s:
                r.update({"commit t − base commit t": fmt_t(diff), "earlier than base?": v})
    b = cps["base"]
    ours = (f"commit (threshold {threshold:.3f}): base t {b['t'].mean:.0f} [{b['t'].lo:.0f}, {b['t'].hi:.0f}] "
            f"({100 * b['fraction'].mean:.0f}% of steps); " + "; ".join(parts))
    return rows, {"ours": ours, "holds": C.all_hold(verdicts), "n": cps["base"]["n"]}, cps


def _paper_pct(name: str) -> str:
    if name == "base":
        return "≈30%"
    return "–" if name.startswith("base on ") else "≈10% (first step)"


def reading(cps: dict, lay_cps: dict | None, holds_c3) -> str:
    """A plain-language reading of the commit points (generated from the numbers, never typed)."""
    b = cps["base"]
    studs = [n for n in cps if n != "base" and not n.startswith("base on ")]
    paper = [n for n in studs if n in PAPER_STUDENTS] or studs
    first = [n for n in paper if cps[n]["step"].mean == 0]
    txt = (f"The base commits at t = {b['t'].mean:.0f} ({100 * b['fraction'].mean:.0f}% of its steps; the paper: "
           f"≈30%). Of the paper's students, {len(first)} of {len(paper)} commit in their first step "
           f"({', '.join(first) or 'none'}; the paper: all, ≈10%). ")
    verdict = {True: "holds", False: "does not hold", None: "is inconclusive"}[holds_c3]
    txt += f"C3 as stated here (each student commits at more noise than the base) {verdict}. "
    if lay_cps:
        lb = lay_cps["base"]
        lfirst = [n for n in paper if lay_cps[n]["step"].mean == 0]
        txt += (f"For the layout factors alone the base commits at t = {lb['t'].mean:.0f} "
                f"({100 * lb['fraction'].mean:.0f}%) and {len(lfirst)} of {len(paper)} students in their first step "
                f"({', '.join(lfirst) or 'none'}).")
    return txt
