"""Step plans: which model denoises which timestep with which guidance (paper Sec. 5 hybrid, DDIL Sec. 4.1)."""
from __future__ import annotations

import math
import numbers
import random
from dataclasses import dataclass
from itertools import groupby


@dataclass(frozen=True)
class Step:
    """One denoising step: `model` (a registry name) predicts at `timestep` with `guidance`.

    `scheduler` names the registry model whose scheduler integrates this step (default: `model`'s own); the
    paper's hybrid runs the base under the student's scheduler. `adapters` are (adapter name, scale) pairs of
    control LoRAs active at this step on `model`'s UNet, unfused (default none: today's behaviour); see `with_adapters`.
    """

    model: str
    timestep: int
    guidance: float
    scheduler: str | None = None
    adapters: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        if isinstance(self.guidance, bool) or not isinstance(self.guidance, numbers.Real) \
                or not math.isfinite(self.guidance):
            raise ValueError(f"guidance of the step at t={self.timestep} must be a finite number (0 = conditional "
                             f"only), got {self.guidance!r}")
        if any(not (isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], str)) for a in self.adapters):
            raise ValueError(f"Step.adapters must be (name, scale) pairs, got {self.adapters!r}")


@dataclass(frozen=True)
class Plan:
    """An explicit list of steps; the sampling loop executes any plan."""

    steps: tuple[Step, ...]
    name: str = "plan"

    def __post_init__(self):
        if not self.steps:
            raise ValueError("a plan needs at least one step")
        ts = [s.timestep for s in self.steps]
        if any(not 0 <= t < 1000 for t in ts):
            raise ValueError(f"timesteps must lie in [0, 999], got {ts}")
        if any(a <= b for a, b in zip(ts, ts[1:])):
            raise ValueError(f"timesteps must strictly decrease, got {ts}")
        bad = [s.guidance for s in self.steps if s.guidance < 0]
        if bad:
            raise ValueError(f"guidance must be >= 0 (0 or 1 = no CFG, > 1 = CFG scale), got {bad}")

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)

    @property
    def timesteps(self) -> list[int]:
        return [s.timestep for s in self.steps]

    @property
    def models(self) -> list[str]:
        return [s.model for s in self.steps]

    def segments(self) -> list[tuple[int, list[Step]]]:
        """Contiguous runs of one model as (start index, steps); each run gets its own scheduler instance."""
        out, i = [], 0
        for _, grp in groupby(self.steps, key=lambda s: (s.model, s.scheduler or s.model)):
            grp = list(grp)
            out.append((i, grp))
            i += len(grp)
        return out

    def __add__(self, other: "Plan") -> "Plan":
        return Plan(self.steps + other.steps, f"{self.name}+{other.name}")


def _spec(world, name):
    return world.spec(name)


def base(world, n: int | None = None, guidance: float | None = None, timesteps=None) -> Plan:
    """The base model alone ("Base" rows of Tables 2–3): n steps of its own scheduler's grid."""
    return distilled(world, world.base_name, n, guidance, timesteps)


def distilled(world, name: str, n: int | None = None, guidance: float | None = None, timesteps=None) -> Plan:
    """A model alone on its own schedule ("Distilled" rows of Tables 2–3)."""
    spec = _spec(world, name)
    ts = list(timesteps) if timesteps is not None else spec.default_timesteps(n)
    g = spec.guidance if guidance is None else guidance
    return Plan(tuple(Step(name, int(t), g) for t in ts), name)


def hybrid(world, name: str, k: int = 1, base_guidance: float = 0.0, timesteps=None,
           student_guidance: float | None = None, base_scheduler: str = "student") -> Plan:
    """Hybrid inference (paper Sec. 5, Fig. 7): the base runs the first k of the student's timesteps, the student the rest.

    Args:
        world: the loaded world (registry of models).
        name: the student's registry name.
        k: how many leading steps the base runs (0 = pure student, len(schedule) = pure base on that schedule).
        base_guidance: CFG scale of the base steps (0 = conditional only, the paper-consistent setting).
        timesteps: the schedule; default the student's own (e.g. DMD2's 999/749/499/249).
        student_guidance: the student's guidance; default its registry value.
        base_scheduler: "student" (the paper's code: the base steps integrate with the student's scheduler,
            e.g. LCM's re-noising) or "base" (the base's own scheduler).
    Returns:
        A Plan of len(schedule) steps.
    """
    student = distilled(world, name, None, student_guidance, timesteps)
    if not 0 <= k <= len(student):
        raise ValueError(f"k={k} base steps does not fit a {len(student)}-step schedule {student.timesteps}; "
                         f"valid k is 0..{len(student)}")
    if base_scheduler not in ("student", "base"):
        raise ValueError(f"base_scheduler must be 'student' or 'base', got {base_scheduler!r}")
    sched = name if base_scheduler == "student" else None
    steps = [Step(world.base_name, s.timestep, base_guidance, sched) if i < k else s for i, s in enumerate(student)]
    return Plan(tuple(steps), f"hybrid({name}, k={k})")


