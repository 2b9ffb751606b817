"""The one sampling loop: execute any plan over diffusers schedulers, capturing x̂0 at every step (paper Fig. 3–5)."""
from __future__ import annotations

import logging
import operator
from dataclasses import dataclass

import torch

from .plan import Plan
from .registry import ModelSpec, World, accepts


@dataclass
class Result:
    """Final images plus the denoising trajectory ("DT": x̂0 at every step) and exact NFE accounting."""

    images: torch.Tensor  # (B, C, H, W) decoded, in [-1, 1]
    dt: torch.Tensor | None  # (S, B, C, H, W) decoded x̂0 per step, on the CPU; None when not captured
    timesteps: list[int]
    fraction: list[float]  # fraction of the schedule elapsed after each step
    models: list[str]
    nfe: int  # UNet forward passes per image (CFG counts 2)
    plan: Plan


def x0_from_step(out, sched, model_output, x_vp, t) -> torch.Tensor:
    """One adapter for every scheduler's x̂0: LCM `denoised`, Euler/DDIM `pred_original_sample`, else computed."""
    for field in ("denoised", "pred_original_sample"):
        val = getattr(out, field, None)
        if val is not None:
            return val
    a = sched.alphas_cumprod.to(x_vp.device, torch.float32)[int(t)]
    kind = sched.config.prediction_type
    if kind == "epsilon":
        return ((x_vp.float() - (1 - a).sqrt() * model_output.float()) / a.sqrt()).to(x_vp.dtype)
    if kind == "v_prediction":
        return (a.sqrt() * x_vp.float() - (1 - a).sqrt() * model_output.float()).to(x_vp.dtype)
    if kind == "sample":
        return model_output
    raise ValueError(f"cannot read x̂0 for prediction_type {kind!r}")


