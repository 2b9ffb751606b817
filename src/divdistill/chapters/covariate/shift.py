"""DDIL Sec. 5.2 / App. E (Table 9, Fig. 5): teacher/student mixed rollouts on a stateless DDIM solver, and the shift.

A 4-step student's grid (999/749/499/249) splits the trajectory into four transitions; in a mixed rollout each
transition is run either by the student (one step) or by the teacher (its own `k` sub-steps, 8 for a 32-step teacher).
A rollout is therefore named by its *pattern*, e.g. "TSSS" = teacher for the first transition, student for the rest.
All steps integrate with one stateless DDIM solver, so any pattern is a valid trajectory.
"""
from __future__ import annotations

import torch

from ... import sampling
from ...metrics import frechet, median_bandwidth, mmd2  # noqa: F401 (the chapter's one namespace: cs.mmd2 ...)
from ...solvers import (SOLVER, mixed_pattern, nfe, pattern_plan, run_patterns, sub_grid,  # noqa: F401
                        switch_pattern)

BETAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # DDIL Table 9's teacher priors (plus β = 1, the pure teacher)
SWITCH_TS = (749, 500, 250)  # DDIL Table 9's switch timesteps
DETERMINISTIC = ("DDIMScheduler", "EulerDiscreteScheduler")  # x_{t'} from (x_t, x̂0) alone
RENOISING = ("LCMScheduler",)  # x_{t'} = √ᾱ' x̂0 + √(1−ᾱ') z with fresh z


def alphas_cumprod(world, name: str | None = None) -> torch.Tensor:
    """ᾱ_t (t = 0..999) of a model's scheduler (default the base's), float64."""
    return world.spec(name or world.base_name).make_scheduler().alphas_cumprod.double()


def states(x_T: torch.Tensor, dt: torch.Tensor, timesteps, ac: torch.Tensor, scheduler: str,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """The x_t each step of a run met, from its noise x_T (B, C, H, W) and DT dt (S, B, C, H, W); pixel-space worlds.

    Deterministic samplers (DDIM/Euler): x_{t'} = √ᾱ' x̂0 + √(1−ᾱ') ε̂ with ε̂ = (x_t − √ᾱ x̂0)/√(1−ᾱ), exact.
    Re-noising samplers (LCM, also DMD2's): x_{t'} = √ᾱ' x̂0 + √(1−ᾱ') z with fresh z: the run's own distribution.
    Returns (S + 1, B, C, H, W): the state entering each step, then the final sample.
    """
    if scheduler not in DETERMINISTIC + RENOISING:
        raise ValueError(f"no state reconstruction for {scheduler!r}; supported: {DETERMINISTIC + RENOISING}")
    ts = [int(t) for t in timesteps] + [-1]
    a = [float(ac[t]) if t >= 0 else 1.0 for t in ts]
    xs = [x_T.double().cpu()]
    for i, x0 in enumerate(dt.double()):
        x, an = xs[-1], a[i + 1]
        if scheduler in DETERMINISTIC:
            eps = (x - a[i] ** 0.5 * x0) / (1 - a[i]) ** 0.5
        else:
            eps = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        xs.append(an ** 0.5 * x0 + (1 - an) ** 0.5 * eps)
    return torch.stack(xs).float()


def forward_diffuse(x0: torch.Tensor, t: int, ac: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """q(x_t | x_0): the inputs a student is trained on at timestep t."""
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    return sampling.forward_diffuse(x0.double(), int(t), ac.double(), noise).float()


def pixel_features(x: torch.Tensor) -> torch.Tensor:
    """A model-free view of x_t: 8×8 average-pooled pixels, (B, C, H, W) → (B, C·64)."""
    return torch.nn.functional.adaptive_avg_pool2d(x.float(), 8).flatten(1)
