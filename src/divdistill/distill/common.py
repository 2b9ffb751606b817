"""Shared pieces of the tiny-world distillation trainers: DDIM algebra, guided teacher, students on disk."""
from __future__ import annotations

import copy
import os

import torch
from diffusers import UNet2DConditionModel

from ..io import atomic_write_json, provenance, save_unet
from ..sampling import forward_diffuse

STUDENT_TS = (999, 749, 499, 249)  # DMD2's / Lightning's 4-step schedule
LCM_TS = (999, 759, 499, 259)  # LCMScheduler's default 4-step grid (50-step skipping grid)


def _a(ac, t, x):
    return ac[t].view(-1, *([1] * (x.dim() - 1)))  # (B, 1, 1, 1)


def x0_from_eps(x_t, eps, t, ac, reflected: bool = False) -> torch.Tensor:
    """x̂0 = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t; reflected=True clips it to the data range [-1, 1] (DDIL Sec. 4.2)."""
    a = _a(ac, t, x_t)
    x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
    return x0.clamp(-1, 1) if reflected else x0


def eps_from_x0(x_t, x0, t, ac) -> torch.Tensor:
    a = _a(ac, t, x_t)
    return (x_t - a.sqrt() * x0) / (1 - a).sqrt()


def ddim_step(x_t, eps, t, t_prev, ac, reflected: bool = False) -> torch.Tensor:
    """Stateless deterministic DDIM from t to t_prev (t_prev = -1: to clean data); t, t_prev are (B,) tensors."""
    x0 = x0_from_eps(x_t, eps, t, ac, reflected)
    if reflected:
        eps = eps_from_x0(x_t, x0, t, ac)
    ap = _a(ac, t_prev, x_t)
    return ap.sqrt() * x0 + (1 - ap).sqrt() * eps


def add_noise(x0, noise, t, ac) -> torch.Tensor:
    """Forward diffusion q(x_t | x_0) in the trainers' argument order (sampling.forward_diffuse)."""
    return forward_diffuse(x0, t, ac, noise)


def guided_eps(unet, x_t, t, cond, uncond, guidance: float) -> torch.Tensor:
    """Classifier-free guided ε̂ of a (frozen) teacher: ε_u + w (ε_c − ε_u); one doubled batch."""
    if guidance <= 1.0:
        return unet(x_t, t, encoder_hidden_states=cond).sample
    out = unet(torch.cat([x_t, x_t]), torch.cat([t, t]), encoder_hidden_states=torch.cat([uncond, cond])).sample
    e_u, e_c = out.chunk(2)
    return e_u + guidance * (e_c - e_u)


def clone_unet(unet: UNet2DConditionModel, trainable: bool = True) -> UNet2DConditionModel:
    """A float32 copy of a UNet (students and fake scores start from the teacher)."""
    u = copy.deepcopy(unet).float()
    return u.train().requires_grad_(True) if trainable else u.eval().requires_grad_(False)


def save_student(out: str, unet, name: str, scheduler: str, timesteps, cfg: dict, seed: int, steps: int,
                 wall: float, metrics: dict, guidance: float = 0.0, overrides: dict | None = None, notes: str = "",
                 schedule: dict | None = None):
    """Write `out/unet` (fp16 safetensors), `out/student.json` (registry entry), `out/scheduler.json` (the noise
    schedule it was distilled on: its teacher's), `out/provenance.json`."""
    from ..tiny.schedule import save_schedule

    if schedule is None:
        raise ValueError(f"save_student({name!r}) needs the teacher's noise schedule (Teacher.schedule)")
    save_schedule(out, schedule)
    save_unet(unet, os.path.join(out, "unet"))
    atomic_write_json(os.path.join(out, "student.json"), {
        "name": name, "scheduler": scheduler, "scheduler_overrides": overrides or {}, "timesteps": list(timesteps),
        "guidance": guidance, "guidance_mode": "cfg", "notes": notes})
    atomic_write_json(os.path.join(out, "provenance.json"), provenance(cfg, seed, steps, wall, metrics))
