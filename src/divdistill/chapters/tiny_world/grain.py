"""Where the teacher's grain comes from (issue 19's "no visible grain"): the acceptance sampler (50 DDIM steps, CFG 4)
against its guidance, its step count and stochastic samplers on the same grid and prior; the one-step x̂0 of
forward-diffused data against t; every student on its own sampler; FID_tiny of the acceptance sampler beside a
stochastic one on the same samples.

`python -m divdistill.chapters.tiny_world --what grain --variant V` writes <variant>/teacher_grain.json.
"""
from __future__ import annotations

import dataclasses

import torch
from diffusers import DDPMScheduler, EulerAncestralDiscreteScheduler, LCMScheduler

from ... import metrics as M
from ...plan import Plan, Step, base, distilled
from ...registry import World, scheduler_factory
from ...sampling import run_plan
from ...tiny.quality import (GRAIN_VISIBLE, background_grain, fid_sample, fid_seeds, flat_background, grain_stats,
                             high_pass)
from ...prior import amplitude_spread, apply_prior
from ...tiny.schedule import (PRIORS, alpha_T, diffusers_config, prior_of, prior_spread, prior_std,
                               scheduler_config)
from ...tiny.world import sample_scenes
from .measure import forward_diffuse, on_custom_grid

STOCHASTIC = {"DDPM": DDPMScheduler, "Euler ancestral": EulerAncestralDiscreteScheduler}
SWEEP = (("DDIM", 50, 4.0), ("DDIM", 50, 1.0), ("DDIM", 200, 4.0), ("DDPM", 50, 4.0), ("Euler ancestral", 50, 4.0))
ONE_STEP_T = (19, 99, 299, 499, 699, 899)


def scratch(world: World) -> World:
    """The world with its own registry, so that the teacher registered on other samplers stays out of the caller's."""
    return dataclasses.replace(world, specs=dict(world.specs))


def teacher_plan(world: World, sampler: str, steps: int, guidance: float) -> Plan:
    """The teacher on `sampler` over the grid of its own `steps`-step DDIM plan (trailing: first step t = 999); a
    stochastic sampler registers the teacher under it in `world` (pass a `scratch` copy)."""
    grid = base(world, n=steps, guidance=guidance)
    if sampler == "DDIM":
        return grid
    if sampler not in STOCHASTIC:
        raise ValueError(f"unknown sampler {sampler!r}; valid: {['DDIM', *STOCHASTIC]}")
    make = scheduler_factory(STOCHASTIC[sampler], diffusers_config(world.extras["schedule"]),
                             timestep_spacing="trailing")
    name = on_custom_grid(world, world.base_name, make, f"@{sampler.replace(' ', '_')}")
    return Plan(tuple(Step(name, s.timestep, guidance) for s in grid.steps), f"{sampler}({steps}, cfg {guidance:g})")


def _cases(n: int, seed: int) -> tuple[list[str], list[int]]:
    """The prompts (of n data scenes) and seeds every sampler and student is measured on."""
    return sample_scenes(n, seed=80_000 + seed).prompts, [seed * 10_000 + i for i in range(n)]


def sampler_grain(world: World, n: int = 64, seed: int = 0, sweep=SWEEP) -> list[dict]:
    """Grain of the teacher's samples (data scenes' prompts, seeds seed·10⁴ + i) for every sampler of SWEEP."""
    (prompts, seeds), world = _cases(n, seed), scratch(world)
    x_T = world.noise(seeds)  # (B, C, H, W): every plan's own start, kept to see how much of it survives
    rows = []
    for sampler, steps, g in sweep:
        imgs = run_plan(world, teacher_plan(world, sampler, steps, g), prompts, seeds, capture=False, x_T=x_T).images
        rows.append({"sampler": sampler, "steps": steps, "cfg": g, "n": n, **grain_stats(imgs),
                     **noise_carry(imgs, x_T)})
    return rows


def prior_grain(world: World, n: int = 64, seed: int = 0) -> list[dict]:
    """Grain of the acceptance sampler from each prior of PRIORS on the same draws ε (scaled, and for the last one each
    draw's amplitude spread narrowed): the marginal prior N(0, (1 − ᾱ_T) I) removes the unit prior's excess at the
    pixel scale, SDXL's spread the louder draws' excess."""
    (prompts, seeds), world = _cases(n, seed), scratch(world)
    eps = world.unit_noise(seeds)  # (B, C, H, W): the unit draws behind every prior
    schedule, rows = world.extras["schedule"], []
    for prior in PRIORS:
        declared = {**schedule, "prior": prior}
        std = prior_std(declared)
        x_T = apply_prior(eps, std, prior_spread(declared))
        imgs = run_plan(world, base(world, n=50, guidance=4.0), prompts, seeds, capture=False, x_T=x_T).images
        rows.append({"prior": prior, "x_T std": std, "world's": prior == prior_of(schedule), "n": n,
                     **grain_stats(imgs), **noise_carry(imgs, eps)})
    return rows


