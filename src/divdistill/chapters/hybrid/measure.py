"""Hybrid inference, measured (paper Sec. 5: Tables 2–4, Fig. 7; claims C4–C8) with the controls the paper lacks.

`evaluate(ch, student, sizes)` runs every row of `hybrid_plans.rows` on shared seeds and returns one JSON-able dict:
per row the NFE and seconds per image of the very run that made its images, diversity, FID, IS and adherence with
95% seed-bootstrap CIs; the paired differences the claims rest on; and the verdicts of C4–C8. The CLI writes the
full-size numbers: `python -m divdistill.chapters.hybrid --out data/tiny/<variant>/hybrid_eval.json`.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, replace

from ... import commandline as C
from ...io import checkpoint_hashes
from ...book import claims
from . import stats as S
from ...book.claims import Estimate, verdict
from .plans import rows as plan_rows, students_of
from .runs import Measurer, Sizes, fid_reference, prompts_for, restrict, run_sample

FAMILIES = ("table", "fig7a", "fig7b", "fig7c", "frontier", "other")
DIFFS = [  # (metric, a, b): metric(a) − metric(b), paired on shared seeds
    *[("diversity", a, b) for a, b in [("student", "base50"), ("student", "control"), ("hybrid", "base50"),
                                       ("hybrid", "student"), ("hybrid", "control"), ("skip_first", "hybrid"),
                                       ("control", "base50")]],
    *[(m, a, b) for m in ("fid", "inception_score", "adherence")
      for a, b in [("hybrid", "base50"), ("hybrid", "student"), ("student", "base50"), ("skip_first", "hybrid"),
                   ("control", "base50")]],
]
FRONTIER_BASES = ("base_own2", "base_own4", "base_own8", "base_dpm4", "base_dpm8", "control")


def as_record(e: Estimate) -> dict:
    """An Estimate as the JSON record the results keep (mean, lo, hi, n)."""
    return e.as_dict()


def evaluate(ch, student: str, sizes: Sizes = Sizes(), others=None, families=FAMILIES, cache_dir=None,
             log=print, **row_kw) -> dict:
    """Every row's metrics, the claims' paired differences and the C4–C8 verdicts, as one JSON-able dict.

    Args:
        ch: an open Chapter (`open_chapter`), tiny or sdxl.
        student: the student whose hybrid is measured (Tables 2–4, Fig. 7).
        sizes: sample counts (see `Sizes`).
        others: further students for Table 3 (default: every other student of the world).
        families: which row families to run (subset of FAMILIES).
        cache_dir: per-cell cache of measurements (resumes a killed run); None keeps nothing.
        **row_kw: overrides of the sweeps (guidances, first_steps, base_steps, dpm_steps).
    """
    bad = set(families) - set(FAMILIES)
    if bad:
        raise ValueError(f"unknown families {sorted(bad)}; valid: {FAMILIES}")
    if student not in students_of(ch.world):
        raise KeyError(f"unknown student {student!r}; this world's students: {students_of(ch.world)}")
    others = [s for s in (students_of(ch.world) if others is None else others) if s != student]
    rows = [r for r in plan_rows(ch.world, student, others, **row_kw) if r.family in families]
    t0, measure = time.time(), Measurer(ch)
    ref = fid_reference(ch, sizes)
    samples = {r.key: run_sample(ch, r, sizes, measure, cache_dir, log) for r in rows}
    out = {"scale": ch.scale, "variant": ch.world.extras.get("variant", ch.scale), "student": student,
           "distance": ch.distance_name, "sizes": asdict(sizes), "prompts": prompts_for(ch.scale, sizes.n_prompts),
           "stand_in_metrics": ch.stand_in_metrics, "rows": {}, "diffs": {}}
    for r in rows:
        out["rows"][r.key] = _row_record(r, samples[r.key], ref, sizes, ch.scale)
    for m, a, b in _diffs(samples, others):
        out["diffs"][f"{m}:{a}-{b}"] = as_record(S.paired_diff(m, samples[a], samples[b], ref, sizes.n_boot))
    for a, b in [("hybrid", "student"), ("skip_first", "hybrid"), ("hybrid", "base50")]:
        if a in samples and b in samples:
            out["diffs"][f"seconds:{a}-{b}"] = as_record(claims.bootstrap_diff(samples[a].seconds, samples[b].seconds))
    out["verdicts"] = verdicts(out)
    out["wall_time_s"] = round(time.time() - t0, 1)
    return out


def _diffs(samples: dict, others) -> list[tuple]:
    """The paired differences of DIFFS, Fig. 7, the frontier and the other students, where both rows exist."""
    pairs = list(DIFFS)
    pairs += [("diversity", "hybrid", k) for k in samples if k.startswith(("hybrid_g", "hybrid_k", "first_m"))]
    pairs += [(m, "hybrid", b) for m in ("diversity", "fid") for b in FRONTIER_BASES]
    pairs += [("diversity", k, "base50") for k in samples if k.startswith("hybrid_k")]
    for s in others:
        pairs += [("diversity", f"{s}:student", "base50"), ("diversity", f"{s}:student", f"{s}:control"),
                  ("diversity", f"{s}:control", "base50"),
                  ("diversity", f"{s}:hybrid", f"{s}:student"), ("diversity", f"{s}:hybrid", "base50")]
    return list(dict.fromkeys((m, a, b) for m, a, b in pairs if a in samples and b in samples))


def _row_record(r, s: S.Sample, ref, sizes: Sizes, scale: str) -> dict:
    reps, per = sizes.tier(r.family, r.key)
    rec = {"label": r.label, "family": r.family, "plan": r.plan.name, "timesteps": r.plan.timesteps,
           "models": r.plan.models, "guidance": [st.guidance for st in r.plan], "nfe": s.nfe, "n": s.n,
           "replicates": reps, "per_prompt": per, "seconds_per_image": as_record(S.seconds_per_image(s))}
    # FID's bias depends on n: every Table 2 row is scored on the same number of images per seed block
    fid_sample = restrict(s, range(reps), min(per, sizes.base_per_prompt)) if r.family == "table" else s
    rec["metrics"] = {m: as_record(S.estimate(m, fid_sample if m == "fid" else s, ref, sizes.n_boot)) for m in S.METRICS}
    groups = sorted({k[1] for k in s.cells if k[1] >= 0})
    rec["per_prompt_diversity"] = [as_record(S.estimate("diversity", S.Sample({k: c for k, c in s.cells.items()
                                                                          if k[1] == g}, s.nfe, [], r.key),
                                                   None, sizes.n_boot)) for g in groups]
    fp = min(per, sizes.sweep_per_prompt)
    if reps == 1 and fp == per:  # already on the frontier's common footing (first seed block, the sweep's seeds)
        rec["frontier"] = {m: rec["metrics"][m] for m in ("diversity", "fid")}
    else:
        common = restrict(s, (0,), fp)
        rec["frontier"] = {m: as_record(S.estimate(m, common, ref, sizes.n_boot)) for m in ("diversity", "fid")}
    return rec


def _e(res: dict, key: str) -> Estimate | None:
    d = res["diffs"].get(key)
    return None if d is None else Estimate(**d)


def _best_other(res: dict, prefix: str, metric: str = "diversity") -> str | None:
    """Among the hybrid's sweep rows, the one with the highest point diversity (the strongest rival of the default)."""
    cands = {k: v["metrics"][metric]["mean"] for k, v in res["rows"].items() if k.startswith(prefix)}
    return max(cands, key=cands.get) if cands else None


