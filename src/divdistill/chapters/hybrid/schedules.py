"""The hybrid chapter's two-schedule comparison: Table 3 and Fig. 7b per tiny-world variant, and the paragraph on what
the noise schedule does to C4 and C5, from each variant's committed hybrid_eval.json."""
from __future__ import annotations

from .report import _diff, fmt


def schedule_rows(by_variant: dict) -> list[dict]:
    """Table 3 and Fig. 7b side by side for every tiny-world variant that has results."""
    out = []
    for variant, res in by_variant.items():
        if res is None:
            out.append({"schedule": variant, "plan": "not available yet"})
            continue
        for k in ("base50", "student", "hybrid", "control") + tuple(k for k in res["rows"] if k.startswith("hybrid_k")):
            if k in res["rows"]:
                r = res["rows"][k]
                out.append({"schedule": variant, "plan": r["label"], "NFE": r["nfe"],
                            "diversity": fmt(r["frontier"]["diversity"]), "FID_tiny": fmt(r["frontier"]["fid"], 2),
                            "Δ vs base 50": _diff(res, f"diversity:{k}-base50") if k != "base50" else ""})
    return out


def schedule_paragraph(by_variant: dict, below: dict | None = None) -> str:
    """One paragraph, generated from the numbers, on what the noise schedule does to C4 and C5; `below` {variant:
    students over their FID_tiny bar} marks a variant whose hybrid student misses its bar as provisional."""
    parts, below = [], below or {}
    for variant, res in by_variant.items():
        if res is None:
            parts.append(f"The **{variant}** world has no hybrid numbers yet (its models or its CLI run are not "
                         "available), so this comparison is not available yet for it.")
            continue
        v = res["verdicts"]
        parts.append(f"Under **{variant}**, {res['student']} − base 50 diversity is "
                     f"{_diff(res, 'diversity:student-base50')} (C4 {_word(v.get('C4'))}), against the sampler "
                     f"control {_diff(res, 'diversity:student-control')}; hybrid − base 50 is "
                     f"{_diff(res, 'diversity:hybrid-base50')} and hybrid − student "
                     f"{_diff(res, 'diversity:hybrid-student')} (C5 {_word(v.get('C5'))}).")
        if res["student"] in below.get(variant, ()):
            parts.append(f"There {res['student']} misses its FID_tiny quality bar, so these verdicts are provisional.")
    return " ".join(parts)


def _word(h) -> str:
    return {True: "holds", False: "does not hold", None: "inconclusive"}[h]
