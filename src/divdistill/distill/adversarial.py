"""Adversarial students: Turbo-like (ADD, Sauer et al. 2023) and Lightning-like (progressive adversarial, Lin et al. 2024)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..tiny.world import sample_scenes
from ..training import optimizer_step, step_generator
from .common import STUDENT_TS, add_noise, clone_unet, ddim_step, x0_from_eps
from .pd import pd_target, trailing_grid
from .trainer import Student, Teacher, train_student


class TeacherFeatureDiscriminator(nn.Module):
    """Conditional discriminator: trainable heads on the frozen teacher UNet's text-attending 8×8 mid-block features."""

    def __init__(self, teacher_unet):
        super().__init__()
        self.teacher = teacher_unet.eval().requires_grad_(False)
        ch = teacher_unet.config.block_out_channels[-1]
        self.head = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, 1, 1))

    def state_dict(self, *a, **kw):  # only the heads are trained and checkpointed
        return self.head.state_dict(*a, **kw)

    def load_state_dict(self, st, *a, **kw):
        return self.head.load_state_dict(st, *a, **kw)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        feats = []
        hook = self.teacher.mid_block.register_forward_hook(lambda m, i, o: feats.append(o))
        try:
            self.teacher(x, t, encoder_hidden_states=cond)
        finally:
            hook.remove()
        return self.head(feats[0]).mean(dim=(1, 2, 3))  # (B,) patch logits averaged


def hinge_d(d_real, d_fake) -> torch.Tensor:
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


@dataclass
class AdversarialConfig:
    kind: str = "turbo"  # "turbo" (ADD) or "lightning" (progressive adversarial)
    iters: int = 300  # turbo: total; lightning: per stage
    batch: int = 16
    lr: float = 5e-5
    lr_d: float = 1e-4
    distill_weight: float = 2.5  # ADD's λ for the score-distillation term; Lightning: weight of the PD MSE term
    teacher_guidance: float = 4.0
    start_steps: int = 32  # lightning only
    seed: int = 0

    def __post_init__(self):
        if self.kind not in ("turbo", "lightning"):
            raise ValueError(f"kind must be 'turbo' or 'lightning', got {self.kind!r}")


def train_adversarial(root: str, out: str, cfg: AdversarialConfig, device: str = "cpu", progress: bool = True,
                      name: str | None = None, probe_n: int = 0, ckpt_every: int = 50) -> dict:
    """Turbo-like: forward-diffused inputs at the 4 student timesteps, adversarial + score distillation.
    Lightning-like: PD's 32→16→8→4 stages where a conditional discriminator judges one student step against two
    teacher steps (plus the PD regression term)."""
    return train_student(root, out, cfg, adversarial_student, device, progress, name, probe_n, ckpt_every)


