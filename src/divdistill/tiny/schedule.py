"""The tiny world's noise schedule, defined once: SD's scaled-linear schedule and its SNR-shifted variant (issue 8).

An SDXL latent has 128·128·4 = 65,536 values, a tiny image 32·32·3 = 3,072. A layout feature of a fixed relative size
(where the object is, the background tone) averages over ~21× fewer values here, so at every t its SNR is ~21× lower
than in SDXL. `shifted(s)` multiplies the SNR at every t by s (Esser et al. 2024 Sec. 5.3.2; Hoogeboom et al. 2023):
ᾱ'(t) = s·SNR(t) / (1 + s·SNR(t)), SNR(t) = ᾱ(t) / (1 − ᾱ(t)). Every diffusers scheduler gets it as `trained_betas`.
"""
from __future__ import annotations

import json
import os

import torch

# The SD / SDXL training noise schedule (diffusers config keys).
SD_SCHEDULE = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                   prediction_type="epsilon", clip_sample=False)
SDXL_LATENT_VALUES = 128 * 128 * 4  # SDXL at 1024², VAE factor 8, 4 latent channels
TINY_VALUES = 3 * 32 * 32
SNR_FACTOR = SDXL_LATENT_VALUES / TINY_VALUES  # 64/3 ≈ 21.33: the counting argument, fixed before any result
SCHEDULE_FILE = "scheduler.json"  # every teacher/student folder carries its schedule in this file
BOOKKEEPING = ("snr_factor", "prior")  # this project's keys in a schedule config; diffusers never sees them
# The sampling prior x_T every plan starts from (VP convention), saved with the schedule under "prior":
# "unit": N(0, I), diffusers' convention (exact only as ᾱ_T → 0);
# "marginal": N(0, (1 − ᾱ_T) I), the noise part of q(x_T) = √ᾱ_T·x0 + √(1 − ᾱ_T)·ε, k-diffusion's x_T = σ_max·ε;
# "marginal-sdxl-spread": the marginal prior's draws, each one's amplitude spread narrowed to an SDXL latent's,
#   (2·65,536)^(-1/2) instead of (2·3,072)^(-1/2) (divdistill.prior; the tiny-world chapter's acceptance from four starts).
PRIORS = ("unit", "marginal", "marginal-sdxl-spread")
SDXL_SPREAD = (2 * SDXL_LATENT_VALUES) ** -0.5  # divdistill.prior.amplitude_spread of SDXL's latent


def sd_alphas_cumprod() -> torch.Tensor:
    """ᾱ(t), t = 0..999, of SD's scaled-linear schedule, float64 (β = linspace(√β0, √β1)²)."""
    n, b0, b1 = SD_SCHEDULE["num_train_timesteps"], SD_SCHEDULE["beta_start"], SD_SCHEDULE["beta_end"]
    betas = torch.linspace(b0 ** 0.5, b1 ** 0.5, n, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0)


def snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """SNR(t) = ᾱ(t) / (1 − ᾱ(t)) per pixel value (unit-variance data)."""
    a = alphas_cumprod.double()
    return a / (1 - a)


def shifted(snr_factor: float) -> torch.Tensor:
    """ᾱ'(t) = s·SNR(t) / (1 + s·SNR(t)) of the SD schedule, float64 (s = 1 gives SD's ᾱ back)."""
    if not snr_factor > 0:
        raise ValueError(f"snr_factor must be > 0 (1 = SD's schedule), got {snr_factor}")
    r = snr_factor * snr(sd_alphas_cumprod())
    return r / (1 + r)


def betas_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> list[float]:
    """β_t = 1 − ᾱ_t / ᾱ_{t−1} (ᾱ_{−1} = 1): the `trained_betas` a diffusers scheduler rebuilds ᾱ from."""
    a = alphas_cumprod.double()
    prev = torch.cat([torch.ones(1, dtype=torch.float64), a[:-1]])
    return (1 - a / prev).tolist()


def scheduler_config(snr_factor: float = 1.0, prior: str = "unit") -> dict:
    """The diffusers scheduler config of the schedule with SNR × snr_factor (1.0: SD's own scaled-linear config) and
    its sampling prior (one of PRIORS; "unit" is left implicit)."""
    if prior not in PRIORS:
        raise ValueError(f"unknown sampling prior {prior!r}; valid: {list(PRIORS)}")
    extra = {} if prior == "unit" else {"prior": prior}
    if float(snr_factor) == 1.0:
        return {**SD_SCHEDULE, **extra}
    return {**SD_SCHEDULE, "trained_betas": betas_from_alphas_cumprod(shifted(snr_factor)), "snr_factor": snr_factor,
            **extra}