def verdicts(res: dict) -> dict:
    """C4–C8 from the CIs of paired differences (never typed): True / False / None (inconclusive or not run)."""
    rows, v = res["rows"], {}
    v["C4_vs_base"] = verdict(_e(res, "diversity:student-base50"), "<")
    v["C4_vs_control"] = verdict(_e(res, "diversity:student-control"), "<")
    v["C4_others_vs_base"] = {k.split(":")[1]: verdict(_e(res, k), "<") for k in res["diffs"]
                              if k.count(":") == 2 and k.endswith(":student-base50")}
    nfe = None
    if "hybrid" in rows and "student" in rows:
        d = rows["hybrid"]["nfe"] - rows["student"]["nfe"]
        nfe = verdict(Estimate(d, d, d, 1), "<", margin=0.5)  # the hybrid costs no more forward passes
    v["C5_nfe"] = nfe
    v["C5_vs_base"] = verdict(_e(res, "diversity:hybrid-base50"), ">")
    v["C5_vs_student"] = verdict(_e(res, "diversity:hybrid-student"), ">")
    v["C5"] = claims.all_hold([v["C5_vs_base"], v["C5_vs_student"], nfe])
    v["C6"] = claims.all_hold([verdict(_e(res, "fid:hybrid-base50"), "<"), verdict(_e(res, "fid:hybrid-student"), "<")])
    v["C7"] = claims.all_hold([verdict(_e(res, f"{m}:skip_first-hybrid"), "<")
                               for m in ("fid", "inception_score", "adherence")])
    g, k = _best_other(res, "hybrid_g"), _best_other(res, "hybrid_k")
    v["C8_guidance_rival"], v["C8_k_rival"] = g, k
    v["C8_guidance"] = verdict(_e(res, f"diversity:hybrid-{g}"), ">") if g else None
    v["C8_k"] = verdict(_e(res, f"diversity:hybrid-{k}"), ">") if k else None
    v["C8"] = claims.all_hold([v["C8_guidance"], v["C8_k"]])
    v["C4"] = v["C4_vs_base"]
    return v


