"""The SNR factor of the tiny world's schedule, derived from value counts AND the spectrum on both sides (issue 19).

A layout feature is the B×B block mean of each channel (B = 1/8 of the image side: 4 px here, 16 latent values in
SDXL's 128² latent). At noise level t, x_t = √ᾱ·x0 + √(1−ᾱ)·ε, so each block mean carries signal variance ᾱ·v_c and
noise variance (1−ᾱ)/B². Summed over channels (the best linear read-out of a layout shared by the channels),

    layout SNR(t) = SNR(t) · B² · Σ_c v_c,      v_c = Var(block mean of channel c) = σ_c² · share_c.

Matching it between SDXL and the tiny world at every t gives s = (B²·Σv)_SDXL / (B²·Σv)_tiny. With equal σ² and
share on both sides this is the old count 65,536 / 3,072 = 64/3. Here each side gets its own spectrum:
- tiny: Σv measured on the data (flat shapes on flat backgrounds: nearly all variance at the layout scale);
- SDXL: a unit-variance latent (the VAE scaling factor's purpose) of a natural image whose power spectrum is 1/f^α
  (Field 1987; van der Schaaf & van Hateren 1996: α ≈ 1.9 ± 0.4, 2 the canonical value), on the 128² latent grid;
  the image power above the latent's Nyquist (sub-8×8-patch detail) is carried by the latent as white variance,
  the "pronounced high frequencies" of SD-family latents (Skorokhodov et al. 2025, "Improving the Diffusability of
  Autoencoders").
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

LATENT_GRID, LATENT_CHANNELS, IMAGE_SIDE = 128, 4, 1024  # SDXL at 1024²: VAE factor 8, 4 latent channels
LAYOUT_FRACTION = 8  # the layout scale: blocks of 1/8 of the image side
ALPHA, ALPHA_BAND = 2.0, (1.8, 2.4)  # natural-image power-spectrum exponent: central value and the band quoted
LATENT_VARIANCE = 1.0  # per-value variance of SDXL's scaled latent


def _radial_power(n: int, alpha: float, dc_power: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, |k|) on an n×n periodic grid: P = |f|^−α, f in cycles per image; the DC bin gets `dc_power`."""
    k = torch.arange(n, dtype=torch.float64)
    k = torch.minimum(k, n - k)
    fx, fy = torch.meshgrid(k, k, indexing="ij")  # (n, n)
    f = (fx ** 2 + fy ** 2).sqrt()
    p = torch.where(f > 0, f.clamp(min=1e-12) ** -alpha, torch.full_like(f, dc_power))
    return p, torch.maximum(fx, fy)


def block_share(n: int, block: int, alpha: float, dc_power: float = 1.0) -> float:
    """Var(B×B block mean) / Var(value) of a stationary field with power |f|^−α on an n×n grid (exact)."""
    if n % block or block < 1:
        raise ValueError(f"block must divide the grid: n={n}, block={block}")
    p, _ = _radial_power(n, alpha, dc_power)
    k = torch.arange(n, dtype=torch.float64)
    x = math.pi * k / n
    d = torch.ones_like(k)
    nz = k > 0
    d[nz] = (torch.sin(block * x[nz]) / (block * torch.sin(x[nz]))) ** 2  # |block average's transfer|² per axis
    return float((p * d[:, None] * d[None, :]).sum() / p.sum())


