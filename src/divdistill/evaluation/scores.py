"""Table 2–3 metrics from cached per-image features: FID, IS, CLIP score, per-prompt diversity, PRDC."""
from __future__ import annotations

import os
import warnings
from collections import Counter

import numpy as np
import torch

from .. import metrics as M


class _Given(torch.nn.Module):
    """A torchmetrics `feature=` module for features that were extracted (and cached) beforehand: the identity."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


def fid(fake: torch.Tensor, real: torch.Tensor | None = None, stats: tuple | None = None) -> float:
    """Table 2 FID on features (N, D) against real features or their (mu, sigma): metrics.frechet_from_stats, the
    project's one Fréchet distance (equal to torchmetrics' FrechetInceptionDistance to ≤ 1e-9 relative)."""
    if (real is None) == (stats is None):
        raise ValueError("fid needs exactly one reference: real features or stats=(mu, sigma)")
    if real is not None:
        mu_r, cov_r = M.feature_stats(real)
    else:
        if np.shape(stats[0]) != (fake.shape[1],):
            raise ValueError(f"reference statistics have dimension {np.shape(stats[0])}, features {fake.shape[1]}: "
                             "they come from a different feature network")
        mu_r, cov_r = (torch.as_tensor(np.asarray(v), dtype=torch.float64) for v in stats)
    return float(M.frechet_from_stats(mu_r, cov_r, *M.feature_stats(fake)))


def feature_stats(feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of features (N, D) as numpy float64 (metrics.feature_stats), unbiased covariance as pytorch-fid."""
    return M.feature_stats(feats.double().numpy())


def write_stats(path: str, feats: torch.Tensor, **meta) -> None:
    """Reference statistics as .npz (mu, sigma, n, plus metadata strings), written atomically."""
    mu, sigma = feature_stats(feats)
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez(tmp, mu=mu, sigma=sigma, n=len(feats), **{k: str(v) for k, v in meta.items()})
    os.replace(tmp, path)


def read_stats(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) from a .npz written by this CLI, pytorch-fid or clean-fid."""
    with np.load(path) as z:
        if "mu" not in z or "sigma" not in z:
            raise ValueError(f"{path}: a reference .npz needs arrays 'mu' and 'sigma', found {list(z.keys())}")
        return z["mu"], z["sigma"]


def stats_features(path: str) -> str | None:
    """The feature network a .npz written by `write_stats` names (None for pytorch-fid / clean-fid files)."""
    with np.load(path) as z:
        return str(z["features"]) if "features" in z else None


def inception_score(logits: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """Table 2 IS: torchmetrics' InceptionScore on logits (N, K); its split shuffle is seeded, so it is repeatable."""
    from torchmetrics.image.inception import InceptionScore

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "saves all features in a buffer": they are already in memory
        metric = InceptionScore(feature=_Given(logits.shape[1]), splits=min(splits, len(logits)))
    metric.update(logits.double())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def clip_score(scores: torch.Tensor) -> float:
    """Table 2 CLIP score: torchmetrics' CLIPScore.compute on per-image scores (mean of 100·cos, floored at 0)."""
    return float(torch.clamp(scores.double().mean(), min=0.0))


def adherence_percent(preds: dict, prompts: list[str]) -> float:
    """The tiny CLIP-score analogue: % of prompt-named factors the evaluator reads back (metrics.adherence)."""
    from ..tiny.evaluator import adherence_from_predictions

    return 100.0 * adherence_from_predictions(preds, prompts)["adherence"]


def diversity(feats: torch.Tensor, prompts: list[str]) -> dict:
    """Table 3: mean pairwise distance per prompt (prompts with ≥ 2 images), their mean and a bootstrap CI."""
    from ..stats import bootstrap

    counts = Counter(prompts)
    keep = [i for i, p in enumerate(prompts) if counts[p] >= 2]  # a prompt with one image has no pairs
    per = {p: {"diversity": v, "n": counts[p]}
           for p, v in M.per_prompt_diversity(feats[keep], [prompts[i] for i in keep]).items()}
    if not per:
        return {"per_prompt": {}, "note": "no prompt has >= 2 images: generate several seeds per prompt "
                                          "(divdistill-evaluate --write-diversity-csv) to measure Table 3"}
    vals = [v["diversity"] for v in per.values()]
    out = {"per_prompt": per, "mean": float(np.mean(vals)), "n_prompts": len(vals)}
    if len(vals) >= 2:
        est = bootstrap(vals)
        out["ci95"] = [est.lo, est.hi]
    return out


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = 5, max_n: int = 10_000, seed: int = 0) -> dict:
    """Precision/recall/density/coverage (prdc package) on the FID features; at most max_n of each (seeded subset)."""
    g = torch.Generator().manual_seed(seed)
    pick = lambda f: f[torch.randperm(len(f), generator=g)[:max_n]] if len(f) > max_n else f  # noqa: E731
    real, fake = pick(real), pick(fake)
    if min(len(real), len(fake)) <= k:
        return {"note": f"PRDC needs more than k={k} images on each side, got {len(real)} real, {len(fake)} generated"}
    res = M.prdc(real, fake, k=k)
    return {**res, "k": k, "n_real": len(real), "n_fake": len(fake)}
