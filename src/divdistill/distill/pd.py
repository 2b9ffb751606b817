"""Progressive distillation (Salimans & Ho 2022): each stage, one student DDIM step matches two teacher steps."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..training import optimizer_step, step_generator
from .common import clone_unet, ddim_step, x0_from_eps
from .ddil import DDILConfig, ReplayBuffer, refresh_buffer, training_batch
from .trainer import Student, Teacher, random_prompts, train_student


def trailing_grid(n: int) -> list[int]:
    """diffusers' "trailing" n-step grid (starts at 999): 4 → [999, 749, 499, 249]."""
    return [int(round(1000 - i * 1000 / n)) - 1 for i in range(n)]


@dataclass
class PDConfig:
    start_steps: int = 32  # the guided teacher's steps in stage one
    final_steps: int = 4
    iters_per_stage: int = 150
    batch: int = 32
    lr: float = 2e-4
    teacher_guidance: float = 4.0
    seed: int = 0
    ddil: DDILConfig = field(default_factory=lambda: DDILConfig(enabled=False))

    def __post_init__(self):
        ratio = self.start_steps / max(self.final_steps, 1)
        if self.final_steps < 1 or ratio < 2 or ratio != 2 ** round(math.log2(ratio)):
            raise ValueError(f"progressive distillation halves the steps each stage: start_steps/final_steps must be "
                             f"a power of two >= 2, got {self.start_steps}/{self.final_steps}")

    @property
    def stages(self) -> list[int]:
        """Student step counts per stage, e.g. 32 → [16, 8, 4]."""
        return [self.start_steps // 2 ** (i + 1) for i in range(int(math.log2(self.start_steps // self.final_steps)))]


def pd_target(x_t, t, t_mid, t_next, teacher_eps, ac, reflected: bool) -> torch.Tensor:
    """x̃0 such that one DDIM step t → t_next from x_t lands where two teacher steps land (PD Alg. 2)."""
    x_mid = ddim_step(x_t, teacher_eps(x_t, t), t, t_mid, ac, reflected)
    x_next = ddim_step(x_mid, teacher_eps(x_mid, t_mid), t_mid, t_next, ac, reflected)
    a_t, a_n = ac[t].view(-1, 1, 1, 1), ac[t_next].view(-1, 1, 1, 1)
    r = (1 - a_n).sqrt() / (1 - a_t).sqrt()
    return (x_next - r * x_t) / (a_n.sqrt() - r * a_t.sqrt())


def train_pd(root: str, out: str, cfg: PDConfig, device: str = "cpu", progress: bool = True,
             name: str | None = None, probe_n: int = 0, ckpt_every: int = 100) -> dict:
    """Distil the tiny teacher 32 → 16 → 8 → 4 steps (optionally with DDIL's training distribution)."""
    return train_student(root, out, cfg, pd_student, device, progress, name, probe_n, ckpt_every)


def pd_student(T: Teacher, cfg: PDConfig) -> Student:
    """PD's parts: student, the stage's teacher, optimizer, DDIL buffer; its step (PD Alg. 2's SNR-weighted MSE)."""
    ac = T.ac
    student, stage_teacher = clone_unet(T.unet), clone_unet(T.unet, trainable=False)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.0)
    buffer = ReplayBuffer(cfg.ddil.buffer_size)
    total = cfg.iters_per_stage * len(cfg.stages)

    def step_fn(step: int) -> float:
        stage = step // cfg.iters_per_stage
        if step > 0 and step % cfg.iters_per_stage == 0:  # the last stage's student teaches the next stage
            stage_teacher.load_state_dict(student.state_dict())
            opt.state.clear()
            buffer.clear()  # rollouts on the old grid are not on this stage's grid
        n = cfg.stages[stage]
        grid, fine = trailing_grid(n), trailing_grid(2 * n)

        # stage one distils the guided teacher; later stages the previous (unguided) student
        t_eps = T.eps_fn(guidance=cfg.teacher_guidance) if stage == 0 else T.eps_fn(stage_teacher)
        s_eps = T.eps_fn(student)

        g = step_generator(cfg.seed, step)
        if cfg.ddil.enabled and step % cfg.ddil.refresh_every == 0:
            student.eval()
            refresh_buffer(buffer, cfg.ddil, {"teach": t_eps, "student": s_eps}, grid,
                           random_prompts(cfg.ddil.refresh_batch, g), g, ac, device=T.device, prior_std=T.prior_std,
                           prior_spread=T.prior_spread)
            student.train()
        x_t, t, prompts, _ = training_batch(cfg.ddil, step / total, cfg.batch, grid, g, ac, buffer, T.device)
        k = torch.tensor([grid.index(int(v)) for v in t], device=T.device)
        t_mid = torch.tensor([fine[2 * i + 1] for i in k.tolist()], device=T.device)
        t_next = torch.tensor([grid[i + 1] if i + 1 < n else -1 for i in k.tolist()], device=T.device)
        with torch.no_grad():
            target = pd_target(x_t, t, t_mid, t_next, t_eps(prompts), ac, cfg.ddil.reflected)
        c, _ = T.encode(prompts)
        x0 = x0_from_eps(x_t, student(x_t, t, encoder_hidden_states=c).sample, t, ac)
        snr = ac[t] / (1 - ac[t])
        loss = (snr.clamp(min=1).view(-1, 1, 1, 1) * (x0 - target) ** 2).mean()
        optimizer_step(opt, loss, student.parameters(), clip=1.0)
        return loss.detach()

    # PD's student is a 4-step model only in its last stage: probe half-way through that stage and at the end
    return Student("progressive_distillation", "pd", student,
                   {"student": student, "stage_teacher": stage_teacher, "opt": opt, "buffer": buffer}, step_fn, total,
                   total - cfg.iters_per_stage // 2, "DDIMScheduler", trailing_grid(cfg.final_steps),
                   f"PD {cfg.start_steps}→{cfg.final_steps} steps, guided teacher (w={cfg.teacher_guidance})",
                   ddil=cfg.ddil, overrides={"timestep_spacing": "trailing"})
