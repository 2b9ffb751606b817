"""DMD2 (Yin et al. 2024): distribution matching with an online fake score and backward simulation, 4 steps."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..tiny.world import sample_scenes
from ..training import optimizer_step, step_generator
from .common import STUDENT_TS, add_noise, clone_unet, guided_eps, x0_from_eps
from .ddil import DDILConfig, ReplayBuffer, refresh_buffer, training_batch
from .gan import discriminator_gan_loss, generator_gan_loss, head_for, realism_logits
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
    betas: tuple = (0.0, 0.999)  # AdamW betas of both optimizers (DMD2's code: (0.9, 0.999))
    weight_decay: float = 0.0  # (DMD2's code: 0.01)
    grad_clip: float = 1.0  # generator grad-norm clip (DMD2's code: 10)
    gan_gen: float = 0.0  # weight of the generator's GAN term; 0 with gan_disc 0 = no GAN head (DMD2: 3e-3 / 5e-3)
    gan_disc: float = 0.0  # weight of the classifier's GAN term in the fake-score loss (DMD2: 1e-2)

    def __post_init__(self):
        if self.fake_updates < 1:
            raise ValueError(f"fake_updates must be >= 1, got {self.fake_updates}")
        if self.gan_gen < 0 or self.gan_disc < 0:
            raise ValueError(f"GAN weights must be >= 0, got gan_gen={self.gan_gen}, gan_disc={self.gan_disc}")
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
    """DMD2's parts: generator, fake score (+ GAN head), their optimizers, the backward-simulation buffer; its step."""
    ac = T.ac
    gen, fake = clone_unet(T.unet), clone_unet(T.unet)
    head = head_for(fake).to(T.device) if cfg.gan_gen > 0 or cfg.gan_disc > 0 else None
    fake_params = list(fake.parameters()) + (list(head.parameters()) if head is not None else [])
    opt_g = torch.optim.AdamW(gen.parameters(), lr=cfg.lr_gen, weight_decay=cfg.weight_decay, betas=cfg.betas)
    opt_f = torch.optim.AdamW(fake_params, lr=cfg.lr_fake, weight_decay=cfg.weight_decay, betas=cfg.betas)
    buffer, grid, refl = ReplayBuffer(cfg.ddil.buffer_size), list(STUDENT_TS), cfg.ddil.reflected

    t_eps, s_eps = T.eps_fn(guidance=cfg.real_guidance), T.eps_fn(gen)  # DDIL's teacher and student rollouts

    def logits(x0, cond, g):  # diffusion GAN: noised at a uniform t in [0, 1000), as DMD2's code
        t = torch.randint(0, 1000, (len(x0),), generator=g).to(T.device)
        return realism_logits(fake, head, x0, t, cond, torch.randn(x0.shape, generator=g).to(T.device),
                              lambda x, n, tt: add_noise(x, n, tt, ac))

    def step_fn(step: int) -> dict:
        g = step_generator(cfg.seed, step)
        if step % cfg.ddil.refresh_every == 0:  # backward simulation (and teacher rollouts with DDIL)
            gen.eval()
            refresh_buffer(buffer, cfg.ddil, {"teach": t_eps, "student": s_eps}, grid,
                           random_prompts(cfg.ddil.refresh_batch, g), g, ac, device=T.device, prior_std=T.prior_std,
                           prior_spread=T.prior_spread)
            gen.train()
        x_t, t, prompts, _ = training_batch(cfg.ddil, step / cfg.iters, cfg.batch, grid, g, ac, buffer, T.device)
        c, u = T.encode(prompts)
        x_fake = x0_from_eps(x_t, gen(x_t, t, encoder_hidden_states=c).sample, t, ac, refl)  # (B, 3, H, W)
        loss_g = dmd_loss(x_fake, c, u, T.unet, fake, cfg, g, ac, refl)
        out = {"gen": loss_g.detach()}
        if head is not None:  # DMD2 Eq. 8: the generator also fools the realism classifier
            gan_g = generator_gan_loss(logits(x_fake, c, g))
            loss_g, out["gan_gen"] = loss_g + cfg.gan_gen * gan_g, gan_g.detach()
        optimizer_step(opt_g, loss_g, gen.parameters(), clip=cfg.grad_clip)
        out.update(_fake_updates(fake, opt_f, head, logits, x_fake.detach(), c, T, cfg, g, ac))
        return out

    parts = {"gen": gen, "fake": fake, "opt_g": opt_g, "opt_f": opt_f, "buffer": buffer}
    if head is not None:
        parts["head"] = head
    gan_note = "with the GAN head on the fake score's bottleneck" if head is not None else "without the GAN head"
    return Student("dmd2", "dmd2", gen, parts, step_fn, cfg.iters, cfg.iters // 2, "LCMScheduler", STUDENT_TS,
                   f"DMD2 {gan_note}; LCMScheduler on 999/749/499/249 as DMD2's SDXL release",
                   ddil=cfg.ddil, loss_keys=("gen", "fake") + (("gan_gen", "gan_disc") if head is not None else ()))


def _fake_updates(fake, opt_f, head, logits, x_fake, c, T, cfg, g, ac) -> dict:
    """TTUR: `fake_updates` steps of the fake score (denoising loss; + the realism classifier's loss with a head)."""
    fake_losses, disc_losses = [], []
    for _ in range(cfg.fake_updates):  # the fake score tracks the generator's current distribution
        tf = torch.randint(0, 1000, (cfg.batch,), generator=g).to(T.device)
        nf = torch.randn(x_fake.shape, generator=g).to(T.device)
        loss_f = F.mse_loss(fake(add_noise(x_fake, nf, tf, ac), tf, encoder_hidden_states=c).sample, nf)
        fake_losses.append(loss_f.detach())
        if head is not None:  # real scenes with their own prompts vs the generator's samples
            real = sample_scenes(cfg.batch, seed=int(torch.randint(2**31, (1,), generator=g)))
            d = discriminator_gan_loss(logits(real.images.to(T.device), T.encode(real.prompts)[0], g),
                                       logits(x_fake, c, g))
            loss_f = loss_f + cfg.gan_disc * d
            disc_losses.append(d.detach())
        optimizer_step(opt_f, loss_f, clip=None)
    out = {"fake": torch.stack(fake_losses).mean()}
    if disc_losses:
        out["gan_disc"] = torch.stack(disc_losses).mean()
    return out
