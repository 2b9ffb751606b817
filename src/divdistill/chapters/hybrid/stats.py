"""Tables 2–4 statistics on per-image arrays: diversity, FID, IS, adherence, with seed-bootstrap CIs (paired or not).

A *sample* holds one plan's per-image arrays in cells keyed (replicate, group): image j of cell (r, g) always uses
the same noise seed whichever plan made it, so two samples are compared *paired* on their common (r, g, j). Every
statistic is computed from bootstrap weights `c` (how often each image is drawn), so one resample serves both
plans of a paired difference, and the point estimate is the statistic at c = 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ... import metrics as M
from ...book.claims import Estimate

METRICS = ("diversity", "fid", "inception_score", "adherence")


@dataclass
class Cell:
    """One (replicate, group) cell: `group` >= 0 is a diversity prompt; `quality` marks images scored for FID/IS."""

    feats: np.ndarray  # (P, D) perceptual features (diversity)
    quality: bool = True
    diversity: bool = True
    fid_feats: np.ndarray | None = None  # (P, F) FID features; None when unavailable
    probs: np.ndarray | None = None  # (P, K) class posteriors for IS; None when unavailable
    adherence: np.ndarray | None = None  # (P,) per-image adherence / CLIP score
    _dist: np.ndarray | None = field(default=None, repr=False)

    @property
    def dist(self) -> np.ndarray:
        """Pairwise cosine distances (P, P) among the cell's images (Table 3's DreamSim analogue)."""
        if self._dist is None:
            f = self.feats / np.linalg.norm(self.feats, axis=1, keepdims=True).clip(1e-12)
            self._dist = 1.0 - f @ f.T
            np.fill_diagonal(self._dist, 0.0)
        return self._dist

    def __len__(self) -> int:
        return len(self.feats)


def cell_diversity(cell: Cell, c: np.ndarray) -> np.ndarray:
    """Mean pairwise distance over pairs of distinct seeds, for each weight row c (B, P) → (B,)."""
    d = cell.dist[:c.shape[1], :c.shape[1]]
    pairs = c.sum(1) ** 2 - (c ** 2).sum(1)
    return np.einsum("bi,ij,bj->b", c, d, c) / np.maximum(pairs, 1e-12)


def weighted_frechet(ref: tuple[np.ndarray, np.ndarray], feats: np.ndarray, c: np.ndarray) -> np.ndarray:
    """FID between reference (mu, cov) and features (N, F) drawn with weights c (B, N) → (B,); c = 1 is plain FID
    (metrics.frechet_from_stats on weighted metrics.feature_stats, the reference's root taken once)."""
    mu_r, cov_r = ref
    root = M.sqrt_psd(cov_r)
    f = np.asarray(feats, np.float64)
    out = np.empty(len(c))
    for b, w in enumerate(c):
        mu, cov = M.feature_stats(f, w)
        out[b] = M.frechet_from_stats(mu, cov, mu_r, cov_r, root2=root)
    return out


def weighted_inception_score(probs: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Inception score exp(E_x KL(p(y|x) || p(y))) under weights c (B, N) → (B,)."""
    p = np.asarray(probs, np.float64).clip(1e-12)
    neg_ent = (p * np.log(p)).sum(1)  # (N,)
    n = c.sum(1)
    marg = (c @ p) / n[:, None]  # (B, K)
    kl = (c @ neg_ent - ((c @ p) * np.log(marg.clip(1e-12))).sum(1)) / n
    return np.exp(kl)


@dataclass
class Sample:
    """One plan's per-image results: cells keyed (replicate, group), its NFE and per-batch seconds per image."""

    cells: dict
    nfe: int
    seconds: list  # seconds per image of each timed batch (prompt encoding and every step included)
    name: str = ""

    @property
    def n(self) -> int:
        return sum(len(c) for c in self.cells.values())


def _stat(metric: str, s: Sample, weights: dict, ref) -> np.ndarray:
    """A metric of sample s under per-cell weights {key: (B, P)}: mean over cells/replicates as Table 2–3 define."""
    keys = [k for k in weights]
    if metric == "diversity":
        vals = [cell_diversity(s.cells[k], weights[k]) for k in keys if s.cells[k].diversity]
        return np.mean(vals, 0) if vals else np.full(_b(weights), np.nan)
    per_rep = {}
    for k in keys:
        if s.cells[k].quality:
            per_rep.setdefault(k[0], []).append(k)
    out = []
    for rep_keys in per_rep.values():
        w = np.concatenate([weights[k] for k in rep_keys], 1)
        if metric == "fid":
            parts = [s.cells[k].fid_feats for k in rep_keys]
            if ref is None or any(p is None for p in parts):
                return np.full(_b(weights), np.nan)
            f = np.concatenate([p[:weights[k].shape[1]] for p, k in zip(parts, rep_keys)])
            out.append(weighted_frechet(ref, f, w))
        elif metric == "inception_score":
            parts = [s.cells[k].probs for k in rep_keys]
            if any(p is None for p in parts):
                return np.full(_b(weights), np.nan)
            out.append(weighted_inception_score(np.concatenate([p[:weights[k].shape[1]] for p, k in
                                                                zip(parts, rep_keys)]), w))
        elif metric == "adherence":
            parts = [s.cells[k].adherence for k in rep_keys]
            if any(p is None for p in parts):
                return np.full(_b(weights), np.nan)
            a = np.concatenate([p[:weights[k].shape[1]] for p, k in zip(parts, rep_keys)])
            named = np.isfinite(a)  # a prompt naming no factor ("a shape") has nothing to adhere to
            out.append(w @ np.where(named, a, 0.0) / np.maximum(w @ named, 1e-12))
        else:
            raise ValueError(f"unknown metric {metric!r}; valid: {METRICS}")
    return np.mean(out, 0) if out else np.full(_b(weights), np.nan)


def _b(weights: dict) -> int:
    return next(iter(weights.values())).shape[0]


def _weights(sizes: dict, n_boot: int, seed: int) -> dict:
    """Multinomial bootstrap counts per cell {key: (n_boot, P)}: seeds resampled within each (replicate, prompt)."""
    rng = np.random.default_rng(seed)
    return {k: rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot).astype(np.float64) for k, p in sizes.items()}


def _estimate(point: float, boots: np.ndarray, n: int) -> Estimate:
    """Bias-corrected percentile CI: the bootstrap distribution recentred on the point estimate. Resampling draws
    duplicates, which inflates FID and deflates IS; the recentring removes that shift (diversity, which skips
    same-seed pairs, and means have none)."""
    b = boots[np.isfinite(boots)]
    if not np.isfinite(point) or len(b) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), n)
    shift = float(np.median(b)) - float(point)
    return Estimate(float(point), float(np.quantile(b, 0.025)) - shift, float(np.quantile(b, 0.975)) - shift, n)


