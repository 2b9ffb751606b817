"""The claims ledger: the papers' claim ids, bootstrap CIs, verdicts computed from CIs, and chapter summaries."""
from __future__ import annotations

import glob
import json
import math
import os
from dataclasses import asdict, dataclass

import numpy as np

from .provenance import atomic_write_json

# The papers' claims, by the ids every chapter summary and the ledger use.
CLAIMS = {
    "C1": "Control transfer: LoRAs, concepts and sliders move between base and students, both ways (Table 1)",
    "C2": "DT-visualization: students commit to the final structure in their first step (Fig. 3–4)",
    "C3": "Early steps decide diversity (Fig. 5)",
    "C4": "Students are less diverse than the base (Table 3)",
    "C5": "Hybrid inference restores diversity, even beyond the base's, at the student's cost (Table 3)",
    "C6": "The hybrid has the best FID (Table 2)",
    "C7": "Skipping the first step is a trade-off (Table 4)",
    "C8": "Base CFG ≈ 0 and k = 1 are best (Fig. 7)",
    "D1": "Covariate shift: more teacher in mixed rollouts means better quality (DDIL Table 9)",
    "D2": "DDIL improves FID and coverage for PD, LCM and DMD2 (DDIL Tables 3–5)",
    "D3": "Reflected thresholding stabilises (DDIL Table 3)",
}
FIELDS = ("id", "claim", "paper", "ours", "holds", "scale", "n", "note")


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


def entry(id: str, paper: str, ours: str, holds: bool | None, scale: str, n: int, note: str = "",
          claim: str | None = None) -> dict:
    """One summary entry {id, claim, paper, ours, holds, scale, n, note}; `holds` must come from `verdict`."""
    if id not in CLAIMS:
        raise ValueError(f"unknown claim id {id!r}; valid ids: {sorted(CLAIMS)}")
    if holds not in (True, False, None):
        raise ValueError(f"holds must be True, False or None (computed by `verdict`), got {holds!r}")
    return {"id": id, "claim": claim or CLAIMS[id], "paper": str(paper), "ours": str(ours),
            "holds": None if holds is None else bool(holds), "scale": str(scale), "n": int(n), "note": str(note)}


def write_summary(notebook: str, entries: list[dict], out_dir: str) -> str:
    """Write `out_dir/<notebook>.json` atomically; entries of other scales already there are kept (tiny and sdxl
    runs of one chapter share a file)."""
    for e in entries:
        missing = [f for f in FIELDS if f not in e]
        if missing:
            raise ValueError(f"summary entry {e!r} lacks fields {missing}; build entries with claims.entry()")
    path = os.path.join(out_dir, f"{notebook}.json")
    scales = {e["scale"] for e in entries}
    old = load_summary(path) if os.path.exists(path) else []
    kept = [e for e in old if e["scale"] not in scales]
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_json(path, kept + list(entries))
    return path


def load_summary(path: str) -> list[dict]:
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, list):
        raise ValueError(f"{path}: a summary is a JSON list of entries, got {type(data).__name__}")
    return data


def collect(summary_dir: str) -> dict[str, list[tuple[str, dict]]]:
    """Every summary entry under `summary_dir`, grouped by claim id, as (notebook, entry) pairs."""
    out: dict[str, list[tuple[str, dict]]] = {k: [] for k in CLAIMS}
    for path in sorted(glob.glob(os.path.join(summary_dir, "*.json"))):
        nb = os.path.splitext(os.path.basename(path))[0]
        for e in load_summary(path):
            out.setdefault(e["id"], []).append((nb, e))
    return out
