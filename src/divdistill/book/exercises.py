"""The chapters' teacher exercises: the live page's readout (book/live.md) recomputed by the engine.

The live page runs the same plans as `run_plan` on noise the Python engine made for seeds 0–31, so a number computed
here is the number a reader sees there (within the page's parity tolerance, 2e-3 per pixel). An answer cell calls
`live_readout` for the page's settings and prints it beside the chapter's own (evaluator-feature) numbers.
"""
from __future__ import annotations

import torch

LIVE_PROMPT = "a red circle"      # the page's default prompt
LIVE_SEEDS = tuple(range(8))      # the page's "images 8", first seed 0: few images keep an answer cell cheap
LIVE_STUDENTS = ("dmd2", "turbo", "lightning", "lcm")


def pixel_diversity(images: torch.Tensor) -> float:
    """The live page's readout: the RMS difference of two images in [0, 1], averaged over all pairs (images (N, C, H, W)
    in [-1, 1], clamped as the page draws them)."""
    x = ((images.detach().float().cpu() + 1) / 2).clamp(0, 1).flatten(1)
    n = len(x)
    d = [float(((x[a] - x[b]) ** 2).mean().sqrt()) for a in range(n) for b in range(a + 1, n)]
    return sum(d) / len(d) if d else 0.0


def live_plan(world, student: str, k: int = 0, base_guidance: float = 0.0):
    """The page's plan: the student alone at k = 0, else the base on the student's first k timesteps and sampler."""
    from .. import plan as P

    return P.distilled(world, student) if k == 0 else P.hybrid(world, student, k, base_guidance)


def live_readout(world, student: str = "dmd2", k: int = 0, base_guidance: float = 0.0, prompt: str = LIVE_PROMPT,
                 seeds=LIVE_SEEDS, capture: bool = False) -> dict:
    """What the page shows for these settings: {"diversity" (mean pairwise pixel distance), "nfe", "result"}."""
    from ..sampling import run_plan

    res = run_plan(world, live_plan(world, student, k, base_guidance), [prompt] * len(seeds), list(seeds),
                   capture=capture)
    return {"diversity": pixel_diversity(res.images), "nfe": res.nfe, "result": res}


def first_step_gap(res) -> float:
    """Mean over images of the RMS pixel difference (pixels in [0, 1]) between the first step's x̂0 and the final image:
    how far the page's first x̂0 row is from its final grid (needs a result run with capture=True)."""
    a = ((res.dt[0].float().cpu() + 1) / 2).clamp(0, 1).flatten(1)
    b = ((res.images.float().cpu() + 1) / 2).clamp(0, 1).flatten(1)
    return float(((a - b) ** 2).mean(1).sqrt().mean())


def on_live_world(world, students=LIVE_STUDENTS) -> bool:
    """True when `world` is the world the live page exports: the tiny world's default variant with the page's students."""
    from ..tiny.loader import DEFAULT_VARIANT

    return (world.extras.get("variant") == DEFAULT_VARIANT and all(s in world.specs for s in students))


def page_settings(student: str | None = "dmd2", k=0, base_guidance: float = 0.0, prompt: str = LIVE_PROMPT,
                  seeds=LIVE_SEEDS) -> str:
    """The page's controls for a readout, as a reader sets them (student None: every student in turn)."""
    return (f"prompt “{prompt}”, " + (f"student {student}, " if student else "") + f"k = {k}, base CFG {base_guidance:g}, "
            f"{len(seeds)} images from seed {seeds[0]}")
