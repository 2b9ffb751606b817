"""Analogue diagnostics (issue 8): does the tiny world fix its layout at the first step, as SDXL does (paper Fig. 3-5)?

- layout commit: correlation between the layout read from x̂0 at step i and the final layout, against t;
- SDEdit retention: start a plan from a data image forward-diffused to t; how much of its layout survives;
- layout-scale SNR: a feature covering a fixed fraction of the image averages over that many values, so its SNR is
  SNR(t) × values × fraction; SDXL's (65,536 latent values) beside the tiny world's (3,072 pixels).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from ... import commandline as C
from ...plan import Plan, Step
from ...registry import World
from ... import sampling
from ...sampling import run_plan

LAYOUT_FEATURES = ("x", "y", "size", "background")


def evaluator_layout(evaluator):
    """read(images) → (B, 4) layout: the evaluator's object x, y, size (pixels) and the border's mean tone."""
    dev = next(evaluator.parameters()).device

    def read(images: torch.Tensor) -> torch.Tensor:
        images = images.float().to(dev)  # (B, C, H, W) on the evaluator's device
        with torch.no_grad():
            p = evaluator.predict(images.clamp(-1, 1))
        ring = torch.ones(images.shape[-2:], dtype=torch.bool, device=dev)
        ring[2:-2, 2:-2] = False
        bg = images[..., ring].mean(dim=(1, 2))  # (B,) mean over channels and border pixels
        return torch.stack([p["x"].float(), p["y"].float(), p["size"].float(), bg], -1).cpu()  # (B, 4)
    return read


def layout_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over layout features of the Pearson correlation across images of a (B, F) and b (B, F)."""
    a, b = a.double(), b.double()
    a, b = a - a.mean(0), b - b.mean(0)
    den = (a.norm(dim=0) * b.norm(dim=0)).clamp(min=1e-12)
    return float(((a * b).sum(0) / den).mean())


def commit_curve(world: World, plan: Plan, prompts, seeds, read) -> dict:
    """Layout commit (C2 analogue): corr(layout of x̂0 at step i, final layout) for every step; t and fraction."""
    res = run_plan(world, plan, prompts, seeds, capture=True)
    final = read(res.images.cpu())
    corr = [layout_correlation(read(x0), final) for x0 in res.dt]  # res.dt: (steps, B, C, H, W)
    return {"timesteps": list(res.timesteps), "corr": corr, "plan": plan.name, "n": len(prompts)}


