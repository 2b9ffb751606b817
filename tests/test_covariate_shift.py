"""DDIL Table 9 machinery: mixed rollouts reduce to the pure models, the shift statistic (both DDIL
chapters as notebooks: test_notebooks at smoke size, test_sdxl_chapters at scale="sdxl")."""
import math
import os

import pytest
import torch

import divdistill as dd
from divdistill.chapters.covariate import shift as cs
from divdistill.plan import Plan, Step

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PROMPTS, SEEDS = ["a red circle", "a large blue square on a dark background"], [3, 4]


def test_mixed_beta_0_is_the_student_and_beta_1_the_teacher(tiny_world):
    w = tiny_world
    assert cs.mixed_pattern(w, 0.0, 7, "base", "pd") == "SSSS" and cs.mixed_pattern(w, 1.0, 7, "base", "pd") == "TTTT"
    student = dd.run_plan(w, cs.pattern_plan(w, cs.mixed_pattern(w, 0.0, 7, "base", "pd"), "base", "pd"), PROMPTS,
                          SEEDS, capture=False)
    own = dd.run_plan(w, dd.distilled(w, "pd"), PROMPTS, SEEDS, capture=False)  # the student on its own DDIM
    assert torch.allclose(student.images, own.images, atol=1e-4)
    teacher = dd.run_plan(w, cs.pattern_plan(w, cs.mixed_pattern(w, 1.0, 7, "base", "pd"), "base", "pd"), PROMPTS[:1],
                          SEEDS[:1], capture=False)
    grid32 = [t for sub in cs.sub_grid([999, 749, 499, 249], 8) for t in sub]
    alone = Plan(tuple(Step("base", t, w.spec("base").guidance, cs.SOLVER) for t in grid32))
    assert torch.equal(teacher.images, dd.run_plan(w, alone, PROMPTS[:1], SEEDS[:1], capture=False).images)
    assert teacher.nfe == 64 and student.nfe == 4
    # diffusers' own 32-step trailing DDIM differs only by its rounded step (t − 31 instead of the next grid point)
    ddim32 = dd.run_plan(w, dd.base(w, 32), PROMPTS[:1], SEEDS[:1], capture=False).images
    assert (teacher.images - ddim32).abs().mean() < 0.03


def test_patterns_switches_and_nesting(random_world):
    grid = [999, 749, 499, 249]
    assert [cs.switch_pattern(random_world, t, "base", "student", "base", grid) for t in cs.SWITCH_TS] == \
        ["TSSS", "TTSS", "TTTS"]
    assert [cs.switch_pattern(random_world, t, "student", "base", "base", grid) for t in cs.SWITCH_TS] == \
        ["STTT", "SSTT", "SSST"]
    for seed in range(10):  # raising β only turns student transitions into teacher ones
        pats = [cs.mixed_pattern(random_world, b, seed, "base", "student", grid) for b in cs.BETAS]
        assert all(all(a <= b for a, b in zip(p.replace("S", "0").replace("T", "1"), q.replace("S", "0")
                                              .replace("T", "1"))) for p, q in zip(pats, pats[1:]))
    assert cs.nfe("TSST", 8) == 34
    with pytest.raises(ValueError, match="one letter T/S"):
        cs.pattern_plan(random_world, "TSX", "base", "student")
    with pytest.raises(ValueError, match="inside the grid"):
        cs.switch_pattern(random_world, 999, "base", "student", "base", grid)


def test_states_are_the_inputs_the_student_met(tiny_world):
    """Reconstructed x_t, fed back to the student, reproduce the x̂0 the run recorded at that step."""
    from divdistill.sampling import predict

    w = tiny_world
    res = dd.run_plan(w, dd.distilled(w, "pd"), PROMPTS, SEEDS)
    ac = cs.alphas_cumprod(w)
    st = cs.states(w.noise(SEEDS), res.dt, res.timesteps, ac, "DDIMScheduler")
    assert st.shape[0] == 5 and torch.allclose(st[-1], res.images, atol=1e-5)
    t, a = res.timesteps[2], float(ac[res.timesteps[2]])
    eps = predict(w.spec("pd"), st[2], t, w.encode(PROMPTS), 0.0)[0]
    assert torch.allclose((st[2] - (1 - a) ** 0.5 * eps) / a ** 0.5, res.dt[2], atol=1e-3)


def test_shift_statistic_is_zero_for_one_distribution_and_positive_for_a_shift():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 16, generator=g), torch.randn(300, 16, generator=g)
    bw = cs.median_bandwidth(y)
    same, shifted = cs.mmd2(x, y, bw), cs.mmd2(x + 0.5, y, bw)
    assert abs(same) < 0.01 and shifted > 0.05 and shifted > 10 * abs(same)
    assert cs.mmd2(x * 1.5, y, bw) > 0.02  # a change of spread is a shift too
    with pytest.raises(ValueError, match="bandwidth"):
        cs.mmd2(x, y, 0.0)


def test_frechet_matches_fid_tiny(tiny_world):
    from divdistill.tiny.evaluator import load_evaluator
    from divdistill.tiny.world import sample_scenes

    ev = load_evaluator(tiny_world.extras["evaluator_root"])
    a, b = sample_scenes(150, seed=1).images, sample_scenes(150, seed=2).images
    assert math.isclose(cs.frechet(dd.features(ev, a), dd.features(ev, b)), dd.fid(ev, a, b), rel_tol=1e-6)


def test_teacher_shift_rows_at_the_student_timesteps(tiny_world):
    from divdistill.chapters.covariate.measure import TEACHER, teacher_shift

    feats = lambda x: x.flatten(1)[:, :64]  # noqa: E731  (any feature map; the evaluator is tested elsewhere)
    rows = teacher_shift(tiny_world, feats, "pd", 3, 0)
    assert [r["t"] for r in rows] == [999, 749, 499, 249] and {r["model"] for r in rows} == {TEACHER}
    assert all(math.isfinite(r["mmd_feat"]) and math.isfinite(r["mmd_pix"]) for r in rows)
