"""DDIL Table 9 and Sec. 5.2 measured in the tiny world: the β sweep, the switches and the shift, per seed (CLI + JSON).

    python -m divdistill.covariate_study --n 96 --seeds 0 1 2 --out data/tiny/sd-schedule/covariate_shift.json
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from . import covariate_shift as cs
from . import metrics as M
from .plan import distilled
from .provenance import atomic_write_json, provenance
from .sampling import run_plan

SHIFT_PAIRS = (("pd", "pd_ddil"), ("lcm", "lcm_ddil"), ("dmd2", "dmd2_ddil"))  # (plain, DDIL) students


def adherence_parts(evaluator, images, prompts) -> np.ndarray:
    """Per image (factors read back correctly, factors named): pooled adherence = Σ hits / Σ named."""
    out = []
    for img, p in zip(images, prompts):
        a = M.adherence(evaluator, img[None], [p])
        named = len(a) - 1  # one adherence_<factor> key per factor the prompt names
        out.append((a["adherence"] * named if named else 0.0, named))
    return np.asarray(out, dtype=np.float64)  # (N, 2)


def _metrics(real_f, fake_f, adh, teacher_f, bw) -> dict:
    return {"fid": cs.frechet(real_f, fake_f), "adherence": float(adh[:, 0].sum() / max(adh[:, 1].sum(), 1)),
            "mmd_data": cs.mmd2(fake_f, real_f, bw),
            "dist_teacher": float(M.cosine_distance(fake_f, teacher_f).mean())}


def seed_record(world, evaluator, teacher: str, student: str, n: int, seed: int, k: int = 8, batch_size: int = 64,
                progress=print) -> dict:
    """One seed of Table 9: n data prompts, every β and switch pattern per image, metrics against n data images."""
    from .tiny.world import sample_scenes

    real = sample_scenes(n, seed=50_000 + seed)
    prompts, seeds = real.prompts, [seed * 100_000 + i for i in range(n)]
    grid = world.spec(student).default_timesteps()
    by_beta = {b: [cs.mixed_pattern(world, b, s, teacher, student, grid) for s in seeds] for b in cs.BETAS}
    switches = {**{f"T→S@{t}": cs.switch_pattern(world, t, teacher, student, teacher, grid) for t in cs.SWITCH_TS},
                **{f"S→T@{t}": cs.switch_pattern(world, t, student, teacher, teacher, grid) for t in cs.SWITCH_TS}}
    need: dict[str, set] = {}
    for pats in [*by_beta.values(), *([p] * n for p in switches.values())]:
        for i, p in enumerate(pats):
            need.setdefault(p, set()).add(i)
    feats, adh = {}, {}
    for p, idx in sorted(need.items(), key=lambda kv: cs.nfe(kv[0], k)):
        idx = sorted(idx)
        t0 = time.time()
        imgs, _ = cs.run_patterns(world, [p] * len(idx), [prompts[i] for i in idx], [seeds[i] for i in idx],
                                  teacher, student, k, batch_size)
        f, a = M.features(evaluator, imgs), adherence_parts(evaluator, imgs, [prompts[i] for i in idx])
        feats[p] = {i: f[j] for j, i in enumerate(idx)}
        adh[p] = {i: a[j] for j, i in enumerate(idx)}
        if progress:
            progress(f"  seed {seed} pattern {p}: {len(idx)} images, {time.time() - t0:.0f}s")
    real_f = M.features(evaluator, real.images)
    teacher_f = torch.stack([feats["T" * len(grid)][i] for i in range(n)])
    bw = cs.median_bandwidth(real_f)

    def pick(pats):
        return (torch.stack([feats[p][i] for i, p in enumerate(pats)]), np.stack([adh[p][i] for i, p in enumerate(pats)]))

    rec = {"seed": seed, "n": n, "beta": {}, "switch": {}, "bandwidth": bw,
           "floor_fid": cs.frechet(real_f, M.features(evaluator, sample_scenes(n, seed=60_000 + seed).images))}
    for b, pats in by_beta.items():
        f, a = pick(pats)
        rec["beta"][f"{b:.1f}"] = {**_metrics(real_f, f, a, teacher_f, bw), "nfe": float(np.mean([cs.nfe(p, k) for p in pats])),
                                   "teacher_share": float(np.mean([p.count("T") / len(p) for p in pats]))}
    for name, p in switches.items():
        f, a = pick([p] * n)
        rec["switch"][name] = {**_metrics(real_f, f, a, teacher_f, bw), "pattern": p, "nfe": cs.nfe(p, k)}
    return rec


def shift_profile(world, features, models, n: int, seed: int, batch_size: int = 64) -> list[dict]:
    """The shift at each student timestep: MMD² between the x_t a model meets in its own rollouts and forward-diffused
    data x_t at that t (same prompts), on evaluator features and on pooled pixels; plus the data-vs-data null."""
    from .tiny.world import sample_scenes

    real, other = sample_scenes(n, seed=70_000 + seed), sample_scenes(n, seed=80_000 + seed)
    seeds = [seed * 100_000 + 50_000 + i for i in range(n)]
    ac, rows = cs.alphas_cumprod(world), []
    gen = torch.Generator().manual_seed(seed)
    for name in models:
        plan = distilled(world, name)
        sched = type(world.spec(name).make_scheduler()).__name__
        st = []
        for j in range(0, n, batch_size):
            res = run_plan(world, plan, real.prompts[j:j + batch_size], seeds[j:j + batch_size], capture=True)
            st.append(cs.states(world.noise(seeds[j:j + batch_size]), res.dt, res.timesteps, ac, sched, gen))
        st = torch.cat(st, 1)  # (S + 1, n, C, H, W)
        for i, t in enumerate(plan.timesteps):
            rows.append({"model": name, "t": t, **_shift(features, st[i], cs.forward_diffuse(real.images, t, ac, gen))})
    for t in sorted({r["t"] for r in rows}, reverse=True):  # the null: two independent data samples at t
        rows.append({"model": "data (null)", "t": t, **_shift(features, cs.forward_diffuse(other.images, t, ac, gen),
                                                           cs.forward_diffuse(real.images, t, ac, gen))})
    return rows


def _shift(features, x, data) -> dict:
    fx, fd = features(x), features(data)
    px, pd_ = cs.pixel_features(x), cs.pixel_features(data)
    return {"mmd_feat": cs.mmd2(fx, fd, cs.median_bandwidth(fd)), "mmd_pix": cs.mmd2(px, pd_, cs.median_bandwidth(pd_))}


def run(out: str, n: int = 96, seeds=(0, 1, 2), n_shift: int = 256, k: int = 8, variant: str | None = None,
        device: str = "cpu", batch_size: int = 64, progress=print) -> dict:
    """Every seed's Table 9 record and shift profile; resumes from `out`.partial after a kill; writes `out` atomically."""
    from .chapter import open_chapter

    ch = open_chapter("covariate_study", "tiny", device, variant=variant) if variant else \
        open_chapter("covariate_study", "tiny", device)
    world, ev = ch.world, ch.evaluator
    config = {"n": n, "seeds": list(seeds), "n_shift": n_shift, "k": k, "teacher": world.base_name, "student": "pd",
              "variant": world.extras.get("variant"), "teacher_guidance": world.spec(world.base_name).guidance}
    part = out + ".partial"
    done = json.load(open(part)) if os.path.exists(part) else {"config": config, "seeds": {}, "shift": {}}
    if done["config"] != config:
        done = {"config": config, "seeds": {}, "shift": {}}
    models = [m for pair in SHIFT_PAIRS for m in pair if m in world.specs]
    t0 = time.time()
    for s in seeds:
        if str(s) not in done["seeds"]:
            done["seeds"][str(s)] = seed_record(world, ev, world.base_name, "pd", n, s, k, batch_size, progress)
            atomic_write_json(part, done)
        if str(s) not in done["shift"]:
            done["shift"][str(s)] = shift_profile(world, ch.features, models, n_shift, s, batch_size)
            atomic_write_json(part, done)
        if progress:
            progress(f"seed {s} done ({time.time() - t0:.0f}s)")
    result = {"config": config, "per_seed": [done["seeds"][str(s)] for s in seeds],
              "shift": {str(s): done["shift"][str(s)] for s in seeds},
              "provenance": provenance(config, int(seeds[0]), len(seeds), time.time() - t0)}
    atomic_write_json(out, result)
    os.remove(part)
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-shift", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--variant", default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    run(a.out, a.n, a.seeds, a.n_shift, a.k, a.variant)


