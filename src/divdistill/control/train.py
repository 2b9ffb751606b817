"""Train the tiny controls (paper Table 1, Fig. 2): a style LoRA, a DreamBooth concept and Concept Sliders."""
from __future__ import annotations

import copy
import os
import shutil
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..training import fit, last_mean, loss_curve, step_generator
from ..plan import base, distilled
from ..io import atomic_write_json, provenance
from ..sampling import forward_diffuse, generate
from .adapters import TARGET_MODULES, add_lora, save_adapter

CONTROLS = ("style", "concept", "slider", "slider_bg")
INSTANCE_PROMPT, CLASS_PROMPT = "a star", "a shape"  # DreamBooth: "star" is the rare token (never seen in pretraining)
SLIDER_PROMPTS = {  # Concept Sliders: (c_target → c_positive, c_negative) edits of a prompt that names no such factor
    "slider": lambda p: (p.replace("a ", "a large ", 1), p.replace("a ", "a small ", 1)),
    "slider_bg": lambda p: (p + " on a light background", p + " on a dark background"),
}


@dataclass
class ControlConfig:
    """One control LoRA's recipe; every field lands in its provenance."""

    control: str
    source: str = "base"  # the registry model the LoRA is trained on (base, or a student for the reverse direction)
    steps: int = 120
    batch: int = 16
    lr: float = 3e-3
    rank: int = 4
    seed: int = 0
    p_uncond: float = 0.1  # prompt dropout, so the LoRA also acts on CFG's unconditional branch
    n_instance: int = 6  # DreamBooth: a handful of examples of the new concept
    n_prior: int = 24  # prior preservation: class images the source model generates itself
    prior_weight: float = 1.0
    eta: float = 1.0  # Concept Sliders' guidance strength η
    n_pool: int = 32  # sliders: the source model's own samples, forward-diffused to x_t
    gen_steps: int = 20  # base steps for generated pools (students sample on their own schedule)

    def __post_init__(self):
        if self.control not in CONTROLS:
            raise ValueError(f"unknown control {self.control!r}; valid: {CONTROLS}")


def _plan(world, source: str, gen_steps: int):
    return base(world, n=gen_steps) if source == world.base_name else distilled(world, source)


def _timesteps(world, source: str, n: int, g) -> torch.Tensor:
    """Training timesteps: uniform for the base; the student's own grid for a student (where it was distilled)."""
    if source == world.base_name:
        return torch.randint(0, 1000, (n,), generator=g)
    grid = torch.tensor(world.spec(source).default_timesteps())
    return grid[torch.randint(len(grid), (n,), generator=g)]


class _Trainer:
    """Shared state: a float copy of the source UNet with a fresh LoRA, the schedule, and text encoding."""

    def __init__(self, world, cfg: ControlConfig):
        from ..tiny.schedule import alphas_cumprod

        self.world, self.cfg = world, cfg
        torch.manual_seed(cfg.seed)
        self.unet = copy.deepcopy(world.spec(cfg.source).unet).float()
        self.params = add_lora(self.unet, cfg.control, cfg.rank)
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=0.0)
        self.ac = alphas_cumprod(world.extras["schedule"], world.device)[:-1]

    def emb(self, prompts):
        return self.world.encode(list(prompts)).cond["encoder_hidden_states"]  # (B, L, D)

    def noised(self, x0, g):
        dev = self.ac.device
        t = _timesteps(self.world, self.cfg.source, len(x0), g).to(dev)
        noise = torch.randn(x0.shape, generator=g).to(dev)
        return forward_diffuse(x0.to(dev), t, self.ac, noise), t, noise  # x_t: (B, C, H, W)

    def eps(self, x, t, prompts, scale: float):
        self.unet.set_adapters([self.cfg.control], [scale])
        return self.unet(x, t, encoder_hidden_states=self.emb(prompts)).sample

    def drop(self, prompts, g):
        keep = torch.rand(len(prompts), generator=g) >= self.cfg.p_uncond
        return [p if k else "" for p, k in zip(prompts, keep.tolist())]

    def update(self, loss) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        return float(loss.detach())


def style_step(tr: _Trainer):
    """Style LoRA: ε-MSE on `outlined` scenes whose prompts do not name the style (the LoRA carries it)."""
    from ..tiny.world import sample_scenes

    def step(i):
        g = step_generator(tr.cfg.seed, i)
        sc = sample_scenes(tr.cfg.batch, seed=int(torch.randint(2**31, (1,), generator=g)), styles=("outlined",),
                           p_name=(0.9, 0.7, 0.4, 0.4, 0.0))
        xt, t, noise = tr.noised(sc.images, g)
        return tr.update(F.mse_loss(tr.eps(xt, t, tr.drop(sc.prompts, g), 1.0), noise))
    return step


