"""Where the teacher loses size adherence (issue 19's "≥ 0.90 on every factor"): for each evaluation prompt that names
a size, the share of images on the named side of the small/large split and their mean size, as the evaluator reads
them, for six sources on the same prompts:

- the data (the prompt's own scenes: what the evaluator reads on real images, the ceiling);
- the teacher on its acceptance plan (50 DDIM steps, CFG 4) from the world's sampling prior;
- the same plan started at t = 999 from those data scenes forward-diffused, q(x_T | x_0) (handed a real layout);
- two priors closer to q(x_T) that still hand over no scene: a Gaussian with q(x_T)'s mean and covariance
  (√ᾱ_T·g + the prior's noise, g ~ N(μ, Σ) of the data), and the prior plus the offset noise the teacher trained with;
- a Gaussian with the *prompt's* moments, q(x_T | c) to second order (g ~ N(μ_c, Σ_c) of the prompt's own scenes): the
  signal part of x_T that a start without the prompt lacks, with no scene inside.

When the second misses and the third does not, the teacher renders a size it is given and fails to decide one from
noise: a failure of the first steps, not of rendering. When the unconditional Gaussian and the offset start miss as
the prior does, the gap is not in the prior's first two moments or its noise scales. When the prompt's Gaussian then
closes it, the miss is the prompt's share of q(x_T) that no prompt-free start carries: with the exact score the same
miss would remain (the probability-flow ODE maps a start distribution, not a model's error).

`python -m divdistill.chapters.tiny_world --what size --variant V` writes <variant>/teacher_size.json.
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from ...metrics import factor_hits
from ...plan import base
from ...registry import World
from ...sampling import run_plan
from ...stats import Estimate, bootstrap, bootstrap_diff
from ...tiny.evaluator import SMALL_LARGE_SPLIT
from ...tiny.quality import EVAL_PROMPTS
from ...tiny.schedule import alpha_T, prior_of
from ...tiny.world import SIZE_WORDS, parse_prompt, sample_scenes, scenes_for_prompt
from .measure import forward_diffuse

SIZE_PROMPTS = tuple(p for p in EVAL_PROMPTS if parse_prompt(p)["size"] is not None)
SOURCES = ("data", "teacher from the prior", "teacher from q(x_T | x_0)", "teacher from a Gaussian with q(x_T)'s moments",
           "teacher from the prior + its training's offset noise", "teacher from a Gaussian with q(x_T | c)'s moments")
MOMENT_SCENES = 8000  # data scenes behind the Gaussian's mean and covariance (3,072 values each)


class MomentStarts:
    """x_T = √ᾱ_T·g + (the prior's noise), g ~ N(μ, Σ) with the data's mean and covariance: the Gaussian whose first
    two moments are q(x_T)'s (its noise part exactly the world's prior; no real scene inside). With `prompt`, μ and Σ
    are the prompt's own scenes' (scenes_for_prompt): q(x_T | c) to second order."""

    def __init__(self, alpha_T: float, n_scenes: int = MOMENT_SCENES, seed: int = 0, prompt: str | None = None):
        sc = (sample_scenes(n_scenes, seed=80_000 + seed) if prompt is None
              else scenes_for_prompt(prompt, n_scenes, seed=70_000 + seed))
        x = sc.images.reshape(n_scenes, -1).double()  # (N, 3072)
        self.mu, cov = x.mean(0), torch.cov(x.T)
        self.L = torch.linalg.cholesky(cov + 1e-6 * torch.eye(len(cov), dtype=cov.dtype))  # jitter: N may be < 3,072
        self.scale = alpha_T ** 0.5

    def __call__(self, noise: torch.Tensor, seed: int) -> torch.Tensor:
        z = torch.randn(len(noise), len(self.mu), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        g = (self.mu + z @ self.L.T).reshape(noise.shape)  # (B, C, H, W) ~ N(μ, Σ)
        return (self.scale * g + noise.double().cpu()).float()


def offset_starts(noise: torch.Tensor, offset_noise: float, alpha_T: float, seed: int) -> torch.Tensor:
    """The prior's noise plus the training's offset noise at t = 999: √(1 − ᾱ_T)·σ_o·n, n ~ N(0, 1) per image and
    channel (tiny/teacher.py adds σ_o·n to ε), so the start has q(x_T)'s noise at every scale and no signal."""
    n = torch.randn(len(noise), noise.shape[1], 1, 1, generator=torch.Generator().manual_seed(seed))  # (B, C, 1, 1)
    return noise.cpu() + (1 - alpha_T) ** 0.5 * offset_noise * n


def on_named_side(sizes: torch.Tensor, named: int) -> np.ndarray:
    """1.0 where a read size (pixels) lies on the named side of the small/large split (0 = small, 1 = large): the
    acceptance's own size rule (metrics.factor_hits)."""
    if named not in (0, 1):
        raise ValueError(f"named size must be 0 (small) or 1 (large), got {named!r}")
    hits = factor_hits({"size": sizes.float().cpu()}, [None] * len(sizes), lambda _: {"size": named}, SMALL_LARGE_SPLIT)
    return np.array([float(h["size"]) for h in hits])


def _row(prompt: str, source: str, sizes: torch.Tensor, named: int) -> dict:
    ok = on_named_side(sizes, named)
    return {"prompt": prompt, "named": SIZE_WORDS[named], "source": source, "n": len(ok), "on named side": ok.tolist(),
            "mean size": float(sizes.float().mean())}


