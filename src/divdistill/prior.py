"""The sampling prior every plan starts from (VP convention): x_T = std·ε with ε ~ N(0, I), and optionally each draw's
amplitude spread narrowed to a larger draw's (issue 19's grain: DDIM carries a start's excess amplitude into the image,
and a draw of N values has an empirical std that spreads by (2N)^(-1/2), 4.6 times more for the tiny world's 3,072
values than for SDXL's 65,536)."""
from __future__ import annotations

import torch


def amplitude_spread(values: int) -> float:
    """Relative spread of the empirical std of `values` unit-Gaussian values: (2N)^(-1/2)."""
    if values < 1:
        raise ValueError(f"values must be >= 1, got {values}")
    return (2 * values) ** -0.5


def concentrate_amplitude(x: torch.Tensor, std: float, spread: float) -> torch.Tensor:
    """Each draw of x (B, ...) with its empirical std r·std (about its own mean) moved to (1 + (r − 1)·k)·std, k the
    ratio of `spread` to x's own (2N)^(-1/2): its amplitude then spreads by `spread`. Directions and per-draw means are
    kept. (B, ...)."""
    if not 0 < spread:
        raise ValueError(f"spread must be > 0, got {spread}")
    flat = x.flatten(1).double()  # (B, N)
    k = spread / amplitude_spread(flat.shape[1])
    m = flat.mean(1, keepdim=True)
    r = (flat - m).std(1, keepdim=True) / std
    return (m + (flat - m) * (1 + (r - 1) * k) / r).reshape(x.shape).to(x.dtype)


def apply_prior(eps: torch.Tensor, std: float = 1.0, spread: float | None = None) -> torch.Tensor:
    """x_T from unit draws eps (B, ...): std·eps, each draw's amplitude spread narrowed to `spread` when given.
    (B, ...)."""
    x = eps * std  # × 1.0 is exact: a unit prior is unchanged
    return x if spread is None else concentrate_amplitude(x, std, spread)
