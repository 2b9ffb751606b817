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
    for v, root in variants.items():
        sdir = os.path.join(root, "students")
        for s in sorted(os.listdir(sdir)) if os.path.isdir(sdir) else []:
            path = os.path.join(sdir, s, "provenance.json")
            if not os.path.exists(path):
                continue
            with open(path) as f:
                rec = json.load(f)
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
