"""The hybrid chapter (Tables 2–4, Fig. 7): statistics on constructed inputs, the control plan, NFE/time provenance,
its committed results (the notebook at smoke size: test_notebooks; at sdxl: test_sdxl_chapters)."""
import os

import numpy as np
import pytest
import torch

import divdistill as dd
from divdistill import metrics as M
from divdistill.chapters.hybrid import stats as S
from divdistill.book.claims import verdict

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NB = os.path.join(ROOT, "notebooks", "hybrid_diversity.ipynb")


def _sample(feats_by_cell, name="s", probs=None):
    cells = {k: S.Cell(np.asarray(f, np.float64), fid_feats=np.asarray(f, np.float64), probs=probs,
                       adherence=np.ones(len(f))) for k, f in feats_by_cell.items()}
    return S.Sample(cells, 4, [0.1, 0.1], name)


def test_identical_sets_have_zero_diversity_difference_and_zero_fid():
    rng = np.random.default_rng(0)
    f = {(0, g): rng.normal(size=(40, 8)) for g in range(3)}
    a, b = _sample(f, "a"), _sample(f, "b")
    d = S.paired_diff("diversity", a, b, n_boot=50)
    assert d.mean == 0 and d.lo == 0 and d.hi == 0
    assert verdict(d, ">") is None  # a zero effect is never a claim holding
    ref = M.feature_stats(np.concatenate(list(f.values())))
    assert abs(S.estimate("fid", a, ref, n_boot=20).mean) < 1e-6


def test_weighted_frechet_matches_scipy_fid():
    from scipy import linalg

    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(300, 6)), rng.normal(0.5, 1.3, size=(200, 6))
    mu1, s1 = real.mean(0), np.cov(real, rowvar=False)
    mu2, s2 = fake.mean(0), np.cov(fake, rowvar=False)
    want = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    got = S.weighted_frechet(M.feature_stats(real), fake, np.ones((1, len(fake))))[0]
    assert got == pytest.approx(want, rel=1e-6)


def test_collapsed_set_has_lower_diversity_and_coverage_than_spread_set():
    rng = np.random.default_rng(2)
    spread = rng.normal(size=(120, 8)) + 3.0
    collapsed = np.tile(spread[:1], (120, 1)) + 0.01 * rng.normal(size=(120, 8))
    a, b = _sample({(0, 0): collapsed}, "collapsed"), _sample({(0, 0): spread}, "spread")
    d = S.paired_diff("diversity", a, b, n_boot=100)
    assert verdict(d, "<") is True
    real = rng.normal(size=(120, 8)) + 3.0
    cov_c, cov_s = dd.prdc(real, collapsed)["coverage"], dd.prdc(real, spread)["coverage"]
    assert cov_c < cov_s


def test_inception_score_of_confident_uniform_and_collapsed_posteriors():
    k = 5
    uniform = np.eye(k).repeat(4, 0)  # every class equally often, each image certain
    collapsed = np.tile(np.eye(k)[:1], (20, 1))
    ones = np.ones((1, 20))
    assert S.weighted_inception_score(uniform, ones)[0] == pytest.approx(k, rel=1e-4)
    assert S.weighted_inception_score(collapsed, ones)[0] == pytest.approx(1.0, rel=1e-4)


@pytest.fixture(scope="module")
def world():
    return dd.load_world("tiny", device="cpu")


def test_control_plan_equals_hybrid_with_every_step_given_to_the_base(world):
    from divdistill.chapters.hybrid.plans import rows, students_of

    for s in students_of(world):
        n = len(dd.distilled(world, s))
        for g in (0.0, world.spec("base").guidance):
            assert dd.on_sampler(world, s, g).steps == dd.hybrid(world, s, k=n, base_guidance=g).steps
    ctrl = {r.key: r.plan for r in rows(world, "dmd2")}["control"]
    assert ctrl.steps == dd.hybrid(world, "dmd2", k=len(ctrl), base_guidance=world.spec("base").guidance).steps


