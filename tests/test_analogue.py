"""The sampler control (issue 8) and the analogue diagnostics."""
import torch

from divdistill import hybrid, on_sampler, run_plan
from conftest import STUDENT_TS


def test_on_sampler_equals_hybrid_with_k_full_grid(random_world):
    n = len(STUDENT_TS)
    for g in (None, 0.0, 4.0):
        want_g = random_world.spec("base").guidance if g is None else g
        plan = on_sampler(random_world, "student", guidance=g)
        ref = hybrid(random_world, "student", k=n, base_guidance=want_g)
        assert plan.steps == ref.steps and plan.timesteps == list(STUDENT_TS)
    a = run_plan(random_world, on_sampler(random_world, "student"), ["p"], [0], capture=False).images
    b = run_plan(random_world, hybrid(random_world, "student", k=n, base_guidance=3.0), ["p"], [0],
                 capture=False).images
    assert torch.equal(a, b)
