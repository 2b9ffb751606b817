"""The teacher's acceptance with the signal leak at t = 999 removed to second order (issue 19): the acceptance's
prompts and seeds (50 DDIM steps, CFG 4), started once from the world's sampling prior and once from a Gaussian with
each prompt's own moments, q(x_T | c) to second order (size.MomentStarts; the same prior draws inside, no scene).

The first start is the acceptance's own adherence set. The second asks what the same weights do when x_T carries the
prompt's share of q(x_T), the part a prompt-free prior lacks on a schedule with SDXL's terminal layout SNR
(tiny.spectrum.terminal_leak). The last two are the first two with the other amplitude spread: narrowed to an SDXL
latent's (divdistill.prior, tiny.schedule.SDXL_SPREAD: 65,536 values, not 3,072; the "marginal-sdxl-spread" prior)
on a world whose prior keeps its draws' own, and the draws' own on a world that declares SDXL's. Checks the second
passes and the first fails are the leak's, not the teacher's. FID here is on the evaluation prompts against their
own scenes, the same for every start; the acceptance's FID_tiny uses another prompt set and stays the committed one.

`python -m divdistill.chapters.tiny_world --what leak --variant V` writes <variant>/teacher_leak.json.
"""
from __future__ import annotations

import math

import torch

from ... import metrics as M
from ...distill.bars import TEACHER_BAR, adherence_factors, failed_checks, teacher_acceptance
from ...plan import base
from ...prior import apply_prior
from ...registry import World
from ...sampling import run_plan
from ...tiny.quality import EVAL_PROMPTS, data_diversity, grain_stats, per_prompt_diversity, prompt_set
from ...tiny.schedule import SDXL_SPREAD, alpha_T
from ...tiny.world import scenes_for_prompt
from .size import MOMENT_SCENES, MomentStarts

# start: (its short name in tables, carries the prompt's moments, amplitude spread: "world" the world's prior's,
# "sdxl" SDXL's, "own" the draws' own)
STARTS = {"the sampling prior": ("prior", False, "world"),
          "a Gaussian with q(x_T | c)'s moments": ("Gaussian q(x_T | c)", True, "world"),
          "the sampling prior, SDXL's amplitude spread": ("prior, SDXL's spread", False, "sdxl"),
          "a Gaussian with q(x_T | c)'s moments, SDXL's amplitude spread": ("Gaussian q(x_T | c), SDXL's spread", True,
                                                                             "sdxl"),
          "the sampling prior, its draws' own amplitude spread": ("prior, own spread", False, "own"),
          "a Gaussian with q(x_T | c)'s moments, its draws' own amplitude spread": ("Gaussian q(x_T | c), own spread",
                                                                                      True, "own")}


def start_kind(start: str) -> tuple[bool, str]:
    """(carries the prompt's moments, whose amplitude spread: "world", "sdxl" or "own") of one of STARTS."""
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; valid: {list(STARTS)}")
    return STARTS[start][1:]


def starts_for(world: World) -> list[str]:
    """The four starts diagnosed on `world`: its prior and the prompt's Gaussian, then both with the other spread."""
    other = "own" if world.prior_spread is not None else "sdxl"
    return [s for k in ("world", other) for s, (_, _, spread) in STARTS.items() if spread == k]


def start_spread(world: World, start: str) -> float | None:
    """The amplitude spread each draw of `start` is narrowed to on `world` (None: the draws' own)."""
    return {"world": world.prior_spread, "sdxl": SDXL_SPREAD, "own": None}[start_kind(start)[1]]


def _images(world: World, prompts: list[str], seeds: list[int], start: str, moment_scenes: int, seed: int,
            batch: int = 100) -> torch.Tensor:
    """The acceptance plan's images for (prompt, seed) pairs grouped per prompt, from one of STARTS."""
    plan, a_T, out = base(world), alpha_T(world.extras["schedule"]), []
    given, spread = start_kind(start)[0], start_spread(world, start)
    for p in dict.fromkeys(prompts):
        idx = [i for i, q in enumerate(prompts) if q == p]
        starts = MomentStarts(a_T, moment_scenes, seed, prompt=p) if given else None
        for k in range(0, len(idx), batch):
            s = [seeds[i] for i in idx[k:k + batch]]
            noise = apply_prior(world.unit_noise(s), world.prior_std, spread)  # (B, C, H, W): inside every start
            x_T = noise if starts is None else torch.cat([starts(noise[i:i + 1], 30_000 + q)
                                                          for i, q in enumerate(s)])  # per image
            out.append(run_plan(world, plan, [p] * len(s), s, capture=False,
                                x_T=x_T.to(world.device, world.dtype)).images.cpu())
    return torch.cat(out)


def _row(evaluator, start: str, images: torch.Tensor, prompts: list[str], data_div: dict, seed: int) -> dict:
    """One start's acceptance numbers (FID on the evaluation prompts' own scenes) and the checks it passes."""
    adh = M.adherence(evaluator, images, prompts)
    div = per_prompt_diversity(evaluator, images, prompts)
    real = torch.cat([scenes_for_prompt(p, prompts.count(p), seed=40_000 + seed + j).images
                      for j, p in enumerate(dict.fromkeys(prompts))])  # (N, C, H, W), grouped as the samples are
    grain = grain_stats(images)
    div_t, div_d = sum(div.values()) / len(div), sum(data_div.values()) / len(data_div)
    fid = M.fid(evaluator, real, images)
    acc = teacher_acceptance(fid, adh["adherence"], adherence_factors(adh), div_t, div_d, grain["grain_p90"])
    return {"start": start, "n": len(prompts), **adh, "diversity_ratio": div_t / div_d, "fid_eval_prompts": fid,
            **{f"teacher_{k}": v for k, v in grain.items()},
            "fails": [c for c in failed_checks(acc) if c != "fid"]}  # FID: another prompt set than the bar's


def diagnose_leak(world: World, evaluator, n: int = 1000, seed: int = 1234, moment_scenes: int = MOMENT_SCENES,
                  prompts=EVAL_PROMPTS) -> dict:
    """Every start's row for one world's teacher (teacher_leak.json): the acceptance's prompts and seeds."""
    prompts, seeds = prompt_set(n, prompts)
    data_div = data_diversity(evaluator, prompts, seed)  # the acceptance's data reference
    with torch.no_grad():
        rows = []
        for start in starts_for(world):
            images = _images(world, prompts, seeds, start, moment_scenes, seed)
            rows.append({**_row(evaluator, start, images, prompts, data_div, seed),
                         "amplitude_spread": start_spread(world, start)})
    return {"variant": world.extras.get("variant"), "n": len(prompts), "seed": seed, "moment_scenes": moment_scenes,
            "values_per_start": math.prod(world.latent_shape),
            "bar": {k: v for k, v in TEACHER_BAR.items() if k != "fid"}, "rows": rows}