def test_nfe_and_seconds_come_from_the_run_that_made_the_images(world, monkeypatch):
    from divdistill.chapters.hybrid import runs as H
    from divdistill.book.chapter import Chapter
    from divdistill.chapters.hybrid.plans import rows

    calls = []
    real_run = H.run_plan

    def spy(*a, **kw):
        out = real_run(*a, **kw)
        calls.append(out)
        return out

    monkeypatch.setattr(H, "run_plan", spy)
    ch = Chapter("hybrid_diversity", "tiny", world)
    row = {r.key: r for r in rows(world, "dmd2")}["hybrid_g4"]
    sizes = H.Sizes(n_prompts=2, sweep_per_prompt=3, batch_size=2)
    s = H.run_sample(ch, row, sizes, lambda imgs, ps: {"feats": imgs.flatten(1).numpy(), "fid_feats": None,
                                                       "probs": None, "adherence": None})
    assert len(calls) == len(s.seconds) == 4  # 2 prompts x ceil(3 / 2) batches, each timed
    assert s.nfe == calls[-1].nfe == 5  # base step with CFG (2 passes) + 3 student steps, counted by run_plan
    assert all(t > 0 for t in s.seconds) and s.n == 6


def test_killed_hybrid_run_resumes_per_cell_and_a_settings_change_starts_afresh(world, monkeypatch, tmp_path):
    from divdistill.chapters.hybrid import runs as H
    from divdistill.book.chapter import Chapter
    from divdistill.chapters.hybrid.plans import rows

    calls = []
    real_run = H.run_plan
    monkeypatch.setattr(H, "run_plan", lambda *a, **kw: calls.append(a[2][0]) or real_run(*a, **kw))
    ch = Chapter("hybrid_diversity", "tiny", world)
    row = {r.key: r for r in rows(world, "dmd2")}["hybrid_g4"]
    sizes, cache = H.Sizes(n_prompts=2, sweep_per_prompt=2, batch_size=2), str(tmp_path / "cache")

    def measure(imgs, ps):
        return {"feats": imgs.flatten(1).numpy(), "fid_feats": imgs.mean((2, 3)).numpy(), "probs": None,
                "adherence": np.ones(len(ps))}

    def killed(imgs, ps):
        if len(calls) > 1:
            raise KeyboardInterrupt  # killed in the second cell
        return measure(imgs, ps)

    with pytest.raises(KeyboardInterrupt):
        H.run_sample(ch, row, sizes, killed, cache)
    assert len(calls) == 2
    resumed = H.run_sample(ch, row, sizes, measure, cache)
    assert len(calls) == 3 and calls[2] == calls[1]  # only the second cell ran again
    straight = H.run_sample(ch, row, sizes, measure)
    for k, c in straight.cells.items():
        assert np.array_equal(resumed.cells[k].feats, c.feats) and resumed.cells[k].feats.dtype == c.feats.dtype
        assert np.array_equal(resumed.cells[k].fid_feats, c.fid_feats)
    assert len(calls) == 5
    H.run_sample(ch, row, sizes, measure, cache)  # everything from the cache
    assert len(calls) == 5
    H.run_sample(ch, {r.key: r for r in rows(world, "dmd2")}["hybrid_g2"], sizes, measure, cache)  # its own cells
    assert len(calls) == 7
    H.run_sample(ch, row, sizes, measure, cache)  # unaffected by the other row
    assert len(calls) == 7
    monkeypatch.setitem(world.extras, "root", str(tmp_path / "another world"))  # a settings change
    H.run_sample(ch, row, sizes, measure, cache)
    assert len(calls) == 9
    w = next(world.spec("dmd2").unet.parameters())
    kept = w.detach().clone()
    with torch.no_grad():  # the student retrained in place (same files, new weights): its cells are measured again
        w.add_(1e-3)
    try:
        H.run_sample(ch, row, sizes, measure, cache)
    finally:
        with torch.no_grad():
            w.copy_(kept)
    assert len(calls) == 11


def test_schedule_paragraph_marks_a_student_below_its_bar_provisional():
    from divdistill.chapters.hybrid import report as R
    from divdistill.chapters.hybrid.schedules import schedule_paragraph

    res = next(r for r in (R.load_results(v) for v in R.VARIANTS) if r is not None)
    plain = schedule_paragraph({"w": res})
    marked = schedule_paragraph({"w": res}, {"w": [res["student"]], "other": ["x"]})
    assert "provisional" not in plain and marked.startswith(plain) and f"There {res['student']} misses" in marked
    assert schedule_paragraph({"w": res}, {"w": ["not-" + res["student"]]}) == plain