def on_sampler(world, student: str, guidance: float | None = None, timesteps=None) -> Plan:
    """The sampler control (issue 8): the base on the student's own sampler and grid at a given guidance.

    Equal step-for-step to `hybrid(world, student, k=len(grid), base_guidance=g)`: every step is the base's, integrated
    by the student's scheduler on the student's timesteps. Comparing a student with this plan isolates what
    distillation did from what the few-step (re-noising) sampler did.

    Args:
        world: the loaded world.
        student: the student's registry name (its scheduler and default grid are used).
        guidance: the base's CFG scale; default the base's registry guidance.
        timesteps: the grid; default the student's own.
    Returns:
        A Plan of len(grid) base steps named `on_sampler(<student>, g=<g>)`.
    """
    g = _spec(world, world.base_name).guidance if guidance is None else float(guidance)
    grid = distilled(world, student, None, None, timesteps)
    steps = tuple(Step(world.base_name, s.timestep, g, student) for s in grid)
    return Plan(steps, f"on_sampler({student}, g={g:g})")


def with_adapters(plan: Plan, scales: dict, start: int = 0) -> Plan:
    """Concept Sliders' control on any plan (paper Sec. 6, Fig. 2): several adapters, each with its own per-step scale.

    Args:
        plan: any plan (base, distilled, hybrid, ...); its steps keep their model, timestep, guidance and scheduler.
        scales: {adapter name: scale} for a constant scale, or {name: [scale per step]} for a schedule.
        start: the paper's "apply after t" trick: every adapter's scale is 0 for steps 0..start-1.
    Returns:
        A Plan whose steps carry their adapters' scales.
    """
    n = len(plan)
    if not 0 <= start <= n:
        raise ValueError(f"start={start} must be in 0..{n} for a {n}-step plan")
    per_step = {}
    for name, val in dict(scales).items():
        vals = [float(val)] * n if isinstance(val, (int, float)) else [float(v) for v in val]
        if len(vals) != n:
            raise ValueError(f"adapter {name!r} has {len(vals)} per-step scales for a {n}-step plan")
        per_step[name] = [0.0 if i < start else v for i, v in enumerate(vals)]
    steps = tuple(Step(s.model, s.timestep, s.guidance, s.scheduler,
                       tuple((nm, v[i]) for nm, v in per_step.items())) for i, s in enumerate(plan))
    label = ", ".join(f"{k}" for k in per_step)
    return Plan(steps, f"{plan.name}+[{label}]" + (f"@{start}" if start else ""))


def skip_first(world, name: str, k: int = 1, timesteps=None) -> Plan:
    """Table 4: drop the student's first k steps (its first prediction is made from pure noise at a later t)."""
    student = distilled(world, name, None, None, timesteps)
    if not 0 <= k < len(student):
        raise ValueError(f"k={k} must be in 0..{len(student) - 1} for a {len(student)}-step schedule")
    return Plan(student.steps[k:], f"skip_first({name}, k={k})")


def switch_at(world, t: int, first: str, second: str, timesteps) -> Plan:
    """DDIL Table E.1: `first` denoises timesteps >= t, `second` the rest, on one shared schedule."""
    ts = [int(s) for s in timesteps]
    if not min(ts) < t <= max(ts):
        raise ValueError(f"switch timestep {t} must split the schedule {ts}: choose t in ({min(ts)}, {max(ts)}]")
    g1, g2 = _spec(world, first).guidance, _spec(world, second).guidance
    return Plan(tuple(Step(first, s, g1) if s >= t else Step(second, s, g2) for s in ts),
                f"switch_at({t}, {first}→{second})")


def mixed(world, beta: float, seed: int, teacher: str, student: str, timesteps) -> Plan:
    """DDIL Sec. 4.1 mixed rollout: each step is the teacher's with probability beta, else the student's."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta is a probability and must lie in [0, 1], got {beta}")
    rng = random.Random(seed)
    gt, gs = _spec(world, teacher).guidance, _spec(world, student).guidance
    steps = tuple(Step(teacher, int(t), gt) if rng.random() < beta else Step(student, int(t), gs) for t in timesteps)
    return Plan(steps, f"mixed(beta={beta}, seed={seed})")
