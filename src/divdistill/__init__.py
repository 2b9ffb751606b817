"""divdistill: an executable companion to "Distilling Diversity and Control in Diffusion Models" and DDIL.

One API over two scales: scale="tiny" (a toy world shipped in data/, runs on a CPU) and scale="sdxl" (hub checkpoints).
"""
from .metrics import (adherence, commit_point, cosine_distance, dt_distance_curve, features, fid, mmd2,
                      pairwise_diversity, per_prompt_diversity, prdc)
from .preview import DTPreview, run_with_xt
from .plan import Plan, Step, base, distilled, hybrid, mixed, on_sampler, skip_first, switch_at, with_adapters
from .registry import Conditioning, ModelSpec, ModelUnavailableError, World
from .solvers import mixed_pattern, pattern_plan, switch_pattern
from .sampling import Result, dt_trajectory, generate, run_plan, x0_from_step
from .worlds import SCALES, load_world
from .switch import HybridSwitch

__version__ = "0.1.0"
__all__ = [
    "Plan", "Step", "base", "distilled", "hybrid", "mixed", "on_sampler", "skip_first", "switch_at", "with_adapters",
    "Conditioning", "ModelSpec", "ModelUnavailableError", "World", "load_world", "SCALES",
    "Result", "dt_trajectory", "generate", "run_plan", "x0_from_step", "DTPreview", "run_with_xt",
    "adherence", "commit_point", "cosine_distance", "dt_distance_curve", "features", "fid", "pairwise_diversity", "per_prompt_diversity",
    "prdc", "mixed_pattern", "mmd2", "pattern_plan", "switch_pattern", "HybridSwitch",
]