def forward_diffuse(images: torch.Tensor, t: int, alphas_cumprod: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """q(x_t | x_0) = √ᾱ_t x_0 + √(1−ᾱ_t) ε with seeded ε (SDEdit's start)."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return sampling.forward_diffuse(images.float(), int(t), alphas_cumprod.float(), noise)


def sdedit_retention(world: World, plan: Plan, images: torch.Tensor, prompts, t: int, read, seed: int = 0) -> float:
    """SDEdit retention: run the plan's steps at timesteps ≤ t from the data images forward-diffused to t; the
    correlation between the given images' layout and the outputs' (1 = the layout survives entirely)."""
    steps = tuple(s for s in plan.steps if s.timestep <= t)
    if not steps:
        raise ValueError(f"the plan {plan.timesteps} has no step at or below t={t}")
    ac = world.spec(steps[0].scheduler or steps[0].model).make_scheduler().alphas_cumprod
    x_t = forward_diffuse(images, steps[0].timestep, ac, seed)  # (B, C, H, W)
    out = run_plan(world, Plan(steps, f"sdedit({plan.name}, t={t})"), list(prompts), list(range(len(images))),
                   capture=False, x_T=x_t)
    return layout_correlation(read(images.float()), read(out.images.cpu()))


def on_custom_grid(world: World, name: str, make_scheduler, suffix: str = "@lcm") -> str:
    """Register `name`'s UNet under a scheduler that accepts any grid (for SDEdit from any t); returns its name."""
    spec = world.spec(name)
    new = name + suffix
    if new not in world.specs:
        world.add(dataclasses.replace(spec, name=new, make_scheduler=make_scheduler, role="student"))
    return new


def retention_curve(world: World, name: str, images, prompts, read, grid=(999, 874, 749, 624, 499, 374, 249, 124),
                    guidance: float | None = None, seed: int = 0) -> dict:
    """SDEdit retention of model `name` against t: for each t in `grid`, the model runs grid[t:] with its scheduler."""
    spec = world.spec(name)
    g = spec.guidance if guidance is None else guidance
    vals = []
    for i, t in enumerate(grid):
        plan = Plan(tuple(Step(name, int(s), g) for s in grid[i:]), name)
        vals.append(sdedit_retention(world, plan, images, prompts, t, read, seed))
    return {"timesteps": list(grid), "retention": vals, "model": name, "n": len(prompts)}


def layout_snr(alphas_cumprod: torch.Tensor, values: int, fraction: float = 1 / 16) -> np.ndarray:
    """SNR of a layout feature covering `fraction` of an image of `values` values: SNR(t) · values · fraction."""
    a = alphas_cumprod.double()[:1000]
    return (a / (1 - a) * values * fraction).numpy()


def layout_snr_curves(snr_factor: float, fraction: float = 1 / 16) -> dict:
    """Layout-scale SNR against t: SDXL (SD schedule, 65,536 values), tiny on SD's schedule and tiny shifted by s."""
    from ...tiny.schedule import SDXL_LATENT_VALUES, TINY_VALUES, sd_alphas_cumprod, shifted

    return {"SDXL (latent 128×128×4)": layout_snr(sd_alphas_cumprod(), SDXL_LATENT_VALUES, fraction),
            "tiny, SD schedule": layout_snr(sd_alphas_cumprod(), TINY_VALUES, fraction),
            f"tiny, SNR × {snr_factor:.1f}": layout_snr(shifted(snr_factor), TINY_VALUES, fraction)}


__all__ = ["LAYOUT_FEATURES", "commit_curve", "evaluator_layout", "forward_diffuse", "layout_correlation",
           "layout_snr", "layout_snr_curves", "on_custom_grid", "retention_curve", "sdedit_retention"]


def diagnose(world: World, evaluator, names=None, n: int = 64, seed: int = 0,
             grid=(999, 874, 749, 624, 499, 374, 249, 124)) -> dict:
    """Layout commit (each model's own plan) and SDEdit retention (each model on an LCM re-noising sampler over
    `grid`) for the base and the named students, on n scenes; the layout-scale SNR of the world's schedule."""
    from diffusers import LCMScheduler

    from ...plan import base, distilled
    from ...registry import scheduler_factory
    from ...tiny.schedule import diffusers_config, snr_factor_of
    from ...tiny.world import sample_scenes

    read, sc = evaluator_layout(evaluator), sample_scenes(n, seed=70_000 + seed)
    names = [world.base_name] + list(world.students if names is None else names)
    lcm = scheduler_factory(LCMScheduler, diffusers_config(world.extras["schedule"]))
    out = {"variant": world.extras.get("variant"), "snr_factor": snr_factor_of(world.extras["schedule"]), "n": n,
           "commit": {}, "retention": {}}
    for name in names:
        plan = base(world) if name == world.base_name else distilled(world, name)
        out["commit"][name] = commit_curve(world, plan, sc.prompts, [seed * 10_000 + i for i in range(n)], read)
        custom = on_custom_grid(world, name, lcm)
        g = world.spec(name).guidance
        out["retention"][name] = retention_curve(world, custom, sc.images, sc.prompts, read, grid, g, seed)
    return out


PROG = "python -m divdistill.chapters.tiny_world"


ANALOGUE_STUDENTS = ("dmd2", "turbo", "lcm", "pd")  # the analogue's default students, where the world has them
OUTPUTS = {"analogue": "analogue.json", "grain": "teacher_grain.json", "size": "teacher_size.json",
           "leak": "teacher_leak.json"}


def analogue_students(root: str) -> list[str]:
    """The analogue's default students: those of ANALOGUE_STUDENTS the world folder has (an ablation keeps fewer)."""
    return [s for s in ANALOGUE_STUDENTS if os.path.isdir(os.path.join(root, "students", s))]


def main(argv=None) -> int:
    """python -m divdistill.chapters.tiny_world --variant V [--what analogue|grain|size|leak] [--n 64] [--students a,b]:
    write <variant>/analogue.json (layout commit, SDEdit retention), teacher_grain.json, teacher_size.json or
    teacher_leak.json."""
    return C.main_guard(PROG, _main, argv)


def _main(argv) -> int:
    import time

    from ...io import atomic_write_json, provenance
    from ...tiny.evaluator import load_evaluator
    from ...tiny.loader import load_tiny_world, variant_dir

    p = C.add_common(C.parser(PROG, description=main.__doc__),
                     out="default: data/tiny/<variant>/analogue.json, teacher_grain.json, teacher_size.json or "
                         "teacher_leak.json")
    p.add_argument("--what", choices=tuple(OUTPUTS), default="analogue")
    p.add_argument("--n", type=int, default=64,
                   help="samples per case (size: per prompt and source; leak: in all, 1,000 as the acceptance)")
    p.add_argument("--n-fid", type=int, default=1000, help="grain: samples per sampler for FID_tiny (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--students", default=None, help="analogue: the students diagnosed, comma-separated (default: "
                   f"those of {','.join(ANALOGUE_STUDENTS)} the world has; '' the teacher alone; grain: all)")
    a = C.setup(p.parse_args(argv))
    t0 = time.time()
    names = (analogue_students(variant_dir(a.variant)) if a.students is None
             else [s for s in a.students.split(",") if s])  # "" diagnoses the teacher alone
    students = {"analogue": names, "grain": None, "size": [], "leak": []}[a.what]  # None: every student
    world = load_tiny_world(variant=a.variant, device=a.device, students=students)
    ev = load_evaluator(world.extras["evaluator_root"]).to(a.device)
    if a.what == "grain":
        from .grain import diagnose_grain

        res = diagnose_grain(world, ev, a.n, a.n_fid, a.seed)
        cfg = {"kind": "teacher_grain", "n": a.n, "n_fid": a.n_fid}
    elif a.what == "size":
        from .size import diagnose_size

        res, cfg = diagnose_size(world, ev, a.n, a.seed), {"kind": "teacher_size", "n": a.n}
    elif a.what == "leak":
        from .leak import diagnose_leak

        res = diagnose_leak(world, ev, a.n, 1234 + a.seed)  # 1234: the acceptance's data seed (tiny evaluate)
        cfg = {"kind": "teacher_leak", "n": a.n}
    else:
        res, cfg = diagnose(world, ev, names, a.n, a.seed), {"kind": "analogue", "n": a.n, "students": names}
    res["provenance"] = provenance(cfg, a.seed, 0, time.time() - t0, {})
    out = a.out or os.path.join(variant_dir(a.variant), OUTPUTS[a.what])
    atomic_write_json(out, res)
    print(out, f"{time.time() - t0:.0f} s")
    return 0