def estimate(metric: str, s: Sample, ref=None, n_boot: int = 200, seed: int = 0) -> Estimate:
    """A metric of one plan with its 95% bootstrap CI over seeds (images resampled within each cell)."""
    sizes = {k: len(c) for k, c in s.cells.items()}
    point = _stat(metric, s, {k: np.ones((1, p)) for k, p in sizes.items()}, ref)[0]
    return _estimate(point, _stat(metric, s, _weights(sizes, n_boot, seed), ref), s.n)


def paired_diff(metric: str, a: Sample, b: Sample, ref=None, n_boot: int = 200, seed: int = 0) -> Estimate:
    """metric(a) − metric(b) on their common seeds, with a paired 95% bootstrap CI (same resample for both)."""
    common = {k: min(len(a.cells[k]), len(b.cells[k])) for k in a.cells if k in b.cells}
    if not common:
        raise ValueError(f"samples {a.name!r} and {b.name!r} share no (replicate, group) cells; pair them on "
                         "the same seeds")
    ones = {k: np.ones((1, p)) for k, p in common.items()}
    point = (_stat(metric, a, ones, ref) - _stat(metric, b, ones, ref))[0]
    w = _weights(common, n_boot, seed)
    return _estimate(point, _stat(metric, a, w, ref) - _stat(metric, b, w, ref), sum(common.values()))


def seconds_per_image(s: Sample, seed: int = 0) -> Estimate:
    """Mean wall-clock seconds per image of the sample's own batches, with a bootstrap CI over batches."""
    from ...book.claims import bootstrap

    return bootstrap(s.seconds, seed=seed) if s.seconds else Estimate(float("nan"), float("nan"), float("nan"), 0)