def concept_step(tr: _Trainer):
    """DreamBooth (Ruiz et al. 2023, Eq. 2): a handful of star images under the rare token, plus prior preservation
    on class images the source model itself generates from the class prompt."""
    from ..tiny.world import sample_scenes

    cfg = tr.cfg
    inst = sample_scenes(cfg.n_instance, seed=cfg.seed + 7, shapes=("star",)).images  # (n, 3, 32, 32)
    inst = inst.to(tr.world.device)
    prior = generate(tr.world, _plan(tr.world, cfg.source, cfg.gen_steps), [CLASS_PROMPT] * cfg.n_prior,
                     range(10_000, 10_000 + cfg.n_prior)).images.clamp(-1, 1)
    tr.pools = {"instance": inst, "prior": prior}
    half = cfg.batch // 2

    def step(i):
        g = step_generator(cfg.seed, i)
        x0 = torch.cat([inst[torch.randint(len(inst), (half,), generator=g)],
                        prior[torch.randint(len(prior), (half,), generator=g)]])
        xt, t, noise = tr.noised(x0, g)
        pred = tr.eps(xt, t, [INSTANCE_PROMPT] * half + [CLASS_PROMPT] * half, 1.0)
        err = ((pred - noise) ** 2).flatten(1).mean(1)  # (B,)
        return tr.update(err[:half].mean() + cfg.prior_weight * err[half:].mean())
    return step


def slider_step(tr: _Trainer):
    """Concept Sliders (Gandikota et al. 2023, Eq. 3–4): ε_LoRA(x_t, c_t) → ε(x_t, c_t) ± η [ε(x_t, c+) − ε(x_t, c−)]
    at LoRA scale ±1, from prompt guidance alone: x_t are the source model's own samples, forward-diffused."""
    from ..tiny.world import sample_scenes

    cfg = tr.cfg
    p_name = (0.9, 0.7, 0.0, 0.4, 1.0) if cfg.control == "slider" else (0.9, 0.7, 0.4, 0.0, 1.0)
    prompts = sample_scenes(cfg.n_pool, seed=cfg.seed + 11, p_name=p_name).prompts
    pool = generate(tr.world, _plan(tr.world, cfg.source, cfg.gen_steps), prompts,
                    range(20_000, 20_000 + cfg.n_pool)).images.clamp(-1, 1)
    tr.pools = {"pool": pool}
    edit = SLIDER_PROMPTS[cfg.control]

    def step(i):
        g = step_generator(cfg.seed, i)
        idx = torch.randint(len(pool), (cfg.batch,), generator=g)
        ct = [p if keep else "a shape" for p, keep in
              zip([prompts[j] for j in idx], (torch.rand(cfg.batch, generator=g) >= cfg.p_uncond).tolist())]
        pos, neg = zip(*(edit(p) for p in ct))
        xt, t, _ = tr.noised(pool[idx], g)
        with torch.no_grad():
            e_t, e_p, e_n = (tr.eps(xt, t, c, 0.0) for c in (ct, pos, neg))
        sign = 1.0 if i % 2 == 0 else -1.0
        target = e_t + sign * cfg.eta * (e_p - e_n)
        return tr.update(F.mse_loss(tr.eps(xt, t, ct, sign), target))
    return step


STEPS = {"style": style_step, "concept": concept_step, "slider": slider_step, "slider_bg": slider_step}


def train_control(world, cfg: ControlConfig, out: str, progress: bool = True) -> dict:
    """Train (resumably, through `distill.loop.fit`) one control LoRA on `cfg.source`; write it and its provenance.

    Returns:
        The provenance record (config, seed, steps, wall time, git commit, world variant, metrics).
    """
    import time

    t0 = time.time()
    tr = _Trainer(world, cfg)
    step = STEPS[cfg.control](tr)
    setup = time.time() - t0
    res = fit(out, {"unet": tr.unet, "opt": tr.opt}, step, cfg.steps, ckpt_every=20, desc=f"{cfg.control}@{cfg.source}",
              progress=progress)
    save_adapter(tr.unet, cfg.control, out)
    meta = {"kind": "control-lora", **asdict(cfg), "target_modules": list(TARGET_MODULES),
            "world_variant": world.extras.get("variant"), "world_root": world.extras.get("root"),
            "trained_on": cfg.source, "format": "diffusers/peft LoRA (unet.<module>.lora_A/B.weight), alpha = rank",
            "instance_prompt": INSTANCE_PROMPT if cfg.control == "concept" else None,
            "class_prompt": CLASS_PROMPT if cfg.control == "concept" else None}
    metrics = {"loss_last20": last_mean(res["losses"], n=20), "loss_curve": loss_curve(res["losses"], points=10),
               "setup_wall_s": round(setup, 1)}
    rec = provenance(meta, cfg.seed, cfg.steps, res["wall"] + setup, metrics)
    atomic_write_json(os.path.join(out, "provenance.json"), rec)
    state = os.path.join(out, "train_state.pt")
    if os.path.exists(state):
        os.remove(state)  # the LoRA + provenance are the product; the resume state is not shipped
    return rec


def remove(out: str) -> None:
    """Delete a trained control (to re-train it)."""
    shutil.rmtree(out, ignore_errors=True)