def size_rows(world: World, evaluator, n: int = 100, seed: int = 0, prompts=SIZE_PROMPTS, offset_noise: float = 0.0,
              moment_scenes: int = MOMENT_SCENES) -> list[dict]:
    """One row per (size-naming prompt, source): the per-image on-named-side flags and the mean read size (pixels).
    `offset_noise`: the σ_o the teacher trained with (its provenance)."""
    if not offset_noise >= 0:
        raise ValueError(f"offset_noise must be >= 0 (the teacher's training σ_o), got {offset_noise!r}")
    plan = base(world)  # the acceptance plan: 50 DDIM steps, CFG 4, first step t = 999
    t0, a_T = int(plan.timesteps[0]), alpha_T(world.extras["schedule"])
    ac = world.spec(world.base_name).make_scheduler().alphas_cumprod
    moments = MomentStarts(a_T, moment_scenes, seed)
    read = lambda x: evaluator.predict(x.float().clamp(-1, 1))["size"]  # noqa: E731  (B,) pixels
    rows = []
    with torch.no_grad():
        for j, p in enumerate(prompts):
            named = parse_prompt(p)["size"]
            if named is None:
                raise ValueError(f"prompt {p!r} names no size; valid sizes: {SIZE_WORDS}")
            sc = scenes_for_prompt(p, n, seed=90_000 + 100 * seed + j)
            seeds = [seed * 10_000 + 100 * j + i for i in range(n)]
            noise = world.noise(seeds)  # (B, C, H, W): the prior's draws, shared by the last two starts
            k = seed * 100 + j  # one start seed per prompt; the two priors' extra draws offset from it
            given = MomentStarts(a_T, moment_scenes, seed, prompt=p)  # the prompt's own moments
            starts = (None, forward_diffuse(sc.images, t0, ac, seed=k), moments(noise, 50_000 + k),
                      offset_starts(noise, offset_noise, a_T, 60_000 + k), given(noise, 40_000 + k))
            rows.append(_row(p, SOURCES[0], read(sc.images), named))
            for source, x_T in zip(SOURCES[1:], starts):
                x_T = None if x_T is None else x_T.to(world.device, world.dtype)
                rows.append(_row(p, source, read(run_plan(world, plan, [p] * n, seeds, capture=False,
                                                          x_T=x_T).images), named))
    return rows


def flags_of(rows: list[dict], source: str, named: str | None) -> list[float]:
    """Every image's on-named-side flag of one source (one size word, or every one when None)."""
    return [f for r in rows if r["source"] == source and named in (None, r["named"]) for f in r["on named side"]]


def pooled(rows: list[dict], source: str, named: str | None = None) -> dict:
    """Share on the named side over every prompt of one source (optionally one size word), with a 95% bootstrap CI."""
    flags = flags_of(rows, source, named)
    if not flags:
        have = sorted({r["source"] for r in rows})
        raise ValueError(f"no rows for source {source!r}, size {named!r}; sources: {have}")
    e = bootstrap(np.asarray(flags))
    return {"source": source, "named": named or "any", "n": len(flags), "share": e.mean, "lo": e.lo, "hi": e.hi}


def start_gap(rows: list[dict], named: str | None = None, start: str = SOURCES[2]) -> Estimate:
    """Share on the named side from another start (default q(x_T | x_0)) minus from the prior (unpaired bootstrap over
    images): how much a real layout (or a closer prior) at t = 999 adds to the teacher's size adherence."""
    if start not in SOURCES[2:]:
        raise ValueError(f"unknown start {start!r}; valid: {list(SOURCES[2:])}")
    flags = {s: flags_of(rows, s, named) for s in (SOURCES[1], start)}
    if not all(flags.values()):
        raise ValueError(f"no teacher rows for size {named!r} and start {start!r}; sizes: "
                         f"{sorted({r['named'] for r in rows})}, sources: {sorted({r['source'] for r in rows})}")
    return bootstrap_diff(flags[start], flags[SOURCES[1]])


def teacher_offset_noise(root: str | None) -> float:
    """The offset noise σ_o a world's teacher trained with (its provenance config; 0 when none is recorded)."""
    path = os.path.join(root or "", "teacher", "provenance.json")
    if not root or not os.path.exists(path):
        return 0.0
    with open(path) as f:
        return float(json.load(f)["config"].get("offset_noise") or 0.0)


def terminal_of(world: World) -> dict:
    """The world's layout SNR at t = 999 and the signal's share of q(x_T)'s layout-scale variance (tiny.spectrum's
    terminal-leak formula on its schedule and its data's measured layout variance)."""
    from ...tiny.spectrum import LAYOUT_FRACTION, derive, leak_at
    from ...tiny.world import RES

    leak = leak_at(alpha_T(world.extras["schedule"]), RES // LAYOUT_FRACTION, derive()["tiny_layout_variance"])
    return {k: leak[k] for k in ("alpha_bar_T", "layout_snr_T", "signal_share_T")}


def diagnose_size(world: World, evaluator, n: int = 100, seed: int = 0) -> dict:
    """The rows above and their pooled shares for one world's teacher (teacher_size.json)."""
    sigma_o = teacher_offset_noise(world.extras.get("root"))
    rows = size_rows(world, evaluator, n, seed, offset_noise=sigma_o)
    summary = [pooled(rows, s, w) for s in SOURCES for w in (None, *SIZE_WORDS)]
    return {"variant": world.extras.get("variant"), "n": n, "split": SMALL_LARGE_SPLIT, "offset_noise": sigma_o,
            "moment_scenes": MOMENT_SCENES, "prior": prior_of(world.extras.get("schedule", {})),
            "terminal": terminal_of(world), "rows": rows, "pooled": summary}
