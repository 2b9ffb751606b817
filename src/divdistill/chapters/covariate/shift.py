"""DDIL Sec. 5.2 / App. E (Table 9, Fig. 5): teacher/student mixed rollouts on a stateless DDIM solver, and the shift.

A 4-step student's grid (999/749/499/249) splits the trajectory into four transitions; in a mixed rollout each
transition is run either by the student (one step) or by the teacher (its own `k` sub-steps, 8 for a 32-step teacher).
A rollout is therefore named by its *pattern*, e.g. "TSSS" = teacher for the first transition, student for the rest.
All steps integrate with one stateless DDIM solver, so any pattern is a valid trajectory.
"""
from __future__ import annotations

import numpy as np
import torch

from .plan import Plan, Step, mixed, switch_at
from .registry import ModelSpec, scheduler_factory
from .sampling import run_plan

SOLVER = "ddim-solver"
BETAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # DDIL Table 9's teacher priors (plus β = 1, the pure teacher)
SWITCH_TS = (749, 500, 250)  # DDIL Table 9's switch timesteps
DETERMINISTIC = ("DDIMScheduler", "EulerDiscreteScheduler")  # x_{t'} from (x_t, x̂0) alone
RENOISING = ("LCMScheduler",)  # x_{t'} = √ᾱ' x̂0 + √(1−ᾱ') z with fresh z


def add_ddim_solver(world) -> str:
    """Register the stateless DDIM solver: a scheduler-only entry that integrates any decreasing grid.

    It is diffusers' Euler scheduler on the base's noise schedule, which for an ε-predicting model is exactly DDIM
    with η = 0 and accepts custom timesteps (diffusers' DDIM only accepts uniform grids). Steps name it as their
    `scheduler`; its UNet is the base's and is never asked to predict. Returns its registry name.
    """
    from diffusers import EulerDiscreteScheduler

    if SOLVER not in world.specs:
        cfg = dict(world.spec(world.base_name).make_scheduler().config)
        # "leading" only sets init_noise_sigma = √(σ_max² + 1), the VP ↔ σ factor; the grid is always given explicitly
        cfg.update(timestep_spacing="leading", final_sigmas_type="zero")
        world.add(ModelSpec(SOLVER, world.spec(world.base_name).unet,
                            scheduler_factory(EulerDiscreteScheduler, cfg), 32, 0.0, role="solver",
                            notes="stateless DDIM (η = 0) on any grid; integrates mixed rollouts"))
    return SOLVER


def sub_grid(grid, k: int) -> list[list[int]]:
    """Each transition t_i → t_{i+1} (the last to clean data) split into k teacher sub-steps, rounded to integers."""
    if k < 1:
        raise ValueError(f"the teacher needs k >= 1 sub-steps per student step, got {k}")
    g = [int(t) for t in grid] + [-1]
    out = []
    for a, b in zip(g, g[1:]):
        sub = [int(round(v)) for v in np.linspace(a, b, k + 1)[:-1]]
        if len(set(sub)) != k:
            raise ValueError(f"cannot split {a} → {b} into {k} distinct integer timesteps")
        out.append(sub)
    return out


def pattern_plan(world, pattern: str, teacher: str, student: str, k: int = 8, grid=None) -> Plan:
    """The rollout of a pattern ("T"/"S" per student transition) on the DDIM solver.

    Args:
        world: a loaded world (the solver is registered on first use).
        pattern: one letter per transition of the student's grid, "T" = teacher (k sub-steps), "S" = student.
        teacher, student: registry names.
        k: teacher sub-steps per transition (DDIL App. E: 32-step teacher, 4-step student → 8).
        grid: the student's grid; default its own.
    Returns:
        A Plan named after the pattern.
    """
    solver = add_ddim_solver(world)
    grid = list(grid if grid is not None else world.spec(student).default_timesteps())
    if len(pattern) != len(grid) or set(pattern) - {"T", "S"}:
        raise ValueError(f"pattern {pattern!r} must have one letter T/S per transition of the grid {grid}")
    gt, gs = world.spec(teacher).guidance, world.spec(student).guidance
    steps = []
    for p, t, sub in zip(pattern, grid, sub_grid(grid, k)):
        steps += [Step(teacher, s, gt, solver) for s in sub] if p == "T" else [Step(student, t, gs, solver)]
    return Plan(tuple(steps), pattern)


def pattern_of(plan4: Plan, teacher: str) -> str:
    """The T/S pattern of a plan with one step per student transition."""
    return "".join("T" if m == teacher else "S" for m in plan4.models)


def mixed_pattern(world, beta: float, seed: int, teacher: str, student: str, grid=None) -> str:
    """DDIL Sec. 4.1 / Table 9: each transition is the teacher's with probability β (plan.mixed draws it).

    plan.mixed draws one uniform u per transition from `seed` and picks the teacher when u < β, so for a fixed seed
    the patterns are nested in β: raising β only turns student transitions into teacher ones.
    """
    grid = list(grid if grid is not None else world.spec(student).default_timesteps())
    return pattern_of(mixed(world, beta, seed, teacher, student, grid), teacher)


def switch_pattern(world, t: int, first: str, second: str, teacher: str, grid) -> str:
    """Table 9 switches: `first` integrates from pure noise down to x_t, `second` from there to the image.

    t is rounded onto the grid: the first model runs the transitions that start above t (749 → one, 500 → two,
    250 → three of 999/749/499/249).
    """
    above = [s for s in grid if s > t]
    if not above or len(above) == len(grid):
        raise ValueError(f"switch timestep {t} must lie inside the grid {list(grid)}")
    return pattern_of(switch_at(world, min(above), first, second, grid), teacher)