if __name__ == "__main__":
    main()


# ---- reading the committed study: tables, effects with CIs over seeds, and D1's verdicts ----

def study_path(world) -> str:
    """The committed study of a tiny world: <world folder>/covariate_shift.json."""
    return os.path.join(world.extras["root"], "covariate_shift.json")


def load_study(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _est(values):
    from .claims import bootstrap

    return bootstrap([v for v in values if v == v])


def beta_rows(study: dict) -> list[dict]:
    """Table 9 (β sweep): per β, mean [95% CI over seeds] of FID_tiny, adherence, MMD² to data, distance to the teacher."""
    from .paper import DDIL_TABLE9_BETA

    rows = []
    for b in cs.BETAS:
        per = [s["beta"][f"{b:.1f}"] for s in study["per_seed"]]
        rows.append({"β": b, "teacher share": float(np.mean([p["teacher_share"] for p in per])),
                     "NFE": float(np.mean([p["nfe"] for p in per])),
                     **{c: str(_est([p[c] for p in per])) for c in ("fid", "adherence", "mmd_data", "dist_teacher")},
                     "FID": DDIL_TABLE9_BETA[b][0], "CLIP": DDIL_TABLE9_BETA[b][1]})
    return rows


def switch_rows(study: dict) -> list[dict]:
    """Table 9 (switches): per switch, the pattern, NFE and the same metrics, paper numbers beside."""
    from .paper import DDIL_TABLE9_SWITCH

    rows = []
    for name, (pf, pc) in DDIL_TABLE9_SWITCH.items():
        per = [s["switch"][name] for s in study["per_seed"]]
        rows.append({"switch": name, "pattern": per[0]["pattern"], "NFE": per[0]["nfe"],
                     **{c: str(_est([p[c] for p in per])) for c in ("fid", "adherence", "mmd_data", "dist_teacher")},
                     "FID": pf, "CLIP": pc})
    return rows


def _slope(y) -> float:
    return float(np.polyfit(np.asarray(cs.BETAS), np.asarray(y, dtype=float), 1)[0])


def d1_effects(study: dict) -> dict:
    """D1's effects, each a CI over seeds: slopes over β, and early-vs-late teacher use at equal NFE."""
    seeds = study["per_seed"]
    sw = lambda s, name, c: s["switch"][name][c]  # noqa: E731
    return {
        "fid_slope": _est([_slope([s["beta"][f"{b:.1f}"]["fid"] for b in cs.BETAS]) for s in seeds]),
        "adherence_slope": _est([_slope([s["beta"][f"{b:.1f}"]["adherence"] for b in cs.BETAS]) for s in seeds]),
        "mmd_slope": _est([_slope([s["beta"][f"{b:.1f}"]["mmd_data"] for b in cs.BETAS]) for s in seeds]),
        "fid_student_minus_teacher": _est([s["beta"]["0.0"]["fid"] - s["beta"]["1.0"]["fid"] for s in seeds]),
        # one teacher transition, late (SSST) minus early (TSSS): > 0 when the early one brings the image closer
        "late_minus_early_dist": _est([sw(s, "S→T@250", "dist_teacher") - sw(s, "T→S@749", "dist_teacher") for s in seeds]),
        "late_minus_early_fid": _est([sw(s, "S→T@250", "fid") - sw(s, "T→S@749", "fid") for s in seeds]),
        "late2_minus_early2_dist": _est([sw(s, "S→T@500", "dist_teacher") - sw(s, "T→S@500", "dist_teacher")
                                         for s in seeds]),
    }


def d1_entries(study: dict, scale: str = "tiny") -> list[dict]:
    """D1's summary entries; `holds` from `claims.verdict` on the CIs of `d1_effects`."""
    from .claims import all_hold, entry, verdict

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
    return [{"model": m, "t": t, "MMD² features": str(_est([r["mmd_feat"] for r in rs])),
             "MMD² pixels": str(_est([r["mmd_pix"] for r in rs])), "seeds": len(rs)} for (m, t), rs in by.items()]


def shift_effects(study: dict) -> list[dict]:
    """DDIL − plain MMD² (features) per timestep, paired by seed (same prompts and noise): < 0 = less shift."""
    from .claims import bootstrap_diff

    out = []
    for plain, ddil in SHIFT_PAIRS:
        for t in sorted({r["t"] for rows in study["shift"].values() for r in rows if r["model"] == plain}, reverse=True):
            get = lambda m: [next(r["mmd_feat"] for r in rows if r["model"] == m and r["t"] == t)  # noqa: E731
                             for rows in study["shift"].values()]
            if any(r["model"] == ddil for rows in study["shift"].values() for r in rows):
                out.append({"pair": f"{ddil} − {plain}", "t": t, "ΔMMD² features": str(bootstrap_diff(get(ddil), get(plain),
                                                                                                    paired=True))})
    return out


def estimates(study: dict, part: str, metric: str) -> dict:
    """{β or switch name: Estimate over seeds} of one metric, for plots (part: "beta" or "switch")."""
    keys = study["per_seed"][0][part]
    return {k: _est([s[part][k][metric] for s in study["per_seed"]]) for k in keys}
