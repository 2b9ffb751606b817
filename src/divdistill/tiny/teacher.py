"""Train the tiny world's base model ("teacher"): an SD-style eps-prediction UNet with a jointly trained text encoder."""
from __future__ import annotations

import copy
import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel

from ..io import atomic_write_json, provenance, save_unet
from .schedule import PRIORS, diffusers_config, save_schedule, scheduler_config
from .text import TextEncoder, Tokenizer
from .world import RES, sample_scenes


def unet_config(width: int = 16, text_dim: int = 64) -> dict:
    """UNet2DConditionModel config: attention only at the lowest (8×8) resolution."""
    return dict(sample_size=RES, in_channels=3, out_channels=3, layers_per_block=1,
                block_out_channels=(width, 2 * width, 4 * width), norm_num_groups=8,
                down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
                cross_attention_dim=text_dim, attention_head_dim=8)


@dataclass
class TeacherConfig:
    steps: int = 6500
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 200
    ema: float = 0.999
    p_uncond: float = 0.1
    width: int = 16
    text_dim: int = 64
    seed: int = 0
    ckpt_every: int = 250
    # Offset noise (as SDXL was trained with): a per-image, per-channel constant added to the training noise from
    # step `offset_noise_start` on. Without it the SD schedule's non-zero terminal SNR leaks the image mean into x_T
    # and sampling from pure noise reads the noise's random mean as the background colour.
    offset_noise: float = 0.1
    offset_noise_start: int = 5000
    # The noise schedule: SNR(t) × snr_factor of SD's scaled-linear schedule (1 = SD's own; see tiny/schedule.py).
    snr_factor: float = 1.0
    # The sampling prior its probes and every plan of its world start from (tiny/schedule.py PRIORS).
    prior: str = "unit"
    # Fine-tune from this teacher folder instead of a random init (how Lin et al. 2024 re-fit SD to a new schedule).
    init_from: str | None = None
    # Cosine decay of the learning rate to 0 over the last `decay_steps` steps (0: constant after warm-up).
    decay_steps: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.batch < 1:
            raise ValueError(f"steps and batch must be >= 1, got steps={self.steps}, batch={self.batch}")
        if not 0 <= self.p_uncond < 1:
            raise ValueError(f"p_uncond must be in [0, 1), got {self.p_uncond}")
        if self.width < 8 or self.width % 8:
            raise ValueError(f"width must be a positive multiple of 8 (the UNet's 8 norm groups), got {self.width}")
        if self.prior not in PRIORS:
            raise ValueError(f"unknown sampling prior {self.prior!r}; valid: {list(PRIORS)}")
        if not 0 <= self.decay_steps <= self.steps:
            raise ValueError(f"decay_steps must be in [0, steps={self.steps}], got {self.decay_steps}")


def diffusion_loss(unet, text_encoder, tok, x0, prompts, t, noise, sched) -> torch.Tensor:
    """Eq. (1) of DDPM: ||eps - eps_theta(x_t, t, c)||^2."""
    xt = sched.add_noise(x0, noise, t)  # (B, 3, H, W)
    emb = text_encoder(tok(prompts).to(x0.device))  # (B, L, D)
    return F.mse_loss(unet(xt, t, encoder_hidden_states=emb).sample, noise)


