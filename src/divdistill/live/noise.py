"""The exact noise `run_plan` draws, for the live page: x_T per seed and the noise of every re-noising step
(LCM's multi-step re-noising, Euler-ancestral's σ_up term), so the browser and the engine sample identically."""
from __future__ import annotations

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

N_SEEDS = 32  # seeds 0..31: the page runs up to 16 images from any window of them
N_STEP_NOISE = 4  # the students' 4-step grids draw at most one noise tensor per step


def noise_arrays(world, seeds, n_steps: int = N_STEP_NOISE) -> np.ndarray:
    """(S, 1 + n_steps, C, H, W): x_T = world.noise(seed), then the i-th draw from run_plan's step generator.

    run_plan gives image i the generator seeded seeds[i] + 1 and hands the list to `scheduler.step`, which draws one
    (1, C, H, W) tensor per image per noisy step through diffusers' randn_tensor; the same calls are made here.
    """
    seeds = [int(s) for s in seeds]
    x_t = world.noise(seeds).float().cpu()  # (S, C, H, W)
    gens = [torch.Generator("cpu").manual_seed(s + 1) for s in seeds]
    draws = [randn_tensor(tuple(x_t.shape), generator=gens, dtype=torch.float32) for _ in range(n_steps)]
    return torch.stack([x_t, *draws], dim=1).numpy()  # (S, 1 + n_steps, C, H, W)
