"""The sampler control (issue 8) and the analogue diagnostics."""
import pytest
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


class _Oracle(torch.nn.Module):
    """A denoiser that returns its input's layout: ε̂ such that x̂0 is exactly the given clean images."""

    def __init__(self, x0, alphas_cumprod):
        super().__init__()
        self.x0, self.ac = x0, alphas_cumprod

    def forward(self, sample, timestep, **kw):
        from types import SimpleNamespace

        a = self.ac[timestep].view(-1, 1, 1, 1).float()
        return SimpleNamespace(sample=(sample - a.sqrt() * self.x0) / (1 - a).sqrt())


def _quadrant_layout(images):
    """A stand-in layout read: mean tone of each image quadrant, (B, 4)."""
    q = images.float().mean(1).unfold(1, 16, 16).unfold(2, 16, 16)  # (B, 2, 2, 16, 16)
    return q.mean(dim=(-1, -2)).reshape(len(images), 4)


def test_sdedit_retention_is_one_for_a_model_returning_its_input_layout(random_world):
    from divdistill.chapters.tiny_world.measure import commit_curve, layout_correlation, retention_curve, sdedit_retention
    from divdistill.tiny.world import sample_scenes

    sc = sample_scenes(8, seed=5)
    spec = random_world.spec("student")
    spec.unet = _Oracle(sc.images, spec.make_scheduler().alphas_cumprod)
    from divdistill import distilled

    plan = distilled(random_world, "student")
    for t in (999, 499):
        assert sdedit_retention(random_world, plan, sc.images, sc.prompts, t, _quadrant_layout) == \
            pytest.approx(1.0, abs=1e-6)
    curve = retention_curve(random_world, "student", sc.images, sc.prompts, _quadrant_layout, grid=STUDENT_TS)
    assert curve["retention"] == pytest.approx([1.0] * 4, abs=1e-6)
    # the oracle's x̂0 is the final image at every step: its layout is committed from the first step
    spec.unet = _Oracle(sc.images, spec.make_scheduler().alphas_cumprod)
    com = commit_curve(random_world, plan, sc.prompts, list(range(8)), _quadrant_layout)
    assert com["corr"] == pytest.approx([1.0] * 4, abs=1e-6)
    noise = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    assert abs(layout_correlation(noise, _quadrant_layout(sc.images))) < 0.9


def test_layout_snr_curves_match_sdxl_under_the_shift():
    import numpy as np

    from divdistill.chapters.tiny_world.measure import layout_snr_curves
    from divdistill.tiny.schedule import SNR_FACTOR

    c = layout_snr_curves(SNR_FACTOR)
    sdxl, sd, shifted_ = c.values()
    assert np.allclose(shifted_, sdxl, rtol=1e-9) and np.allclose(sdxl / sd, SNR_FACTOR)


def test_analogue_default_students_are_those_the_world_has(tmp_path):
    """An ablation world without pd (sd-schedule keeps dmd2, turbo, lcm) diagnoses the named students it has."""
    from divdistill.chapters.tiny_world.measure import ANALOGUE_STUDENTS, analogue_students

    for s in ("lcm", "dmd2", "lightning"):
        (tmp_path / "students" / s).mkdir(parents=True)
    assert analogue_students(str(tmp_path)) == ["dmd2", "lcm"] and ANALOGUE_STUDENTS[-1] == "pd"
    assert analogue_students(str(tmp_path / "nowhere")) == []
