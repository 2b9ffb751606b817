"""The model registry behind both scales: one World API over the tiny world and SDXL with its students."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch

from .prior import apply_prior


class ModelUnavailableError(RuntimeError):
    """A checkpoint could not be loaded (no hub access, missing file)."""


@dataclass
class ModelSpec:
    """One denoiser in a world: its UNet (and LoRA adapter, if any), scheduler, schedule and guidance."""

    name: str
    unet: torch.nn.Module
    make_scheduler: Callable[[], object]  # a fresh scheduler per trajectory and model segment
    n_steps: int
    guidance: float = 0.0  # default: > 1 means classifier-free guidance at that scale
    guidance_mode: str = "cfg"  # "cfg" (two forward passes) or "embed" (LCM's w-embedding, one pass)
    adapter: str | None = None  # a peft adapter on `unet`: enabled for this model, disabled for the others
    timesteps: tuple[int, ...] | None = None  # explicit schedule (e.g. DMD2's 999/749/499/249)
    role: str = "student"
    notes: str = ""

    def __post_init__(self):
        if self.guidance_mode not in ("cfg", "embed"):
            raise ValueError(f"guidance_mode must be 'cfg' or 'embed', got {self.guidance_mode!r}")

    def default_timesteps(self, n: int | None = None) -> list[int]:
        """The model's own schedule: explicit timesteps when given (and n matches), else its scheduler's n-step grid."""
        if self.timesteps is not None and n in (None, len(self.timesteps)):
            return list(self.timesteps)
        n = self.n_steps if n is None else n
        if n < 1:
            raise ValueError(f"number of steps must be >= 1, got {n}")
        sched = self.make_scheduler()
        sched.set_timesteps(n)
        return [int(t) for t in sched.timesteps]


@dataclass
class Conditioning:
    """Encoded prompts, computed once per batch and shared by every model in a plan (UNet keyword arguments)."""

    cond: dict
    uncond: dict | None = None

    def doubled(self) -> dict:
        """[uncond; cond] stacked along the batch, as diffusers pipelines do for CFG."""
        if self.uncond is None:
            raise ValueError("classifier-free guidance needs the unconditional embedding")
        return _cat(self.uncond, self.cond)


def _cat(a, b):
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    return torch.cat([a, b])


@dataclass
class World:
    """A scale's models plus its text encoding, initial noise and decoding."""

    scale: str
    base_name: str
    specs: dict[str, ModelSpec]
    device: torch.device
    dtype: torch.dtype = torch.float32
    latent_shape: tuple[int, int, int] = (3, 32, 32)
    encode_fn: Callable | None = None
    decode_fn: Callable | None = None
    extras: dict = field(default_factory=dict)
    prior_std: float = 1.0  # x_T ~ N(0, prior_std²·I), VP: the sampling prior every plan starts from
    prior_spread: float | None = None  # each draw's amplitude spread narrowed to this (prior.apply_prior); None: N's own

    @property
    def prior_settings(self) -> dict:
        """The sampling prior's parameters, for the settings a cached or resumed measurement must match."""
        return {"prior_std": self.prior_std, "prior_spread": self.prior_spread}

    @property
    def names(self) -> list[str]:
        return list(self.specs)

    @property
    def students(self) -> list[str]:
        """The distilled students: entries of role "student" (solver or sampler entries only lend a scheduler)."""
        return [n for n, s in self.specs.items() if n != self.base_name and s.role == "student"]

    def spec(self, name: str) -> ModelSpec:
        if name not in self.specs:
            raise KeyError(f"unknown model {name!r} at scale {self.scale!r}; valid names: {self.names}")
        return self.specs[name]

    def encode(self, prompts: list[str]) -> Conditioning:
        if isinstance(prompts, str) or not prompts:
            raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
        return self.encode_fn(list(prompts))

    def unit_noise(self, seeds) -> torch.Tensor:
        """The unit draws ε behind `noise`, per-image seeded on the CPU: (B, C, H, W)."""
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        return torch.stack([torch.randn(self.latent_shape, generator=g) for g in gens])

    def noise(self, seeds) -> torch.Tensor:
        """The sampling prior's x_T, per-image seeded and drawn on the CPU: image i of seed s is the same on any batch
        or device."""
        return apply_prior(self.unit_noise(seeds), self.prior_std, self.prior_spread).to(self.device, self.dtype)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.decode_fn is None else self.decode_fn(x)

    def add(self, spec: ModelSpec) -> None:
        """Register another model (e.g. a freshly trained student)."""
        self.specs[spec.name] = spec


def scheduler_factory(cls, config: dict, **overrides):
    """A zero-argument callable building a fresh `cls` scheduler from `config` (+ overrides)."""
    def make():
        return cls.from_config({**dict(config), **overrides})
    make.cls, make.overrides = cls, overrides
    return make


def accepts(fn, name: str) -> bool:
    return name in inspect.signature(fn).parameters
