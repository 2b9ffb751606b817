"""Latent consistency distillation (Luo et al. 2023): skipping-step guided DDIM teacher, EMA target, LCM boundary."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..training import ema_update, optimizer_step, step_generator
from .common import LCM_TS, clone_unet, ddim_step, guided_eps, x0_from_eps
from .ddil import DDILConfig, ReplayBuffer, refresh_buffer, training_batch
from .trainer import Student, Teacher, random_prompts, train_student

SKIP = 20  # 50-step skipping grid, as LCMScheduler's original_inference_steps=50
GRID = list(range(999, 0, -SKIP))  # 999, 979, ..., 19


def boundary(t: torch.Tensor, sigma_data: float = 0.5, scaling: float = 10.0):
    """LCMScheduler's c_skip, c_out (discrete boundary condition, timestep_scaling 10) → (B, 1, 1, 1) each."""
    s = (t.float() * scaling).view(-1, 1, 1, 1)
    return sigma_data**2 / (s**2 + sigma_data**2), s / (s**2 + sigma_data**2).sqrt()


def consistency_fn(unet, x_t, t, cond, ac, reflected: bool) -> torch.Tensor:
    """f(x_t, t) = c_skip x_t + c_out x̂0 — exactly what LCMScheduler returns as `denoised`."""
    c_skip, c_out = boundary(t)
    return c_skip * x_t + c_out * x0_from_eps(x_t, unet(x_t, t, encoder_hidden_states=cond).sample, t, ac, reflected)


@dataclass
class LCMConfig:
    iters: int = 500
    batch: int = 32
    lr: float = 2e-4
    ema: float = 0.95
    teacher_guidance: float = 4.0
    seed: int = 0
    ddil: DDILConfig = field(default_factory=lambda: DDILConfig(enabled=False))

    def __post_init__(self):
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")


def train_lcm(root: str, out: str, cfg: LCMConfig, device: str = "cpu", progress: bool = True,
              name: str | None = None, probe_n: int = 0, ckpt_every: int = 100) -> dict:
    """Consistency-distil the tiny teacher into a 4-step LCM student (LCMScheduler, 999/759/499/259)."""
    return train_student(root, out, cfg, lcm_student, device, progress, name, probe_n, ckpt_every)


def lcm_student(T: Teacher, cfg: LCMConfig) -> Student:
    """LCM's parts: student, EMA target, optimizer, DDIL buffer; its step (the consistency loss, LCM Eq. 9)."""
    ac = T.ac
    student, target = clone_unet(T.unet), clone_unet(T.unet, trainable=False)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.0)
    buffer = ReplayBuffer(cfg.ddil.buffer_size)
    refl = cfg.ddil.reflected

    t_eps, s_eps = T.eps_fn(guidance=cfg.teacher_guidance), T.eps_fn(student)  # DDIL's teacher and student rollouts

    def step_fn(step: int) -> torch.Tensor:
        g = step_generator(cfg.seed, step)
        if cfg.ddil.enabled and step % cfg.ddil.refresh_every == 0:  # student unrolled on its own 4-step schedule
            student.eval()
            refresh_buffer(buffer, cfg.ddil, {"teach": t_eps, "student": s_eps}, list(LCM_TS),
                           random_prompts(cfg.ddil.refresh_batch, g), g, ac, device=T.device, prior_std=T.prior_std,
                           prior_spread=T.prior_spread)
            student.train()
        # every grid point but the last (its skipping-step target t - SKIP must exist)
        x_t, t, prompts, _ = training_batch(cfg.ddil, step / cfg.iters, cfg.batch, GRID[:-1], g, ac, buffer, T.device)
        t_prev = t - SKIP
        c, u = T.encode(prompts)
        with torch.no_grad():
            x_prev = ddim_step(x_t, guided_eps(T.unet, x_t, t, c, u, cfg.teacher_guidance), t, t_prev, ac, refl)
            tgt = consistency_fn(target, x_prev, t_prev, c, ac, refl)
        pred = consistency_fn(student, x_t, t, c, ac, False)
        loss = F.mse_loss(pred, tgt)
        optimizer_step(opt, loss, student.parameters(), clip=1.0)
        ema_update(target.parameters(), student.parameters(), cfg.ema)
        return loss.detach()

    return Student("lcm", "lcm", student, {"student": student, "target": target, "opt": opt, "buffer": buffer},
                   step_fn, cfg.iters, cfg.iters // 2, "LCMScheduler", LCM_TS,
                   f"LCM, skipping-step DDIM teacher (k={SKIP}, w={cfg.teacher_guidance}), EMA {cfg.ema}",
                   ddil=cfg.ddil)