def train_teacher(out: str, cfg: TeacherConfig, device: str = "cpu", progress: bool = True, probe=None,
                  probe_at=()) -> dict:
    """Train (or resume) the tiny teacher and its text encoder; writes `out/unet`, `out/text_encoder`, its schedule and
    provenance. `probe(ema_unet, ema_enc, schedule)` → metrics runs at the steps in `probe_at` (and at the end)."""
    from ..training import ema_update, fit, loss_curve, optimizer_step

    torch.manual_seed(cfg.seed)
    unet = UNet2DConditionModel(**unet_config(cfg.width, cfg.text_dim)).to(device)
    enc = TextEncoder(dim=cfg.text_dim).to(device)
    if cfg.init_from:  # fp16 on disk → this run's fp32 weights
        init = UNet2DConditionModel.from_pretrained(os.path.join(cfg.init_from, "unet"))
        if init.config.block_out_channels[0] != cfg.width:
            raise ValueError(f"--init-from {cfg.init_from!r} is a width-{init.config.block_out_channels[0]} teacher; "
                             f"this run asks for width {cfg.width}: fine-tune at its width, or train from scratch")
        unet.load_state_dict({k: v.float() for k, v in init.state_dict().items()})
        enc.load_state_dict(TextEncoder.load(os.path.join(cfg.init_from, "text_encoder")).state_dict())
    ema = copy.deepcopy(torch.nn.ModuleDict({"unet": unet, "enc": enc})).requires_grad_(False)
    params = list(unet.parameters()) + list(enc.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    schedule = scheduler_config(cfg.snr_factor, cfg.prior)
    sched, tok = DDPMScheduler.from_config(diffusers_config(schedule)), Tokenizer()

    def step_fn(step: int) -> float:
        loss = _teacher_loss(unet, enc, tok, sched, opt, cfg, step, device)
        optimizer_step(opt, loss, params, clip=1.0)
        ema_update(ema.parameters(), params, cfg.ema)
        return loss.detach()

    run_probe = None if probe is None else (lambda step: probe(ema["unet"], ema["enc"], schedule))
    res = fit(out, {"unet": unet, "enc": enc, "ema": ema, "opt": opt}, step_fn, cfg.steps, cfg.ckpt_every,
              "teacher", progress, probe=run_probe, probe_at=tuple(probe_at))
    metrics = {"train_loss_last100": sum(res["losses"][-100:]) / max(1, len(res["losses"][-100:])),
               "loss_curve": loss_curve(res["losses"]), "probes": {str(k): v for k, v in res["probes"].items()}}
    if probe is not None:
        metrics["final"] = probe(ema["unet"], ema["enc"], schedule)
    _export(out, ema["unet"], ema["enc"], cfg, res["wall"], schedule, metrics)
    return {"wall_time_s": res["wall"], "final_loss": metrics["train_loss_last100"], "final": metrics.get("final")}


def teacher_lr(cfg: TeacherConfig, step: int) -> float:
    """Linear warm-up, constant, then (with decay_steps) a cosine decay to 0 over the last decay_steps steps."""
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
    into = step - (cfg.steps - cfg.decay_steps)
    if cfg.decay_steps and into >= 0:
        lr *= 0.5 * (1 + math.cos(math.pi * (into + 1) / cfg.decay_steps))
    return lr


def _teacher_loss(unet, enc, tok, sched, opt, cfg, step, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # batch is a pure function of (seed, step)
    sc = sample_scenes(cfg.batch, seed=int(torch.randint(2**31, (1,), generator=g)))
    drop = torch.rand(cfg.batch, generator=g) < cfg.p_uncond
    prompts = ["" if d else p for d, p in zip(drop.tolist(), sc.prompts)]
    t = torch.randint(0, 1000, (cfg.batch,), generator=g)
    noise = torch.randn(sc.images.shape, generator=g)
    if cfg.offset_noise and step >= cfg.offset_noise_start:
        noise = noise + cfg.offset_noise * torch.randn(cfg.batch, 3, 1, 1, generator=g)
    for group in opt.param_groups:
        group["lr"] = teacher_lr(cfg, step)
    return diffusion_loss(unet, enc, tok, sc.images.to(device), prompts, t.to(device), noise.to(device), sched)


def _export(out, unet, enc, cfg, wall, schedule, metrics) -> None:
    save_unet(unet, os.path.join(out, "unet"))
    copy.deepcopy(enc).to("cpu").save(os.path.join(out, "text_encoder"))
    save_schedule(out, schedule)
    sched_note = {k: v for k, v in schedule.items() if k != "trained_betas"}
    rec = provenance({"kind": "teacher", **asdict(cfg), "unet": unet_config(cfg.width, cfg.text_dim),
                      "noise_schedule": sched_note}, cfg.seed, cfg.steps, wall, metrics)
    atomic_write_json(os.path.join(out, "provenance.json"), rec)
