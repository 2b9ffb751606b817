"""DDIL Table 9 and Sec. 5.2 measured in the tiny world: the β sweep, the switches and the shift, per seed (CLI + JSON).

    python -m divdistill.chapters.covariate --n 96 --seeds 0 1 2 --out data/tiny/sd-schedule/covariate_shift.json
"""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from . import shift as cs
from ... import commandline as C
from ... import metrics as M
from ...plan import distilled
from ...io import atomic_write_json, provenance
from ...sampling import CaptureStates, run_plan

SHIFT_PAIRS = (("pd", "pd_ddil"), ("lcm", "lcm_ddil"), ("dmd2", "dmd2_ddil"))  # (plain, DDIL) students


def adherence_parts(evaluator, images, prompts) -> np.ndarray:
    """Per image (factors read back correctly, factors named): pooled adherence = Σ hits / Σ named. (N, 2)"""
    return M.per_image_adherence(evaluator, images, prompts)


def _metrics(real_f, fake_f, adh, teacher_f, bw) -> dict:
    return {"fid": cs.frechet(real_f, fake_f), "adherence": float(adh[:, 0].sum() / max(adh[:, 1].sum(), 1)),
            "mmd_data": cs.mmd2(fake_f, real_f, bw),
            "dist_teacher": float(M.cosine_distance(fake_f, teacher_f).mean())}


def seed_record(world, evaluator, teacher: str, student: str, n: int, seed: int, k: int = 8, batch_size: int = 64,
                progress=print) -> dict:
    """One seed of Table 9: n data prompts, every β and switch pattern per image, metrics against n data images."""
    from ...tiny.world import sample_scenes

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


def _met_states(world, plan, prompts, seeds) -> torch.Tensor:
    """The x_t each step of a run met (its models' inputs, VP convention), from run_plan's callback: (S, B, C, H, W)."""
    cap = CaptureStates()
    run_plan(world, plan, prompts, seeds, capture=False, callback=cap)
    return torch.stack(cap.x_t).double().cpu()


def shift_profile(world, features, models, n: int, seed: int, batch_size: int = 64) -> list[dict]:
    """The shift at each student timestep: MMD² between the x_t a model meets in its own rollouts and forward-diffused
    data x_t at that t (same prompts), on evaluator features and on pooled pixels; plus the data-vs-data null."""
    from ...tiny.world import sample_scenes

    real, other = sample_scenes(n, seed=70_000 + seed), sample_scenes(n, seed=80_000 + seed)
    seeds = [seed * 100_000 + 50_000 + i for i in range(n)]
    ac, rows = cs.alphas_cumprod(world), []
    gen = torch.Generator().manual_seed(seed)
    for name in models:
        plan = distilled(world, name)
        st = torch.cat([_met_states(world, plan, real.prompts[j:j + batch_size], seeds[j:j + batch_size])
                        for j in range(0, n, batch_size)], 1)  # (S, n, C, H, W)
        for i, t in enumerate(plan.timesteps):
            rows.append({"model": name, "t": t, **_shift(features, st[i], cs.forward_diffuse(real.images, t, ac, gen))})
    for t in sorted({r["t"] for r in rows}, reverse=True):  # the null: two independent data samples at t
        rows.append({"model": "data (null)", "t": t, **_shift(features, cs.forward_diffuse(other.images, t, ac, gen),
                                                           cs.forward_diffuse(real.images, t, ac, gen))})
    return rows


TEACHER = "teacher (32 steps)"


def teacher_shift(world, features, student: str, n: int, seed: int, k: int = 8, batch_size: int = 64) -> list[dict]:
    """The same statistic for the teacher's own 32-step rollouts on the DDIM solver, at the student's timesteps, on
    the prompts and noise of `shift_profile` (Sec. 3: the shift should be larger for the few-step student)."""
    from ...tiny.world import sample_scenes

    real, grid = sample_scenes(n, seed=70_000 + seed), world.spec(student).default_timesteps()
    seeds, ac = [seed * 100_000 + 50_000 + i for i in range(n)], cs.alphas_cumprod(world)
    plan = cs.pattern_plan(world, "T" * len(grid), world.base_name, student, k)
    idx, gen = [plan.timesteps.index(t) for t in grid], torch.Generator().manual_seed(seed + 1)
    st = torch.cat([_met_states(world, plan, real.prompts[j:j + batch_size], seeds[j:j + batch_size])[idx]
                    for j in range(0, n, batch_size)], 1)  # (len(grid), n, C, H, W)
    return [{"model": TEACHER, "t": t, **_shift(features, st[i], cs.forward_diffuse(real.images, t, ac, gen))}
            for i, t in enumerate(grid)]


