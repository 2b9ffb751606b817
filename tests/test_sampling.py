"""The sampling loop: models per step, NFE, DT capture, determinism, hybrid limits, x̂0 adapter."""
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

from divdistill import base, distilled, hybrid, run_plan, x0_from_step
from divdistill.registry import scheduler_factory
from divdistill.sampling import set_schedule
from divdistill.tiny.schedule import SD_SCHEDULE as NOISE_SCHEDULE
from conftest import STUDENT_TS

PROMPTS, SEEDS = ["a red circle", "a square", "a blue shape"], [0, 1, 2]


def test_each_step_calls_the_planned_model(random_world):
    plan = hybrid(random_world, "student", k=1, base_guidance=0)
    random_world.log.clear()
    res = run_plan(random_world, plan, PROMPTS, SEEDS)
    assert [name for name, _ in random_world.log] == ["base", "student", "student", "student"]
    assert res.models == plan.models


def test_nfe_hybrid_equals_distilled_and_cfg_counts_two(random_world):
    d = run_plan(random_world, distilled(random_world, "student"), PROMPTS, SEEDS, capture=False)
    h = run_plan(random_world, hybrid(random_world, "student", k=1, base_guidance=0), PROMPTS, SEEDS, capture=False)
    assert h.nfe == d.nfe == 4
    random_world.log.clear()
    h5 = run_plan(random_world, hybrid(random_world, "student", k=1, base_guidance=5), PROMPTS, SEEDS, capture=False)
    assert h5.nfe == 5 and random_world.log[0] == ("base", 2 * len(PROMPTS))  # CFG: one doubled batch
    assert run_plan(random_world, base(random_world), PROMPTS, SEEDS, capture=False).nfe == 16


def test_hybrid_k0_is_student_and_kn_is_base(random_world):
    student = run_plan(random_world, distilled(random_world, "student"), PROMPTS, SEEDS).images
    assert torch.equal(run_plan(random_world, hybrid(random_world, "student", k=0), PROMPTS, SEEDS).images, student)
    pure_base = run_plan(random_world, distilled(random_world, "base", timesteps=STUDENT_TS, guidance=0),
                         PROMPTS, SEEDS).images
    kn = run_plan(random_world, hybrid(random_world, "student", k=4, base_scheduler="base"), PROMPTS, SEEDS).images
    assert torch.equal(kn, pure_base)
    assert not torch.allclose(student, pure_base)


@pytest.mark.parametrize("plan_fn", [lambda w: distilled(w, "student"), lambda w: base(w),
                                     lambda w: hybrid(w, "student", k=2)])
def test_dt_last_step_equals_final_output(random_world, plan_fn):
    res = run_plan(random_world, plan_fn(random_world), PROMPTS, SEEDS)
    assert res.dt.shape == (len(res.timesteps), 3, 3, 32, 32)
    torch.testing.assert_close(res.dt[-1], res.images, atol=1e-5, rtol=0)
    assert res.fraction[-1] == 1.0 and res.fraction[0] == pytest.approx(1 / len(res.timesteps))


def test_image_i_is_independent_of_batch(random_world):
    plan = hybrid(random_world, "student", k=1)
    batch = run_plan(random_world, plan, PROMPTS, SEEDS).images
    for i in range(3):
        alone = run_plan(random_world, plan, [PROMPTS[i]], [SEEDS[i]]).images[0]
        # same noise and generators; only CPU kernels' batch-dependent summation order differs (~1e-5)
        torch.testing.assert_close(alone, batch[i], atol=1e-4, rtol=1e-4)
    again = run_plan(random_world, plan, PROMPTS, SEEDS).images
    assert torch.equal(again, batch)


def test_x0_adapter_computes_x0_when_scheduler_gives_none():
    torch.manual_seed(0)
    x, eps = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    ddim = DDIMScheduler.from_config(NOISE_SCHEDULE)
    ddim.set_timesteps(10)
    t = int(ddim.timesteps[3])
    out = ddim.step(eps, t, x)
    dpm = DPMSolverMultistepScheduler.from_config(NOISE_SCHEDULE)
    dpm.set_timesteps(10)
    out_dpm = dpm.step(eps, int(dpm.timesteps[0]), x)
    assert getattr(out_dpm, "pred_original_sample", None) is None
    torch.testing.assert_close(x0_from_step(object(), ddim, eps, x, t), out.pred_original_sample)


def test_euler_sigma_space_matches_vp_convention(random_world):
    """An Euler-scheduled student and the same model under DDPM-convention LCM/DDIM agree on x̂0 at step one."""
    spec = random_world.specs["student"]
    spec_euler = scheduler_factory(EulerDiscreteScheduler, NOISE_SCHEDULE, timestep_spacing="leading")
    random_world.specs["student"].make_scheduler, old = spec_euler, spec.make_scheduler
    try:
        e = run_plan(random_world, distilled(random_world, "student"), PROMPTS, SEEDS)
    finally:
        random_world.specs["student"].make_scheduler = old
    lcm = run_plan(random_world, distilled(random_world, "student"), PROMPTS, SEEDS)
    torch.testing.assert_close(e.dt[0], lcm.dt[0], atol=1e-3, rtol=1e-3)


def test_scheduler_without_custom_timesteps_rejects_foreign_grid():
    ddim = DDIMScheduler.from_config(NOISE_SCHEDULE)
    with pytest.raises(ValueError, match="cannot run the schedule"):
        set_schedule(ddim, [999, 759, 499, 259], "cpu")


def test_run_plan_input_errors(random_world):
    plan = distilled(random_world, "student")
    with pytest.raises(ValueError, match="one seed per prompt"):
        run_plan(random_world, plan, PROMPTS, [0])
    with pytest.raises(ValueError, match="non-empty lists"):
        run_plan(random_world, plan, "a red circle", [0])
