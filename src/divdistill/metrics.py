"""Metrics of Tables 2–3 (FID, adherence, pairwise diversity) and DDIL's Tables 3/5 (precision/recall/density/coverage)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def features(evaluator, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Evaluator features of images (B, 3, H, W) in [-1, 1] → (B, D), batched on the evaluator's device."""
    dev = next(evaluator.parameters()).device
    return torch.cat([evaluator(images[i:i + batch].to(dev).float().clamp(-1, 1)).cpu()
                      for i in range(0, len(images), batch)])


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine distance 1 − cos(a_i, b_i) between feature sets (B, D) → (B,)."""
    return 1 - F.cosine_similarity(a, b, dim=-1)


def pairwise_diversity(feats: torch.Tensor) -> float:
    """Table 3: mean pairwise perceptual distance within one prompt's samples (feats (N, D))."""
    if len(feats) < 2:
        raise ValueError(f"pairwise diversity needs >= 2 samples, got {len(feats)}")
    f = F.normalize(feats, dim=-1)
    sim = f @ f.T  # (N, N)
    n = len(f)
    return float((1 - sim).sum() / (n * (n - 1)))


def per_prompt_diversity(feats: torch.Tensor, prompts: list[str]) -> dict[str, float]:
    """Table 3 per prompt: `pairwise_diversity` among each prompt's samples (feats (N, D), one prompt per row)."""
    if len(feats) != len(prompts):
        raise ValueError(f"need one prompt per feature row, got {len(feats)} rows and {len(prompts)} prompts")
    rows: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        rows.setdefault(p, []).append(i)
    return {p: pairwise_diversity(feats[idx]) for p, idx in rows.items()}


def fid(evaluator, real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID_tiny: torchmetrics' Fréchet distance on the evaluator's features instead of Inception's. It keeps
    torchmetrics' running sums (not `frechet`) so the committed FID_tiny numbers stay bit for bit; the two agree to
    ≤ 1e-9 relative (tests/test_frechet.py)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_FeatureModule(evaluator), normalize=True)
    for i in range(0, len(real), 256):
        metric.update(real[i:i + 256].float(), real=True)
    for i in range(0, len(fake), 256):
        metric.update(fake[i:i + 256].float(), real=False)
    return float(metric.compute())


class _FeatureModule(torch.nn.Module):
    def __init__(self, evaluator):
        super().__init__()
        self.evaluator = evaluator
        self.num_features = evaluator.num_features

    @torch.no_grad()
    def forward(self, x):
        return features(self.evaluator, x).double()


def prdc(real_feats: torch.Tensor, fake_feats: torch.Tensor, k: int = 5) -> dict:
    """Precision, recall, density, coverage (Naeem et al. 2020) via the `prdc` package, k nearest neighbours."""
    import contextlib
    import io

    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints its sample counts
        res = compute_prdc(real_features=np.asarray(real_feats, dtype=np.float32),
                           fake_features=np.asarray(fake_feats, dtype=np.float32), nearest_k=k)
    return {k_: float(v) for k_, v in res.items()}


@torch.no_grad()
def adherence(evaluator, images: torch.Tensor, prompts: list[str]) -> dict:
    """CLIP-score analogue: fraction of the factors each prompt names that the evaluator reads back correctly.

    The evaluator carries its world's prompt reader (`evaluator.parse_prompt`, `evaluator.size_split`), so this
    generic metric knows nothing of the tiny world.
    """
    dev = next(evaluator.parameters()).device
    pred = {k: v.cpu() for k, v in evaluator.predict(images.to(dev).float().clamp(-1, 1)).items()}
    return factor_adherence(pred, prompts, evaluator.parse_prompt, evaluator.size_split)


def per_image_adherence(evaluator, images: torch.Tensor, prompts: list[str]) -> np.ndarray:
    """Per image (factors read back correctly, factors named), from one batched evaluator call: (N, 2)."""
    dev = next(evaluator.parameters()).device
    pred = {k: v.cpu() for k, v in evaluator.predict(images.to(dev).float().clamp(-1, 1)).items()}
    hits = factor_hits(pred, prompts, evaluator.parse_prompt, evaluator.size_split)
    return np.asarray([(sum(h.values()), len(h)) for h in hits], dtype=np.float64)


def factor_hits(pred: dict, prompts: list[str], parse_prompt, size_split: float) -> list[dict[str, bool]]:
    """Per image, {factor: read back correctly} for the factors its prompt names, from factor predictions (shape,
    color, size, bg, style: (B,) each) and a prompt reader; size is named as small/large around `size_split`."""
    out = []
    for i, p in enumerate(prompts):
        out.append({k: (int(pred[k][i] >= size_split) if k == "size" else int(pred[k][i])) == want
                    for k, want in parse_prompt(p).items() if want is not None})
    return out


def factor_adherence(pred: dict, prompts: list[str], parse_prompt, size_split: float) -> dict:
    """`adherence` from factor predictions and a prompt reader (prompt → {factor: index or None}), see factor_hits."""
    hits: dict[str, list[bool]] = {k: [] for k in ("shape", "color", "size", "bg", "style")}
    for h in factor_hits(pred, prompts, parse_prompt, size_split):
        for k, v in h.items():
            hits[k].append(v)
    per = {k: float(np.mean(v)) for k, v in hits.items() if v}
    allh = [h for v in hits.values() for h in v]
    return {"adherence": float(np.mean(allh)) if allh else float("nan"), **{f"adherence_{k}": v for k, v in per.items()}}