def adversarial_student(T: Teacher, cfg: AdversarialConfig) -> Student:
    """Turbo's/Lightning's parts: student, stage teacher, discriminator, optimizers; its step (hinge GAN + regression)."""
    ac = T.ac
    student, disc = clone_unet(T.unet), TeacherFeatureDiscriminator(clone_unet(T.unet, trainable=False)).to(T.device)
    stage_teacher = clone_unet(T.unet, trainable=False)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.0, betas=(0.0, 0.99))
    opt_d = torch.optim.AdamW(disc.head.parameters(), lr=cfg.lr_d, weight_decay=0.0, betas=(0.0, 0.99))
    stages = [cfg.start_steps // 2 ** (i + 1) for i in range((cfg.start_steps // 4).bit_length() - 1)]
    total = cfg.iters if cfg.kind == "turbo" else cfg.iters * len(stages)

    def step_fn(step: int):
        g = step_generator(cfg.seed, step)
        sc = sample_scenes(cfg.batch, seed=int(torch.randint(2**31, (1,), generator=g)))
        x0, noise = sc.images.to(T.device), torch.randn(sc.images.shape, generator=g).to(T.device)
        c, u = T.encode(sc.prompts)
        if cfg.kind == "turbo":
            fake, real, t_d, reg = _turbo_pair(student, T, x0, noise, c, u, cfg, g, ac)
        else:
            stage = step // cfg.iters
            if step > 0 and step % cfg.iters == 0:
                stage_teacher.load_state_dict(student.state_dict())
                opt.state.clear()
            fake, real, t_d, reg = _lightning_pair(student, stage_teacher if stage else T.unet, stages[stage], stage,
                                                    x0, noise, c, u, cfg, g, ac)
        loss_g = -disc(fake, t_d, c).mean() + cfg.distill_weight * reg
        optimizer_step(opt, loss_g, student.parameters(), clip=1.0)
        loss_d = hinge_d(disc(real, t_d, c), disc(fake.detach(), t_d, c))
        optimizer_step(opt_d, loss_d, clip=None)
        return {"gen": loss_g.detach(), "disc": loss_d.detach()}

    sched = "EulerAncestralDiscreteScheduler" if cfg.kind == "turbo" else "EulerDiscreteScheduler"
    half = total // 2 if cfg.kind == "turbo" else total - cfg.iters // 2  # lightning: half-way through its 4-step stage
    notes = ("ADD-style: hinge GAN on frozen-teacher features + score distillation" if cfg.kind == "turbo"
             else "progressive adversarial: PD stages, conditional discriminator + PD regression")
    return Student(cfg.kind, cfg.kind, student,
                   {"student": student, "stage_teacher": stage_teacher, "disc": disc, "opt": opt, "opt_d": opt_d},
                   step_fn, total, half, sched, STUDENT_TS, notes, overrides={"timestep_spacing": "trailing"},
                   loss_keys=("gen", "disc"))


def _turbo_pair(student, T, x0, noise, c, u, cfg, g, ac):
    """ADD: the student denoises forward-diffused data at a student timestep; the teacher re-denoises its output."""
    from .common import guided_eps

    s = torch.tensor(STUDENT_TS, device=x0.device)[torch.randint(0, 4, (len(x0),), generator=g)]
    x_s = add_noise(x0, noise, s, ac)
    fake = x0_from_eps(x_s, student(x_s, s, encoder_hidden_states=c).sample, s, ac)  # (B, 3, H, W)
    t = torch.randint(20, 980, (len(x0),), generator=g).to(x0.device)
    with torch.no_grad():
        x_t = add_noise(fake, torch.randn(x0.shape, generator=g).to(x0.device), t, ac)
        target = x0_from_eps(x_t, guided_eps(T.unet, x_t, t, c, u, cfg.teacher_guidance), t, ac)
    reg = (ac[t].view(-1, 1, 1, 1) * (fake - target) ** 2).mean()  # ADD's c(t) = ᾱ_t weighting
    return fake, x0, torch.zeros_like(t), reg


def _lightning_pair(student, teacher, n, stage, x0, noise, c, u, cfg, g, ac):
    """One student DDIM step vs two teacher steps on the stage's grid; the discriminator sees both at t_next."""
    from .common import guided_eps

    grid, fine = trailing_grid(n), trailing_grid(2 * n)
    k = torch.randint(0, n, (len(x0),), generator=g)
    t = torch.tensor([grid[i] for i in k.tolist()], device=x0.device)
    t_mid = torch.tensor([fine[2 * i + 1] for i in k.tolist()], device=x0.device)
    t_next = torch.tensor([grid[i + 1] if i + 1 < n else -1 for i in k.tolist()], device=x0.device)
    x_t = add_noise(x0, noise, t, ac)
    w = cfg.teacher_guidance if stage == 0 else 1.0
    teps = lambda x, tt: guided_eps(teacher, x, tt, c, u, w)  # noqa: E731
    with torch.no_grad():
        x_mid = ddim_step(x_t, teps(x_t, t), t, t_mid, ac)
        real = ddim_step(x_mid, teps(x_mid, t_mid), t_mid, t_next, ac)
        target = pd_target(x_t, t, t_mid, t_next, teps, ac, False)
    eps = student(x_t, t, encoder_hidden_states=c).sample
    fake = ddim_step(x_t, eps, t, t_next, ac)
    reg = ((x0_from_eps(x_t, eps, t, ac) - target) ** 2).mean()
    return fake, real, t_next.clamp(min=0), reg
