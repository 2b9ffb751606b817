"""The plan families of the hybrid chapter: Tables 2–4, the Figure 7 sweeps and the NFE frontier (paper Sec. 5)."""
from __future__ import annotations

from dataclasses import dataclass

from ... import plan as P
from ...registry import ModelSpec, scheduler_factory

DPM_NAME = "base_dpmpp"  # a registry entry that only lends the base a DPM-Solver++ (2M) scheduler
GUIDANCES = (0.0, 2.0, 4.0, 7.0)  # Fig. 7a: base CFG of the hybrid's first step (0 = conditional only)
FIRST_SEGMENT_STEPS = (1, 2, 4)  # Fig. 7c: base ODE steps spent on the student's first interval
BASE_STEPS = (2, 4, 8, 16)  # frontier: the base alone on its own sampler (50 is the Table 2 row)
DPM_STEPS = (4, 8)  # frontier: the base alone on DPM-Solver++


@dataclass(frozen=True)
class Row:
    """One evaluated plan: its key, label, family (table, fig7a/b/c, frontier, other) and the plan itself."""

    key: str
    label: str
    family: str
    plan: P.Plan


def students_of(world) -> list[str]:
    """The world's distilled students (World.students: entries that only lend a scheduler are not students)."""
    return world.students


def add_dpm_solver(world) -> str:
    """Register DPM-Solver++ (2M, trailing) on the base's noise schedule, once; returns its registry name."""
    if DPM_NAME not in world.specs:
        from diffusers import DPMSolverMultistepScheduler

        b = world.spec(world.base_name)
        cfg = dict(b.make_scheduler().config)
        world.add(ModelSpec(DPM_NAME, b.unet, scheduler_factory(DPMSolverMultistepScheduler, cfg,
                                                                algorithm_type="dpmsolver++", solver_order=2,
                                                                timestep_spacing="trailing"),
                            b.n_steps, b.guidance, adapter=b.adapter, role="sampler",
                            notes="the base's UNet on DPM-Solver++ (2M); no model of its own"))
    return DPM_NAME


def base_on(world, sampler: str, n: int, guidance: float | None = None) -> P.Plan:
    """The base alone for n steps on a registry entry's sampler and grid (its own, or DPM-Solver++)."""
    g = world.spec(world.base_name).guidance if guidance is None else guidance
    ts = world.spec(sampler).default_timesteps(n)
    return P.Plan(tuple(P.Step(world.base_name, t, g, None if sampler == world.base_name else sampler) for t in ts),
                  f"base({sampler}, {n} steps, g={g:g})")


def first_segment(world, student: str, m: int, base_guidance: float = 0.0) -> P.Plan:
    """Fig. 7c: the base spends m DPM-Solver++ steps on the student's first interval [t0, t1), the student the rest."""
    stu = P.distilled(world, student)
    if len(stu) < 2 or m < 1:
        raise ValueError(f"first_segment needs a student with >= 2 steps and m >= 1 (got {len(stu)} steps, m={m})")
    t0, t1 = stu.timesteps[0], stu.timesteps[1]
    ts = [round(t0 - i * (t0 - t1) / m) for i in range(m)]
    sched = add_dpm_solver(world)
    head = tuple(P.Step(world.base_name, int(t), base_guidance, sched) for t in ts)
    return P.Plan(head + stu.steps[1:], f"first_segment({student}, m={m}, g={base_guidance:g})")


def rows(world, student: str, others=(), guidances=GUIDANCES, first_steps=FIRST_SEGMENT_STEPS,
         base_steps=BASE_STEPS, dpm_steps=DPM_STEPS) -> list[Row]:
    """Every plan the chapter evaluates, in table order; keys are stable names the JSON and notebook share."""
    n = len(P.distilled(world, student))
    dpm = add_dpm_solver(world)
    out = [Row("base50", f"base ({P.base(world).steps[0].guidance:g} CFG, {len(P.base(world))} steps)", "table",
               P.base(world)),
           Row("student", student, "table", P.distilled(world, student)),
           Row("hybrid", f"hybrid({student}, k=1, base CFG 0)", "table", P.hybrid(world, student, 1, 0.0)),
           Row("control", f"base on {student}'s sampler and grid", "table", P.on_sampler(world, student)),
           Row("skip_first", f"skip first step ({student})", "table", P.skip_first(world, student, 1))]
    out += [Row(f"hybrid_g{g:g}", f"hybrid, base CFG {g:g}", "fig7a", P.hybrid(world, student, 1, g))
            for g in guidances if g != 0.0]
    out += [Row(f"hybrid_k{k}", f"hybrid, k={k}", "fig7b", P.hybrid(world, student, k, 0.0)) for k in range(2, n + 1)]
    out += [Row(f"first_m{m}", f"base {m} DPM++ step(s) for the first interval", "fig7c",
                first_segment(world, student, m)) for m in first_steps]
    out += [Row(f"base_own{k}", f"base, own sampler, {k} steps", "frontier", base_on(world, world.base_name, k))
            for k in base_steps]
    out += [Row(f"base_dpm{k}", f"base, DPM-Solver++, {k} steps", "frontier", base_on(world, dpm, k))
            for k in dpm_steps]
    for s in others:
        out += [Row(f"{s}:student", s, "other", P.distilled(world, s)),
                Row(f"{s}:hybrid", f"hybrid({s}, k=1, base CFG 0)", "other", P.hybrid(world, s, 1, 0.0)),
                Row(f"{s}:control", f"base on {s}'s sampler and grid", "other", P.on_sampler(world, s))]
    return out
