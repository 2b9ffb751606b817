"""Statistics of the claims: bootstrap confidence intervals (percentile, paired) and verdicts read from them."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A statistic with its 95% bootstrap confidence interval."""

    mean: float
    lo: float
    hi: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.lo:.3f}, {self.hi:.3f}]"

    def as_dict(self) -> dict:
        return asdict(self)


def bootstrap(values, stat=np.mean, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Estimate:
    """Percentile bootstrap CI of `stat` over the first axis of `values` (resampling units: seeds, prompts, pairs)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0 or len(v) == 0:
        raise ValueError(f"bootstrap needs a non-empty sequence of values, got {values!r}")
    if len(v) == 1:
        m = float(stat(v))
        return Estimate(m, m, m, 1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))
    boots = np.array([stat(v[i]) for i in idx])
    a = (1 - level) / 2
    return Estimate(float(stat(v)), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a)), len(v))


def bootstrap_diff(a, b, paired: bool = False, stat=np.mean, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """CI of stat(a) − stat(b); paired resamples the same units (e.g. the same prompts) in both."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"paired bootstrap needs equal shapes, got {a.shape} and {b.shape}")
        return bootstrap(np.stack([a, b], 1), lambda x: stat(x[:, 0]) - stat(x[:, 1]), n_boot, seed)
    rng = np.random.default_rng(seed)
    boots = np.array([stat(a[rng.integers(0, len(a), len(a))]) - stat(b[rng.integers(0, len(b), len(b))])
                      for _ in range(n_boot)])
    return Estimate(float(stat(a) - stat(b)), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)),
                    min(len(a), len(b)))


def verdict(effect: Estimate | None, direction: str = ">", margin: float = 0.0) -> bool | None:
    """A claim's verdict from the CI of its effect: True when the CI lies past `margin` on the claimed side, False
    when it lies wholly on the other side, None when it straddles (inconclusive) or the effect is missing/NaN.

    direction ">": the claim says effect > margin; "<": effect < margin.
    """
    if direction not in (">", "<"):
        raise ValueError(f"direction must be '>' or '<', got {direction!r}")
    if effect is None or any(math.isnan(x) for x in (effect.lo, effect.hi)):
        return None
    lo, hi = (effect.lo - margin, effect.hi - margin) if direction == ">" else (margin - effect.hi, margin - effect.lo)
    if lo > 0:
        return True
    if hi < 0:
        return False
    return None


def all_hold(verdicts) -> bool | None:
    """A conjunction of sub-claims: False if any is False, True if all are True, else None."""
    v = list(verdicts)
    if any(x is False for x in v):
        return False
    if v and all(x is True for x in v):
        return True
    return None
