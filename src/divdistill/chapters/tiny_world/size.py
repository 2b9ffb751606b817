"""Where the teacher loses size adherence (issue 19's "≥ 0.90 on every factor"): for each evaluation prompt that names
a size, the share of images on the named side of the small/large split and their mean size, as the evaluator reads
them, for three sources on the same prompts:

- the data (the prompt's own scenes: what the evaluator reads on real images, the ceiling);
- the teacher on its acceptance plan (50 DDIM steps, CFG 4) from the world's sampling prior;
- the same plan started at t = 999 from those data scenes forward-diffused, q(x_T | x_0) (handed a real layout).

When the second misses and the third does not, the teacher renders a size it is given and fails to decide one from
noise: a failure of the first steps, not of rendering.

`python -m divdistill.chapters.tiny_world --what size --variant V` writes <variant>/teacher_size.json.
"""
from __future__ import annotations

import numpy as np
import torch

from ...metrics import factor_hits
from ...plan import base
from ...registry import World
from ...sampling import run_plan
from ...stats import Estimate, bootstrap, bootstrap_diff
from ...tiny.evaluator import SMALL_LARGE_SPLIT
from ...tiny.quality import EVAL_PROMPTS
from ...tiny.schedule import prior_of
from ...tiny.world import SIZE_WORDS, parse_prompt, scenes_for_prompt
from .measure import forward_diffuse

SIZE_PROMPTS = tuple(p for p in EVAL_PROMPTS if parse_prompt(p)["size"] is not None)
SOURCES = ("data", "teacher from the prior", "teacher from q(x_T | x_0)")


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


def size_rows(world: World, evaluator, n: int = 100, seed: int = 0, prompts=SIZE_PROMPTS) -> list[dict]:
    """One row per (size-naming prompt, source): the per-image on-named-side flags and the mean read size (pixels)."""
    plan = base(world)  # the acceptance plan: 50 DDIM steps, CFG 4, first step t = 999
    t0 = int(plan.timesteps[0])
    ac = world.spec(world.base_name).make_scheduler().alphas_cumprod
    read = lambda x: evaluator.predict(x.float().clamp(-1, 1))["size"]  # noqa: E731  (B,) pixels
    rows = []
    with torch.no_grad():
        for j, p in enumerate(prompts):
            named = parse_prompt(p)["size"]
            if named is None:
                raise ValueError(f"prompt {p!r} names no size; valid sizes: {SIZE_WORDS}")
            sc = scenes_for_prompt(p, n, seed=90_000 + 100 * seed + j)
            seeds = [seed * 10_000 + 100 * j + i for i in range(n)]
            x_T = forward_diffuse(sc.images, t0, ac, seed=seed * 100 + j).to(world.device)  # (B, C, H, W)
            rows.append(_row(p, SOURCES[0], read(sc.images), named))
            rows.append(_row(p, SOURCES[1], read(run_plan(world, plan, [p] * n, seeds, capture=False).images), named))
            rows.append(_row(p, SOURCES[2], read(run_plan(world, plan, [p] * n, seeds, capture=False,
                                                          x_T=x_T).images), named))
    return rows


def _flags(rows: list[dict], source: str, named: str | None) -> list[float]:
    """Every image's on-named-side flag of one source (one size word, or every one when None)."""
    return [f for r in rows if r["source"] == source and named in (None, r["named"]) for f in r["on named side"]]


def pooled(rows: list[dict], source: str, named: str | None = None) -> dict:
    """Share on the named side over every prompt of one source (optionally one size word), with a 95% bootstrap CI."""
    flags = _flags(rows, source, named)
    if not flags:
        have = sorted({r["source"] for r in rows})
        raise ValueError(f"no rows for source {source!r}, size {named!r}; sources: {have}")
    e = bootstrap(np.asarray(flags))
    return {"source": source, "named": named or "any", "n": len(flags), "share": e.mean, "lo": e.lo, "hi": e.hi}


def start_gap(rows: list[dict], named: str | None = None) -> Estimate:
    """Share on the named side from q(x_T | x_0) minus from the prior (unpaired bootstrap over images): how much a
    real layout at t = 999 adds to the teacher's size adherence."""
    flags = {s: _flags(rows, s, named) for s in SOURCES[1:]}
    if not all(flags.values()):
        raise ValueError(f"no teacher rows for size {named!r}; sizes: {sorted({r['named'] for r in rows})}")
    return bootstrap_diff(flags[SOURCES[2]], flags[SOURCES[1]])


def diagnose_size(world: World, evaluator, n: int = 100, seed: int = 0) -> dict:
    """The rows above and their pooled shares for one world's teacher (teacher_size.json)."""
    rows = size_rows(world, evaluator, n, seed)
    summary = [pooled(rows, s, w) for s in SOURCES for w in (None, *SIZE_WORDS)]
    return {"variant": world.extras.get("variant"), "n": n, "split": SMALL_LARGE_SPLIT,
            "prior": prior_of(world.extras.get("schedule", {})), "rows": rows, "pooled": summary}