def above_nyquist(alpha: float, side: int = IMAGE_SIDE, grid: int = LATENT_GRID, dc_power: float = 1.0) -> float:
    """Share of a side×side image's 1/f^α power above the latent grid's Nyquist (detail inside one latent patch)."""
    p, kmax = _radial_power(side, alpha, dc_power)
    return float(p[kmax > grid // 2].sum() / p.sum())


def latent_layout_variance(alpha: float = ALPHA) -> float:
    """Σ_c Var(block mean) of SDXL's latent: the in-grid 1/f^α part's block share, plus the white sub-patch part."""
    block = LATENT_GRID // LAYOUT_FRACTION
    w = above_nyquist(alpha)
    share = (1 - w) * block_share(LATENT_GRID, block, alpha) + w / block ** 2
    return LATENT_CHANNELS * LATENT_VARIANCE * share


def measured_layout_variance(images: torch.Tensor) -> float:
    """Σ_c Var(block mean) of a batch of images (N, C, H, W), variance across images, averaged over blocks."""
    if images.dim() != 4 or images.shape[0] < 2 or images.shape[-1] % LAYOUT_FRACTION:
        raise ValueError(f"images must be (N >= 2, C, H, W) with W divisible by {LAYOUT_FRACTION}, "
                         f"got {tuple(images.shape)}")
    block = images.shape[-1] // LAYOUT_FRACTION
    m = torch.nn.functional.avg_pool2d(images.double(), block)  # (N, C, 8, 8)
    return float(m.var(0).mean((1, 2)).sum())


def snr_factor(ref_block: int, ref_layout_var: float, tiny_block: int, tiny_layout_var: float) -> float:
    """s = (B²·Σv)_ref / (B²·Σv)_tiny: the factor that equalises layout SNR(t) at every t."""
    if min(ref_block, tiny_block) < 1 or not (ref_layout_var > 0 and tiny_layout_var > 0):
        raise ValueError("block sizes must be >= 1 and layout variances > 0, got "
                         f"{ref_block}, {ref_layout_var}, {tiny_block}, {tiny_layout_var}")
    return ref_block ** 2 * ref_layout_var / (tiny_block ** 2 * tiny_layout_var)


@lru_cache(maxsize=8)
def _tiny_statistics(n_scenes: int, seed: int) -> tuple[float, float]:
    """(Σ_c Var(block mean), Σ_c Var(image mean)) of n training scenes: measured once per (n, seed)."""
    from .world import sample_scenes

    images = sample_scenes(n_scenes, seed=seed).images
    return measured_layout_variance(images), measured_mean_variance(images)


def derive(n_scenes: int = 4000, seed: int = 0, alpha: float = ALPHA, band=ALPHA_BAND) -> dict:
    """The spectrum-aware SNR factor with its inputs and its α band (the chapter's derivation table)."""
    from .world import RES

    tiny_var = _tiny_statistics(n_scenes, seed)[0]
    ref_block, tiny_block = LATENT_GRID // LAYOUT_FRACTION, RES // LAYOUT_FRACTION

    def s(a: float) -> float:
        return snr_factor(ref_block, latent_layout_variance(a), tiny_block, tiny_var)

    return {"snr_factor": s(alpha), "band": [s(band[0]), s(band[1])], "alpha": alpha, "alpha_band": list(band),
            "tiny_layout_variance": tiny_var, "tiny_block": tiny_block, "latent_block": ref_block,
            "latent_layout_variance": latent_layout_variance(alpha), "latent_white_share": above_nyquist(alpha),
            "count_only": LATENT_GRID ** 2 * LATENT_CHANNELS / (3 * RES ** 2), "n_scenes": n_scenes, "seed": seed}


# The derived remedy for the signal leak at t = 999 (issue 19): offset noise whose strength carries SDXL's 0.05 (SDXL
# report, Sec. 2.5) over by the same count, at the image-mean scale. The per-channel image mean of x_t carries signal
# ᾱ·Var(mean) and noise (1 − ᾱ)·(1/N + σ_o²) (N values per channel, σ_o the offset noise's std), so its SNR is
# SNR(t)·Σ_c Var(mean_c) / (1/N + σ_o²). Equating it between the worlds at every t (tiny SNR = s·SNR) gives σ_o.
SDXL_OFFSET_NOISE = 0.05


def latent_mean_variance(alpha: float = ALPHA) -> float:
    """Σ_c Var(image mean of channel c) of SDXL's latent: the DC share of the in-grid 1/f^α part (DC = the f = 1 power)."""
    p, _ = _radial_power(LATENT_GRID, alpha, 1.0)
    w = above_nyquist(alpha)
    return LATENT_CHANNELS * LATENT_VARIANCE * ((1 - w) * float(p[0, 0] / p.sum()) + w / LATENT_GRID ** 2)


def measured_mean_variance(images: torch.Tensor) -> float:
    """Σ_c Var(image mean of channel c) across a batch of images (N, C, H, W)."""
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"images must be (N >= 2, C, H, W), got {tuple(images.shape)}")
    return float(images.double().mean((2, 3)).var(0).sum())


def offset_noise_for(s: float, tiny_mean_var: float, tiny_values: int, ref_mean_var: float, ref_values: int,
                     ref_offset: float = SDXL_OFFSET_NOISE) -> float:
    """σ_o of the tiny world: its image-mean SNR at every t equals the reference's with offset noise `ref_offset`."""
    if not (s > 0 and tiny_mean_var > 0 and ref_mean_var > 0 and tiny_values > 0 and ref_values > 0):
        raise ValueError("s, variances and value counts must be > 0, got "
                         f"{s}, {tiny_mean_var}, {tiny_values}, {ref_mean_var}, {ref_values}")
    var = s * tiny_mean_var * (1 / ref_values + ref_offset ** 2) / ref_mean_var - 1 / tiny_values
    if var < 0:
        raise ValueError(f"no offset noise reaches the reference's mean SNR (σ_o² would be {var:.3g} < 0)")
    return var ** 0.5


def derive_offset(s: float | None = None, n_scenes: int = 4000, seed: int = 0, alpha: float = ALPHA) -> dict:
    """The offset-noise strength the tiny world needs on SNR factor s (default: derive()'s), with its inputs."""
    from .world import RES

    s = derive(n_scenes, seed, alpha)["snr_factor"] if s is None else s
    tiny = _tiny_statistics(n_scenes, seed)[1]
    ref = latent_mean_variance(alpha)
    return {"offset_noise": offset_noise_for(s, tiny, RES * RES, ref, LATENT_GRID ** 2), "snr_factor": s,
            "tiny_mean_variance": tiny, "latent_mean_variance": ref, "sdxl_offset_noise": SDXL_OFFSET_NOISE,
            "alpha": alpha}


# What a prompt-free start lacks at t = 999 (issue 19's size miss): q(x_T) = √ᾱ_T·x0 + √(1 − ᾱ_T)·ε holds, at the
# layout scale, signal ᾱ_T·Σv beside noise (1 − ᾱ_T)/B², a share SNR/(1 + SNR) of its layout-scale variance. A start
# drawn from noise alone has none of it. For Gaussian data the probability-flow ODE is linear and maps such a start to
# layouts with 1/(1 + SNR) of the data's layout variance, whatever the model: the miss belongs to the schedule and
# the prior, not to the score. Matching layout SNR(t) at every t (derive()) gives the tiny world SDXL's leak.
def layout_snr_at(alpha_bar: float, block: int, layout_var: float) -> float:
    """Layout SNR at one ᾱ: ᾱ/(1 − ᾱ) · B² · Σ_c v_c (the module docstring's formula)."""
    if not (0 < alpha_bar < 1 and block >= 1 and layout_var > 0):
        raise ValueError(f"need 0 < alpha_bar < 1, block >= 1, layout_var > 0; got {alpha_bar}, {block}, {layout_var}")
    return alpha_bar / (1 - alpha_bar) * block ** 2 * layout_var


def leak_at(alpha_bar: float, block: int, layout_var: float) -> dict:
    """The leak at one ᾱ (t = 999's, by use): layout SNR, the signal's share of the layout-scale variance, and what a
    prompt-free start keeps of the data's layout variance under the linear flow."""
    r = layout_snr_at(alpha_bar, block, layout_var)
    return {"alpha_bar_T": alpha_bar, "layout_snr_T": r, "signal_share_T": r / (1 + r),
            "variance_kept_linear": 1 / (1 + r)}


def terminal_leak(n_scenes: int = 4000, seed: int = 0, alpha: float = ALPHA) -> list[dict]:
    """Layout SNR at t = 999 and the signal's share of q(x_T)'s layout-scale variance (what a start without the
    prompt lacks), for SDXL's latent and the tiny world on SD's schedule, on the derived s and on the count's 64/3."""
    from .schedule import SNR_FACTOR, sd_alphas_cumprod, shifted
    from .world import RES

    d = derive(n_scenes, seed, alpha)
    tiny_block, tiny_var = RES // LAYOUT_FRACTION, d["tiny_layout_variance"]
    cases = (("SDXL (latent 128² × 4)", sd_alphas_cumprod(), LATENT_GRID // LAYOUT_FRACTION,
              d["latent_layout_variance"]),
             ("tiny, SD schedule (sd-schedule)", sd_alphas_cumprod(), tiny_block, tiny_var),
             (f"tiny, SNR × {d['snr_factor']:.1f} (spectrum-matched)", shifted(d["snr_factor"]), tiny_block, tiny_var),
             (f"tiny, SNR × {SNR_FACTOR:.1f} (snr-matched)", shifted(SNR_FACTOR), tiny_block, tiny_var))
    return [{"schedule": name, **leak_at(float(ac[-1]), block, var)} for name, ac, block, var in cases]