def add_teacher_shift(out: str, device: str = "cpu", batch_size: int = 64, progress=print) -> dict:
    """Add the teacher's shift rows to a committed study (same seeds and sizes); rewrites `out` atomically."""
    from ...book.chapter import open_chapter

    with open(out) as f:
        study = json.load(f)
    c = study["config"]
    ch = open_chapter("covariate_study", "tiny", device, **({"variant": c["variant"]} if c.get("variant") else {}))
    t0 = time.time()
    for s in c["seeds"]:
        rows = [r for r in study["shift"][str(s)] if r["model"] != TEACHER]
        study["shift"][str(s)] = rows + teacher_shift(ch.world, ch.features, c["student"], c["n_shift"], s, c["k"],
                                                      batch_size)
        if progress:
            progress(f"teacher shift, seed {s}: {time.time() - t0:.0f}s")
    study["provenance"]["teacher_shift"] = provenance(c, int(c["seeds"][0]), len(c["seeds"]), time.time() - t0)
    atomic_write_json(out, study)
    return study


def _shift(features, x, data) -> dict:
    fx, fd = features(x), features(data)
    px, pd_ = cs.pixel_features(x), cs.pixel_features(data)
    return {"mmd_feat": cs.mmd2(fx, fd, cs.median_bandwidth(fd)), "mmd_pix": cs.mmd2(px, pd_, cs.median_bandwidth(pd_))}


def run(out: str, n: int = 96, seeds=(0, 1, 2), n_shift: int = 256, k: int = 8, variant: str | None = None,
        device: str = "cpu", batch_size: int = 64, progress=print) -> dict:
    """Every seed's Table 9 record and shift profile; resumes from `out`.partial (commandline.Partial) after a
    kill; writes `out` atomically."""
    from ...book.chapter import open_chapter

    ch = open_chapter("covariate_study", "tiny", device, variant=variant) if variant else \
        open_chapter("covariate_study", "tiny", device)
    world, ev = ch.world, ch.evaluator
    config = {"n": n, "seeds": list(seeds), "n_shift": n_shift, "k": k, "teacher": world.base_name, "student": "pd",
              "variant": world.extras.get("variant"), "teacher_guidance": world.spec(world.base_name).guidance,
              **world.prior_settings}
    part = C.Partial(out + ".partial", config)  # per seed; a killed run resumes, other settings start afresh
    models = [m for pair in SHIFT_PAIRS for m in pair if m in world.specs]
    t0 = time.time()
    per_seed, shift = [], {}
    for s in seeds:
        per_seed.append(part.get(f"seed {s}", lambda: seed_record(world, ev, world.base_name, "pd", n, s, k,
                                                                   batch_size, progress)))
        shift[str(s)] = part.get(f"shift {s}", lambda: shift_profile(world, ch.features, models, n_shift, s,
                                                                     batch_size))
        if progress:
            progress(f"seed {s} done ({time.time() - t0:.0f}s)")
    result = {"config": config, "per_seed": per_seed, "shift": shift,
              "provenance": provenance(config, int(seeds[0]), len(seeds), time.time() - t0)}
    atomic_write_json(out, result)
    part.discard()
    return result


PROG = "python -m divdistill.chapters.covariate"


def main(argv=None) -> int:
    """The CLI of the committed covariate_shift.json (module docstring); bad input: one line, exit 2."""
    return C.main_guard(PROG, _main, argv)


def _main(argv) -> int:
    ap = C.add_common(C.parser(PROG, description=__doc__.splitlines()[0]), threads=1,
                      out="the study's JSON (required), e.g. data/tiny/<variant>/covariate_shift.json")
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-shift", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--add-teacher-shift", action="store_true", help="only add the teacher's shift rows to --out")
    a = C.setup(ap.parse_args(argv))
    if not a.out:
        ap.error("--out is required")
    if a.add_teacher_shift:
        add_teacher_shift(a.out, a.device)
    else:
        run(a.out, a.n, a.seeds, a.n_shift, a.k, a.variant, a.device)
