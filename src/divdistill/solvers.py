"""Solvers as registry entries, and the plans they integrate: DDIL Sec. 5.2 / App. E (Table 9) mixed rollouts.

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
