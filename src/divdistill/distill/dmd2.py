"""DMD2 (Yin et al. 2024): distribution matching with an online fake score and backward simulation, 4 steps."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..training import optimizer_step, step_generator
from .common import STUDENT_TS, add_noise, clone_unet, guided_eps, x0_from_eps
from .ddil import DDILConfig, ReplayBuffer, refresh_buffer, training_batch
from .trainer import Student, Teacher, random_prompts, train_student


def plain_dmd2_sources() -> DDILConfig:
    """DMD2 without DDIL: generator inputs come only from its own fresh backward simulation."""
    return DDILConfig(priors=(0.0, 0.0, 1.0), late_priors=None, buffer_size=32, refresh_every=1, refresh_batch=32,
                      rollout="renoise")


@dataclass
class DMD2Config:
    iters: int = 250
    batch: int = 16
    lr_gen: float = 5e-5
    lr_fake: float = 1e-4
    fake_updates: int = 10  # fake-score updates per generator update (DMD2's two-time-scale rule; DDIL uses 10)
    real_guidance: float = 4.0
    t_min: int = 20
    t_max: int = 980
    seed: int = 0
    ddil: DDILConfig = field(default_factory=plain_dmd2_sources)

    def __post_init__(self):
        if self.fake_updates < 1:
            raise ValueError(f"fake_updates must be >= 1, got {self.fake_updates}")
        if not 0 <= self.t_min < self.t_max <= 999:
            raise ValueError(f"need 0 <= t_min < t_max <= 999, got {self.t_min}, {self.t_max}")


def dmd_loss(x_fake, cond, uncond, real, fake, cfg, g, ac, reflected) -> torch.Tensor:
    """DMD Eq. 7: move x toward the real score's x̂0 and away from the fake score's, normalised per sample."""
    t = torch.randint(cfg.t_min, cfg.t_max, (len(x_fake),), generator=g).to(x_fake.device)
    noise = torch.randn(x_fake.shape, generator=g).to(x_fake.device)
    with torch.no_grad():
        x_t = add_noise(x_fake, noise, t, ac)
        p_real = x0_from_eps(x_t, guided_eps(real, x_t, t, cond, uncond, cfg.real_guidance), t, ac, reflected)
        p_fake = x0_from_eps(x_t, fake(x_t, t, encoder_hidden_states=cond).sample, t, ac, reflected)
        w = (x_fake - p_real).abs().mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-5)
        grad = (p_fake - p_real) / w
    return 0.5 * F.mse_loss(x_fake, (x_fake - grad).detach())


def train_dmd2(root: str, out: str, cfg: DMD2Config, device: str = "cpu", progress: bool = True,
               name: str | None = None, probe_n: int = 0, ckpt_every: int = 50) -> dict:
    """Distribution-matching distillation of the tiny teacher into a 4-step generator (999/749/499/249)."""
    return train_student(root, out, cfg, dmd2_student, device, progress, name, probe_n, ckpt_every)


def dmd2_student(T: Teacher, cfg: DMD2Config) -> Student:
    """DMD2's parts: generator, fake score, their optimizers, the backward-simulation buffer; its step (DMD Eq. 7)."""
    ac = T.ac
    gen, fake = clone_unet(T.unet), clone_unet(T.unet)
    opt_g = torch.optim.AdamW(gen.parameters(), lr=cfg.lr_gen, weight_decay=0.0, betas=(0.0, 0.999))
    opt_f = torch.optim.AdamW(fake.parameters(), lr=cfg.lr_fake, weight_decay=0.0, betas=(0.0, 0.999))
    buffer, grid, refl = ReplayBuffer(cfg.ddil.buffer_size), list(STUDENT_TS), cfg.ddil.reflected

    t_eps, s_eps = T.eps_fn(guidance=cfg.real_guidance), T.eps_fn(gen)  # DDIL's teacher and student rollouts

    def step_fn(step: int) -> dict:
        g = step_generator(cfg.seed, step)
        if step % cfg.ddil.refresh_every == 0:  # backward simulation (and teacher rollouts with DDIL)
            gen.eval()
            refresh_buffer(buffer, cfg.ddil, {"teach": t_eps, "student": s_eps}, grid,
                           random_prompts(cfg.ddil.refresh_batch, g), g, ac, device=T.device)
            gen.train()
        x_t, t, prompts, _ = training_batch(cfg.ddil, step / cfg.iters, cfg.batch, grid, g, ac, buffer, T.device)
        c, u = T.encode(prompts)
        x_fake = x0_from_eps(x_t, gen(x_t, t, encoder_hidden_states=c).sample, t, ac, refl)  # (B, 3, H, W)
        loss_g = dmd_loss(x_fake, c, u, T.unet, fake, cfg, g, ac, refl)
        optimizer_step(opt_g, loss_g, gen.parameters(), clip=1.0)
        fake_losses = []
        for _ in range(cfg.fake_updates):  # the fake score tracks the generator's current distribution
            tf = torch.randint(0, 1000, (cfg.batch,), generator=g).to(T.device)
            nf = torch.randn(x_fake.shape, generator=g).to(T.device)
            loss_f = F.mse_loss(fake(add_noise(x_fake.detach(), nf, tf, ac), tf, encoder_hidden_states=c).sample, nf)
            optimizer_step(opt_f, loss_f, clip=None)
            fake_losses.append(loss_f.detach())
        return {"gen": loss_g.detach(), "fake": torch.stack(fake_losses).mean()}

    return Student("dmd2", "dmd2", gen, {"gen": gen, "fake": fake, "opt_g": opt_g, "opt_f": opt_f, "buffer": buffer},
                   step_fn, cfg.iters, cfg.iters // 2, "LCMScheduler", STUDENT_TS,
                   "DMD2 without the GAN head; LCMScheduler on 999/749/499/249 as DMD2's SDXL release",
                   ddil=cfg.ddil, loss_keys=("gen", "fake"))
