"""Train the tiny world's base model ("teacher"): an SD-style eps-prediction UNet with a jointly trained text encoder."""
from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from tqdm.auto import tqdm

from ..provenance import atomic_torch_save, atomic_write_json, provenance
from .text import TextEncoder, Tokenizer
from .world import RES, sample_scenes

# The SD / SDXL training noise schedule: every diffusers scheduler built from this config applies unchanged.
NOISE_SCHEDULE = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                      prediction_type="epsilon", clip_sample=False)


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

    def __post_init__(self):
        if self.steps < 1 or self.batch < 1:
            raise ValueError(f"steps and batch must be >= 1, got steps={self.steps}, batch={self.batch}")
        if not 0 <= self.p_uncond < 1:
            raise ValueError(f"p_uncond must be in [0, 1), got {self.p_uncond}")


def diffusion_loss(unet, text_encoder, tok, x0, prompts, t, noise, sched) -> torch.Tensor:
    """Eq. (1) of DDPM: ||eps - eps_theta(x_t, t, c)||^2."""
    xt = sched.add_noise(x0, noise, t)  # (B, 3, H, W)
    emb = text_encoder(tok(prompts))  # (B, L, D)
    return F.mse_loss(unet(xt, t, encoder_hidden_states=emb).sample, noise)


def train_teacher(out: str, cfg: TeacherConfig, device: str = "cpu", progress: bool = True) -> dict:
    """Train (or resume) the tiny teacher and its text encoder; writes `out/unet`, `out/text_encoder`, provenance."""
    torch.manual_seed(cfg.seed)
    unet = UNet2DConditionModel(**unet_config(cfg.width, cfg.text_dim)).to(device)
    enc = TextEncoder(dim=cfg.text_dim).to(device)
    ema = copy.deepcopy(torch.nn.ModuleDict({"unet": unet, "enc": enc})).requires_grad_(False)
    params = list(unet.parameters()) + list(enc.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched, tok = DDPMScheduler(**NOISE_SCHEDULE), Tokenizer()
    state_path, start, wall, losses = os.path.join(out, "train_state.pt"), 0, 0.0, []
    if os.path.exists(state_path):  # resume exactly where the last checkpoint left off
        st = torch.load(state_path, map_location=device, weights_only=False)
        unet.load_state_dict(st["unet"]), enc.load_state_dict(st["enc"]), ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        start, wall, losses = st["step"], st["wall"], st["losses"]
    t0 = time.time() - wall
    for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc="teacher"):
        loss = _teacher_step(unet, enc, tok, sched, opt, cfg, step, device)
        losses.append(loss)
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), params):
                pe.lerp_(p, 1 - cfg.ema)
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            atomic_torch_save(dict(unet=unet.state_dict(), enc=enc.state_dict(), ema=ema.state_dict(),
                                   opt=opt.state_dict(), step=step + 1, wall=time.time() - t0, losses=losses),
                              state_path)
    wall = time.time() - t0
    _export(out, ema["unet"], ema["enc"], cfg, wall, losses)
    return {"wall_time_s": wall, "final_loss": sum(losses[-100:]) / len(losses[-100:])}


def _teacher_step(unet, enc, tok, sched, opt, cfg, step, device) -> float:
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # batch is a pure function of (seed, step)
    sc = sample_scenes(cfg.batch, seed=int(torch.randint(2**31, (1,), generator=g)))
    drop = torch.rand(cfg.batch, generator=g) < cfg.p_uncond
    prompts = ["" if d else p for d, p in zip(drop.tolist(), sc.prompts)]
    t = torch.randint(0, 1000, (cfg.batch,), generator=g)
    noise = torch.randn(sc.images.shape, generator=g)
    if cfg.offset_noise and step >= cfg.offset_noise_start:
        noise = noise + cfg.offset_noise * torch.randn(cfg.batch, 3, 1, 1, generator=g)
    for group in opt.param_groups:
        group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
    loss = diffusion_loss(unet, enc, tok, sc.images.to(device), prompts, t.to(device), noise.to(device), sched)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(unet.parameters()) + list(enc.parameters()), 1.0)
    opt.step()
    return float(loss.detach())


def _export(out, unet, enc, cfg, wall, losses) -> None:
    unet = copy.deepcopy(unet).to("cpu").half()
    unet.save_pretrained(os.path.join(out, "unet"), safe_serialization=True)
    enc.to("cpu").save(os.path.join(out, "text_encoder"))
    atomic_write_json(os.path.join(out, "scheduler.json"), NOISE_SCHEDULE)
    rec = provenance({"kind": "teacher", **asdict(cfg), "unet": unet_config(cfg.width, cfg.text_dim),
                      "noise_schedule": NOISE_SCHEDULE}, cfg.seed, cfg.steps, wall,
                     {"train_loss_last100": sum(losses[-100:]) / max(1, len(losses[-100:]))})
    atomic_write_json(os.path.join(out, "provenance.json"), rec)