def guidance_embedding(w: torch.Tensor, dim: int) -> torch.Tensor:
    """LCM's guidance-scale embedding of w = guidance − 1 (LCM paper, Eq. 7; as diffusers' LCM pipelines)."""
    w = w.float() * 1000.0  # (B,)
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=w.device) * -(torch.log(torch.tensor(10000.0)) /
                                                                                  (half - 1)))
    emb = w[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    return torch.nn.functional.pad(emb, (0, 1)) if dim % 2 == 1 else emb  # (B, dim)


def predict(spec: ModelSpec, x_in, t, cond, guidance: float, adapters=()) -> tuple[torch.Tensor, int]:
    """The model's output at (x_in, t) with guidance (and control adapters at their scales); returns (output, NFE)."""
    unet = spec.unet
    _activate_adapter(spec, adapters)
    tt = torch.full((x_in.shape[0],), int(t), device=x_in.device, dtype=torch.long)
    if spec.guidance_mode == "embed":
        w = torch.full((x_in.shape[0],), guidance - 1.0, device=x_in.device)
        tc = guidance_embedding(w, unet.config.time_cond_proj_dim).to(x_in.dtype)
        return unet(x_in, tt, timestep_cond=tc, **cond.cond).sample, 1
    if guidance > 1.0:
        out = unet(torch.cat([x_in, x_in]), torch.cat([tt, tt]), **cond.doubled()).sample
        uncond, c = out.chunk(2)
        return uncond + guidance * (c - uncond), 2
    return unet(x_in, tt, **cond.cond).sample, 1


def _activate_adapter(spec: ModelSpec, adapters=()) -> None:
    """Single-UNet LoRA mode: the student's adapter on, or every adapter off for the base (never fused); plus the
    step's control adapters, each at its own scale (several at once, unfused)."""
    unet = spec.unet
    loaded = set(getattr(unet, "peft_config", None) or {})
    wanted = ([(spec.adapter, 1.0)] if spec.adapter is not None else []) + list(adapters)
    missing = [n for n, _ in wanted if n not in loaded]
    if missing:
        raise ValueError(f"model {spec.name!r} has no adapter(s) {missing} on its UNet; loaded: {sorted(loaded)}")
    if not loaded:
        return
    if not wanted:
        unet.disable_adapters()
    else:
        unet.enable_adapters()
        unet.set_adapters([n for n, _ in wanted], [float(w) for _, w in wanted])


def set_schedule(sched, timesteps: list[int], device) -> None:
    """Give a scheduler the plan's whole schedule; schedulers without custom timesteps must reproduce it exactly."""
    if accepts(sched.set_timesteps, "timesteps"):
        # LCM warns when a schedule (e.g. DMD2's 999/749/499/249) is off its 50-step distillation grid: the plan
        # chose it explicitly, so that warning is silenced for this call only.
        log = logging.getLogger("diffusers.schedulers.scheduling_lcm")
        level, _ = log.level, log.setLevel(logging.ERROR)
        try:
            sched.set_timesteps(timesteps=list(timesteps), device=device)
        finally:
            log.setLevel(level)
    else:
        sched.set_timesteps(len(timesteps), device=device)
    got = [int(t) for t in sched.timesteps]
    if got != list(timesteps):
        raise ValueError(f"{type(sched).__name__} cannot run the schedule {list(timesteps)} (it gives {got}); "
                         "use a scheduler that accepts custom timesteps (Euler, LCM, DDPM, DPM-Solver) or its grid")


def _vp_scale(sched, i: int) -> float:
    """Factor from the VP latent (DDPM/LCM convention) to this scheduler's at step i (σ-space: √(σ²+1))."""
    if float(sched.init_noise_sigma) == 1.0 or not hasattr(sched, "sigmas"):
        return 1.0
    return float((sched.sigmas[i].float() ** 2 + 1).sqrt())


def forward_diffuse(x0: torch.Tensor, t, alphas_cumprod: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """q(x_t | x_0) = √ᾱ_t x_0 + √(1−ᾱ_t) ε (DDPM Eq. 4), the one forward diffusion; t an int or (B,) timesteps."""
    a = alphas_cumprod[t]
    if a.dim():
        a = a.view(-1, *([1] * (x0.dim() - 1)))  # (B, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


class CaptureDT:
    """DT capture (paper Figs. 3–4) as a run_plan callback: the decoded x̂0 of every step, on the CPU."""

    def __init__(self, world: World):
        self.world, self.frames = world, []

    def __call__(self, i: int, t: int, model: str, x_t: torch.Tensor, x0: torch.Tensor) -> None:
        self.frames.append(self.world.decode(x0).float().cpu())


class CaptureStates:
    """A run_plan callback keeping each step's model input x_t (VP convention, (B, C, H, W)) and x̂0, undecoded."""

    def __init__(self):
        self.x_t, self.x0, self.timesteps, self.models = [], [], [], []

    def __call__(self, i: int, t: int, model: str, x_t: torch.Tensor, x0: torch.Tensor) -> None:
        self.timesteps.append(t)
        self.models.append(model)
        self.x_t.append(x_t.detach().clone())
        self.x0.append(x0.detach().clone())


MAX_SEED = 2**63 - 2  # seeds s and s + 1 (the sampler's η stream) must fit torch's int64 manual_seed


def check_seed(seed) -> int:
    """A seed is an integer in [0, 2**63 - 2]; 1.5, "x" or 2**70 are errors naming what is valid."""
    if isinstance(seed, bool) or isinstance(seed, float) or isinstance(seed, str):
        raise ValueError(f"seed {seed!r} is not an integer; seeds are integers in [0, {MAX_SEED}]")
    try:
        s = operator.index(seed)
    except TypeError:
        raise ValueError(f"seed {seed!r} is not an integer; seeds are integers in [0, {MAX_SEED}]") from None
    if not 0 <= s <= MAX_SEED:
        raise ValueError(f"seed {seed!r} is out of range; seeds are integers in [0, {MAX_SEED}]")
    return s


def _check_inputs(world: World, plan: Plan, prompts, seeds, x_T) -> tuple[list, list]:
    if isinstance(prompts, str) or isinstance(seeds, (int, str)):
        raise ValueError(f"prompts and seeds must be non-empty lists (one per image), got {prompts!r}, {seeds!r}")
    prompts, seeds = list(prompts), list(seeds)
    if len(prompts) != len(seeds):
        raise ValueError(f"need one seed per prompt, got {len(prompts)} prompts and {len(seeds)} seeds")
    for s in seeds:
        check_seed(s)
    if x_T is not None and (x_T.dim() != 4 or len(x_T) != len(prompts)):
        raise ValueError(f"x_T must be (B, C, H, W) with B = {len(prompts)} prompts, got {tuple(x_T.shape)}")
    for name in set(plan.models) | {s.scheduler for s in plan if s.scheduler}:
        world.spec(name)  # unknown names fail before any work
    return prompts, seeds


@torch.no_grad()
def run_plan(world: World, plan: Plan, prompts, seeds, capture: bool = True, eta_generators: bool = True,
             x_T: torch.Tensor | None = None, callback=None) -> Result:
    """Execute a plan: one scheduler per model segment, x̂0 through one adapter, per-image seeded noise.

    Args:
        world: a loaded World (tiny or sdxl).
        plan: the steps to run (see `divdistill.plan`).
        prompts: one prompt per image.
        seeds: one seed per image; image i depends only on (prompts[i], seeds[i]) (and x_T[i] when given).
        capture: keep the decoded x̂0 of every step (the DT trajectory; the built-in CaptureDT callback).
        x_T: the start latent (B, C, H, W), VP convention (default: the world's seeded noise); e.g. SDEdit's
            forward-diffused data when the plan starts below t = 999.
        callback: callback(i, t, model, x_t, x̂0) after each step's prediction, as k-diffusion's
            callback({'i', 't', 'x', 'denoised'}): x_t the model's input (VP), x̂0 its prediction (latent space).
    Returns:
        Result with images, dt, timesteps, fraction, models and nfe.
    """
    prompts, seeds = _check_inputs(world, plan, prompts, seeds, x_T)
    dt = CaptureDT(world) if capture else None
    callbacks = [c for c in (dt, callback) if c is not None]
    cond = world.encode(prompts)  # once per batch, shared by every model
    gens = [torch.Generator("cpu").manual_seed(int(s) + 1) for s in seeds] if eta_generators else None
    x = world.noise(seeds) if x_T is None else x_T.to(world.device, world.dtype)  # (B, C, H, W), VP between segments
    nfe, final = 0, None
    for start, steps in plan.segments():
        spec = world.spec(steps[0].model)
        sched = world.spec(steps[0].scheduler or steps[0].model).make_scheduler()
        set_schedule(sched, plan.timesteps, world.device)
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(start)
        xs = x * sched.init_noise_sigma if start == 0 else x * _vp_scale(sched, start)
        for j, step in enumerate(steps):
            t_sched = sched.timesteps[start + j]  # Euler-type schedulers index by their own (float) timestep
            x_in = sched.scale_model_input(xs, t_sched)
            out_model, calls = predict(spec, x_in, step.timestep, cond, step.guidance, step.adapters)
            nfe += calls
            x_vp = xs / _vp_scale(sched, start + j)
            kw = {"generator": gens} if gens is not None and accepts(sched.step, "generator") else {}
            out = sched.step(out_model, t_sched, xs, return_dict=True, **kw)
            x0 = x0_from_step(out, sched, out_model, x_vp, step.timestep)
            for cb in callbacks:
                cb(start + j, step.timestep, step.model, x_in, x0)
            xs = out.prev_sample
            final = getattr(out, "denoised", None)
        x = xs / _vp_scale(sched, start + len(steps))  # back to the VP convention for the next segment
    images = world.decode(final if final is not None else x).float()
    n = len(plan)
    return Result(images, torch.stack(dt.frames) if capture else None, plan.timesteps,
                  [(i + 1) / n for i in range(n)], plan.models, nfe, plan)


def dt_trajectory(world: World, plan: Plan, prompts, seeds) -> Result:
    """Fig. 3–4 DT-visualization: the decoded x̂0 each step predicts, with timesteps and fraction elapsed."""
    return run_plan(world, plan, prompts, seeds, capture=True)


def generate(world: World, plan: Plan, prompts, seeds, batch_size: int = 64) -> Result:
    """Run a plan over many prompts in batches (no DT capture); image i is independent of batch_size."""
    prompts, seeds = list(prompts), list(seeds)
    outs = [run_plan(world, plan, prompts[i:i + batch_size], seeds[i:i + batch_size], capture=False)
            for i in range(0, len(prompts), batch_size)]
    return Result(torch.cat([o.images for o in outs]), None, plan.timesteps, outs[0].fraction, plan.models,
                  outs[0].nfe, plan)