def dt_distance_curve(evaluator, dt: torch.Tensor) -> torch.Tensor:
    """Fig. 5: perceptual distance between each step's x̂0 and the final image; dt (S, B, C, H, W) → (S, B)."""
    s, b = dt.shape[:2]
    f = features(evaluator, dt.flatten(0, 1)).view(s, b, -1)  # (S, B, D)
    return dt_distances(f, f[-1])


def dt_distances(dt_feats: torch.Tensor, final_feats: torch.Tensor) -> torch.Tensor:
    """The DT distance (Fig. 5): cosine distance of each step's x̂0 features (S, B, D) to the final image's (B, D)."""
    return cosine_distance(dt_feats, final_feats.expand_as(dt_feats))


def commit_index(curve, threshold: float) -> np.ndarray:
    """The first step k from which the curve stays at or below `threshold` (k = S: never before the final image);
    curve (S,) or (S, N) → () or (N,). commit_point is fraction[min(k, S − 1)]."""
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim not in (1, 2) or len(c) == 0:
        raise ValueError(f"a DT distance curve is (steps,) or (steps, pairs), got shape {c.shape}")
    above = c > threshold  # (S, …)
    s = len(c)
    last = np.where(above.any(0), s - 1 - np.argmax(above[::-1], axis=0), -1)  # last step above threshold
    return last + 1


def commit_point(curve: torch.Tensor, fraction, threshold: float) -> torch.Tensor:
    """The fraction of the schedule after which distance(DT_t, final) stays below `threshold`; curve (S, B) → (B,)
    or one curve (S,) → (); 1.0 when only the final image is below it."""
    fr = torch.as_tensor(fraction, dtype=torch.float32)
    curve = torch.as_tensor(curve)
    if curve.dim() == 1:
        return commit_point(curve[:, None], fr, threshold)[0]
    if curve.dim() != 2 or len(curve) != len(fr):
        raise ValueError(f"curve must be (steps, trajectories) with one fraction per step, got {tuple(curve.shape)} "
                         f"and {len(fr)} fractions")
    above = curve > threshold  # (S, B)
    # the last step still above threshold; committed from the step after it (commit_index, in the curve's dtype)
    last_above = torch.where(above.any(0), (above * torch.arange(1, len(fr) + 1).view(-1, 1)).max(0).values, 0)
    idx = last_above.clamp(max=len(fr) - 1)
    return fr[idx]


def median_bandwidth(ref: torch.Tensor) -> float:
    """The kernel's bandwidth: the median squared distance between reference points (median heuristic)."""
    d = torch.cdist(ref.double(), ref.double()) ** 2
    iu = torch.triu_indices(len(ref), len(ref), 1)
    return float(d[iu[0], iu[1]].median())


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Unbiased MMD² (Gretton et al. 2012) with the Gaussian kernel k(a, b) = exp(−‖a − b‖² / bandwidth).

    ≈ 0 (and possibly slightly negative) when x and y come from one distribution; > 0 when they differ.
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"MMD needs >= 2 samples per side, got {len(x)} and {len(y)}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    x, y = x.double(), y.double()
    kxx, kyy = torch.exp(-torch.cdist(x, x) ** 2 / bandwidth), torch.exp(-torch.cdist(y, y) ** 2 / bandwidth)
    kxy = torch.exp(-torch.cdist(x, y) ** 2 / bandwidth)
    n, m = len(x), len(y)
    return float((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
                 - 2 * kxy.mean())


def feature_stats(feats, weights=None) -> tuple:
    """FID's (μ, Σ) of features (N, D) in float64, Σ with ddof 1, in the input's library (torch or numpy);
    `weights` (N,) counts how often each row is drawn (a bootstrap resample, numpy): Σ is then divided by Σw − 1."""
    if weights is None and len(feats) < 2:
        raise ValueError(f"FID needs >= 2 feature rows per set (a covariance), got {len(feats)}")
    if isinstance(feats, torch.Tensor) and weights is None:
        f = feats.double()
        return f.mean(0), torch.cov(f.T)
    f = np.asarray(feats, np.float64)
    if weights is None:
        return f.mean(0), np.cov(f, rowvar=False)
    n = weights.sum()
    mu = weights @ f / n
    x = f - mu
    return mu, (x.T * weights) @ x / max(n - 1, 1)


def sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Σ^½ of a symmetric positive semi-definite matrix by eigh (eigenvalues below 0 from rounding taken as 0)."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(w.clip(0))) @ v.T


def frechet_from_stats(mu1, cov1, mu2, cov2, root2=None):
    """FID's Fréchet distance (Heusel et al. 2017), ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1 Σ2)^½, summed in this order.

    tr (Σ1 Σ2)^½ is Σ √eig(Σ1 Σ2) on float64 tensors (torchmetrics' way); given root2 = Σ2^½ (`sqrt_psd`, numpy) it
    is Σ √eig(Σ2^½ Σ1 Σ2^½): equal in exact arithmetic, from a symmetric matrix, with the root computed once for many
    Σ1 (the bootstrap). Returns a 0-d tensor or a numpy float, as the inputs are.
    """
    if root2 is None:
        tr_sqrt = torch.linalg.eigvals(cov1 @ cov2).sqrt().real.sum()
    else:
        tr_sqrt = np.sqrt(np.linalg.eigvalsh(root2 @ cov1 @ root2).clip(0)).sum()
    return ((mu1 - mu2) ** 2).sum() + cov1.trace() + cov2.trace() - 2 * tr_sqrt


def frechet(real: torch.Tensor, fake: torch.Tensor) -> float:
    """The one FID on features (N, D): `frechet_from_stats` of their `feature_stats` (torch, float64)."""
    return float(frechet_from_stats(*feature_stats(real), *feature_stats(fake)))