PROG = "python -m divdistill.chapters.hybrid"


def main(argv=None) -> int:
    """The CLI of the committed hybrid_eval.json (module docstring); bad input: one line, exit 2."""
    return C.main_guard(PROG, _main, argv)


def _main(argv) -> int:
    p = C.add_common(C.parser(PROG, description=__doc__), threads=int(os.environ.get("OMP_NUM_THREADS", "1")),
                     out="default data/tiny/<variant>/hybrid_eval.json")
    p.add_argument("--scale", default="tiny", choices=["tiny", "sdxl"])
    p.add_argument("--student", default="dmd2")
    p.add_argument("--others", default=None, help="comma-separated further students for Table 3 (default all)")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "divdistill", "hybrid_eval"))
    p.add_argument("--seed", type=int, default=0)
    for f in Sizes.__dataclass_fields__.values():
        p.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=None)
    a = C.setup(p.parse_args(argv))
    import torch

    from ...book.chapter import open_chapter
    from ...io import atomic_write_json, git_commit

    ch = open_chapter("hybrid_diversity", a.scale, a.device, a.seed, **C.world_kwargs(a))
    sizes = replace(Sizes(), **{k: getattr(a, k) for k in Sizes.__dataclass_fields__ if getattr(a, k) is not None})
    others = None if a.others is None else [s for s in a.others.split(",") if s]
    res = evaluate(ch, a.student, sizes, others, tuple(a.families.split(",")), a.cache)
    res["provenance"] = {"git_commit": git_commit(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "command": "python -m divdistill.chapters.hybrid " + " ".join(argv or sys.argv[1:]),
                         "torch_threads": torch.get_num_threads(), "world_root": ch.world.extras.get("root"),
                         "torch": torch.__version__, "checkpoints": checkpoint_hashes(ch.world.extras.get("root"))}
    out = a.out or os.path.join(ch.world.extras.get("root") or ".", "hybrid_eval.json")
    atomic_write_json(out, res)
    print(f"wrote {out} ({res['wall_time_s']} s); verdicts: {res['verdicts']}")
    return 0