def nfe(pattern: str, k: int, teacher_passes: int = 2, student_passes: int = 1) -> int:
    """UNet passes per image of a pattern (CFG teacher: 2 per sub-step)."""
    return sum(k * teacher_passes if p == "T" else student_passes for p in pattern)


def run_patterns(world, patterns: list[str], prompts, seeds, teacher: str, student: str, k: int = 8,
                 batch_size: int = 64, capture: bool = False):
    """Image i from its own pattern; images sharing a pattern run as one batch (image i depends only on its
    pattern, prompt and seed). Returns (images (N, C, H, W), {pattern: Result of its last batch if capture})."""
    prompts, seeds = list(prompts), list(seeds)
    if not len(patterns) == len(prompts) == len(seeds):
        raise ValueError(f"need one pattern, prompt and seed per image, got {len(patterns)}, {len(prompts)}, "
                         f"{len(seeds)}")
    out, results = [None] * len(prompts), {}
    for p in dict.fromkeys(patterns):
        idx = [i for i, q in enumerate(patterns) if q == p]
        plan = pattern_plan(world, p, teacher, student, k)
        for j in range(0, len(idx), batch_size):
            part = idx[j:j + batch_size]
            res = run_plan(world, plan, [prompts[i] for i in part], [seeds[i] for i in part], capture=capture)
            for i, img in zip(part, res.images):
                out[i] = img
            results[p] = res
    return torch.stack(out), results


def alphas_cumprod(world, name: str | None = None) -> torch.Tensor:
    """ᾱ_t (t = 0..999) of a model's scheduler (default the base's), float64."""
    return world.spec(name or world.base_name).make_scheduler().alphas_cumprod.double()


def states(x_T: torch.Tensor, dt: torch.Tensor, timesteps, ac: torch.Tensor, scheduler: str,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """The x_t each step of a run met, from its noise x_T (B, C, H, W) and DT dt (S, B, C, H, W); pixel-space worlds.

    Deterministic samplers (DDIM/Euler): x_{t'} = √ᾱ' x̂0 + √(1−ᾱ') ε̂ with ε̂ = (x_t − √ᾱ x̂0)/√(1−ᾱ), exact.
    Re-noising samplers (LCM, also DMD2's): x_{t'} = √ᾱ' x̂0 + √(1−ᾱ') z with fresh z: the run's own distribution.
    Returns (S + 1, B, C, H, W): the state entering each step, then the final sample.
    """
    if scheduler not in DETERMINISTIC + RENOISING:
        raise ValueError(f"no state reconstruction for {scheduler!r}; supported: {DETERMINISTIC + RENOISING}")
    ts = [int(t) for t in timesteps] + [-1]
    a = [float(ac[t]) if t >= 0 else 1.0 for t in ts]
    xs = [x_T.double().cpu()]
    for i, x0 in enumerate(dt.double()):
        x, an = xs[-1], a[i + 1]
        if scheduler in DETERMINISTIC:
            eps = (x - a[i] ** 0.5 * x0) / (1 - a[i]) ** 0.5
        else:
            eps = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        xs.append(an ** 0.5 * x0 + (1 - an) ** 0.5 * eps)
    return torch.stack(xs).float()


def forward_diffuse(x0: torch.Tensor, t: int, ac: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """q(x_t | x_0): the inputs a student is trained on at timestep t."""
    a = float(ac[int(t)])
    return (a ** 0.5 * x0.double() + (1 - a) ** 0.5 * torch.randn(x0.shape, generator=generator,
                                                                   dtype=torch.float64)).float()


def median_bandwidth(ref: torch.Tensor) -> float:
    """The kernel's bandwidth: the median squared distance between reference points (median heuristic)."""
    d = torch.cdist(ref.double(), ref.double()) ** 2
    iu = torch.triu_indices(len(ref), len(ref), 1)
    return float(d[iu[0], iu[1]].median())


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Unbiased MMD² (Gretton et al. 2012) with the Gaussian kernel k(a, b) = exp(−‖a − b‖² / bandwidth).

    ≈ 0 (and possibly slightly negative) when x and y come from one distribution; > 0 when they differ.
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"MMD needs >= 2 samples per side, got {len(x)} and {len(y)}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    x, y = x.double(), y.double()
    kxx, kyy = torch.exp(-torch.cdist(x, x) ** 2 / bandwidth), torch.exp(-torch.cdist(y, y) ** 2 / bandwidth)
    kxy = torch.exp(-torch.cdist(x, y) ** 2 / bandwidth)
    n, m = len(x), len(y)
    return float((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
                 - 2 * kxy.mean())


def pixel_features(x: torch.Tensor) -> torch.Tensor:
    """A model-free view of x_t: 8×8 average-pooled pixels, (B, C, H, W) → (B, C·64)."""
    return torch.nn.functional.adaptive_avg_pool2d(x.float(), 8).flatten(1)


def frechet(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID from features (N, D): ‖μ_r − μ_f‖² + tr(Σ_r + Σ_f − 2 (Σ_r Σ_f)^½), as torchmetrics computes it."""
    r, f = real.double(), fake.double()
    mu_r, mu_f = r.mean(0), f.mean(0)
    cr, cf = torch.cov(r.T), torch.cov(f.T)
    eig = torch.linalg.eigvals(cr @ cf).sqrt().real.sum()
    return float(((mu_r - mu_f) ** 2).sum() + cr.trace() + cf.trace() - 2 * eig)