def diffusers_config(config: dict) -> dict:
    """The config without this project's bookkeeping keys (what a diffusers scheduler's from_config receives)."""
    return {k: v for k, v in config.items() if k not in BOOKKEEPING}


def prior_of(config: dict) -> str:
    """The sampling prior a saved schedule declares ("unit" when it names none)."""
    prior = config.get("prior", "unit")
    if prior not in PRIORS:
        raise ValueError(f"schedule declares unknown sampling prior {prior!r}; valid: {list(PRIORS)}")
    return prior


def prior_label(config: dict) -> str:
    """The sampling prior in words, for captions: N(0, I), N(0, (1 − ᾱ_T) I) or the latter with SDXL's spread."""
    return {"unit": "N(0, I)", "marginal": "N(0, (1 − ᾱ_T) I)",
            "marginal-sdxl-spread": "N(0, (1 − ᾱ_T) I) draws with SDXL's amplitude spread"}[prior_of(config)]


def alpha_T(config: dict) -> float:
    """ᾱ at the last training timestep (t = 999) of a schedule config, as diffusers computes it."""
    return float(alphas_cumprod(config).double()[-2])  # index −1 is the appended ᾱ_{−1} = 1


def prior_std(config: dict) -> float:
    """The std of the sampling prior x_T ~ N(0, std²·I): 1 ("unit"), or √(1 − ᾱ_T) ("marginal": q(x_T) without its
    signal, whose pixel-scale variance the data lacks; a unit prior carries (1 − ᾱ_T)^(-1/2) − 1 too much there)."""
    if prior_of(config) == "unit":
        return 1.0
    return (1 - alpha_T(config)) ** 0.5


def prior_spread(config: dict) -> float | None:
    """The amplitude spread each draw of the declared prior is narrowed to (divdistill.prior.apply_prior): SDXL's
    latent's for "marginal-sdxl-spread", None (a Gaussian draw's own) otherwise."""
    return SDXL_SPREAD if prior_of(config) == "marginal-sdxl-spread" else None


def starts_covered(trained: str, now: str) -> bool:
    """Whether rollouts drawn from prior `trained` cover the starts of prior `now`: the same prior, or the same std with
    each draw's amplitude spread narrowed (divdistill.prior keeps the draws' directions and means and pulls their std
    into the middle of the range the wider draws covered). Both must be PRIORS."""
    for p in (trained, now):
        if p not in PRIORS:
            raise ValueError(f"unknown sampling prior {p!r}; valid: {list(PRIORS)}")
    std_kind = lambda p: "unit" if p == "unit" else "marginal"  # noqa: E731: prior_std's two cases
    return trained == now or (std_kind(trained) == std_kind(now) and prior_spread({"prior": trained}) is None)


def alphas_cumprod(config: dict, device="cpu") -> torch.Tensor:
    """ᾱ_t (float32, as diffusers computes it) of a scheduler config, with ᾱ_{−1} = 1 appended at index −1."""
    from diffusers import DDPMScheduler

    a = DDPMScheduler.from_config(diffusers_config(config)).alphas_cumprod.float()
    return torch.cat([a, torch.ones(1)]).to(device)  # a[-1] = 1 so t_prev = -1 means "clean"


def save_schedule(folder: str, config: dict) -> None:
    """Write `folder/scheduler.json`: the schedule a model was trained on travels with it."""
    from ..io import atomic_write_json

    atomic_write_json(os.path.join(folder, SCHEDULE_FILE), config)


def load_schedule(folder: str) -> dict:
    """The schedule saved in a teacher/student folder; a clear error when the folder has none."""
    path = os.path.join(folder, SCHEDULE_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{folder!r} has no {SCHEDULE_FILE}: every tiny teacher/student folder must carry the "
                                "noise schedule it was trained on (write it with divdistill.tiny.schedule.save_schedule)")
    with open(path) as f:
        return json.load(f)


def snr_factor_of(config: dict) -> float:
    """The SNR factor a saved schedule declares (1.0 for SD's plain config)."""
    return float(config.get("snr_factor", 1.0))