def prior_excess(schedule: dict) -> dict:
    """What a unit prior adds where the data has no variance (the pixel scale): its excess noise amplitude over the
    training marginal's, (1 − ᾱ_T)^(−1/2) − 1, and that excess read as x̂0 at the first step, (1 − √(1 − ᾱ_T))/√ᾱ_T."""
    a_T = alpha_T(schedule)
    return {"alpha_T": a_T, "excess": (1 - a_T) ** -0.5 - 1, "in x0": (1 - (1 - a_T) ** 0.5) / a_T ** 0.5}


def noise_carry(images: torch.Tensor, x_T: torch.Tensor) -> dict:
    """How much of the initial noise's finest scale is still in the image: on flat backgrounds, the correlation of the
    two high-passes and the image's 8-bit levels per unit of x_T's."""
    m = flat_background(images).expand_as(images)
    a, b = high_pass(images.float().clamp(-1, 1))[m].double(), high_pass(x_T.float().cpu())[m].double()
    return {"corr with x_T": float(torch.corrcoef(torch.stack([a, b]))[0, 1]),
            "levels per unit x_T": float((a * b).sum() / (b * b).sum() * 127.5)}


def start_amplitude(images: torch.Tensor, x_T: torch.Tensor, prior_std: float) -> dict:
    """Grain against each start's own amplitude: x_T's empirical std over the prior's, which spreads by (2N)^(-1/2) for
    N values per start; the fraction of visible grain among starts above the prior's std and among the rest."""
    g, r = background_grain(images), x_T.flatten(1).std(1).double().cpu() / prior_std  # (B,), (B,)
    ok = ~g.isnan()
    above, rest = ok & (r > 1), ok & (r <= 1)
    vis = lambda m: float((g[m] > GRAIN_VISIBLE).float().mean()) if m.any() else float("nan")  # noqa: E731
    return {"values per start": int(x_T[0].numel()), "start std spread": amplitude_spread(x_T[0].numel()),
            "corr grain, start std": float(torch.corrcoef(torch.stack([g[ok].double(), r[ok]]))[0, 1]),
            "visible, start above prior": vis(above), "visible, start at or below": vis(rest),
            "n above": int(above.sum()), "n at or below": int(rest.sum())}


def student_grain(world: World, n: int = 64, seed: int = 0) -> list[dict]:
    """Grain of each student on its own sampler (the same prompts and seeds as `sampler_grain`)."""
    prompts, seeds = _cases(n, seed)
    return [{"student": s, "sampler": type(world.spec(s).make_scheduler()).__name__.replace("Scheduler", ""), "n": n,
             **grain_stats(run_plan(world, distilled(world, s), prompts, seeds, capture=False).images)}
            for s in world.students]


def one_step_grain(world: World, n: int = 64, seed: int = 0, ts=ONE_STEP_T) -> list[dict]:
    """Grain of the teacher's x̂0 from data forward-diffused to t (one conditional step, CFG 4): what each t's
    denoiser leaves on a flat background when its input is on the training distribution."""
    sc, world = sample_scenes(n, seed=81_000 + seed), scratch(world)
    name = on_custom_grid(world, world.base_name,
                          scheduler_factory(LCMScheduler, diffusers_config(world.extras["schedule"])))
    ac = world.spec(name).make_scheduler().alphas_cumprod
    g = world.spec(world.base_name).guidance
    rows = []
    for t in ts:
        x_t = forward_diffuse(sc.images, t, ac, seed)  # (B, C, H, W)
        res = run_plan(world, Plan((Step(name, int(t), g),), f"one step at {t}"), sc.prompts, list(range(n)),
                       capture=True, x_T=x_t)
        noise_levels = float(((1 - ac[t]) / ac[t]).sqrt()) * 127.5  # the noise std in x0 units, 8-bit levels
        rows.append({"t": int(t), "noise (levels)": noise_levels, **grain_stats(res.dt[0])})
    return rows


def sampler_fid(world: World, evaluator, n: int = 1000, seed: int = 1234) -> list[dict]:
    """FID_tiny and grain of the teacher on DDIM (the acceptance) and on Euler ancestral, 50 steps, CFG 4, on the
    teacher evaluation's FID set (tiny.quality.fid_sample: its prompts and seeds)."""
    rows, world = [], scratch(world)
    x_T = world.noise(fid_seeds(n))  # (B, C, H, W): the starts fid_sample's plans draw
    for sampler in ("DDIM", "Euler ancestral"):
        real, fake = fid_sample(world, teacher_plan(world, sampler, 50, 4.0), n, seed)
        rows.append({"sampler": sampler, "steps": 50, "cfg": 4.0, "n": n, "fid": M.fid(evaluator, real.images, fake),
                     **grain_stats(fake), **start_amplitude(fake, x_T, world.prior_std)})
    return rows


def diagnose_grain(world: World, evaluator, n: int = 64, n_fid: int = 1000, seed: int = 0) -> dict:
    """The measurements above for one world's teacher and students (teacher_grain.json)."""
    return {"variant": world.extras.get("variant"), "n": n, "prior": prior_grain(world, n, seed),
            "prior_excess": {"world": prior_excess(world.extras["schedule"]),
                             "SD": prior_excess(scheduler_config(1.0))},
            "sampler": sampler_grain(world, n, seed),
            "students": student_grain(world, n, seed), "one_step": one_step_grain(world, n, seed),
            "fid": sampler_fid(world, evaluator, n_fid) if n_fid else []}
