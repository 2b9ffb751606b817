"""The DT chapters (claims C2, C3): commit points on constructed curves and the committed curves' reuse (both notebooks
at smoke size, their summaries and the slider's static figure: test_notebooks; at scale=sdxl: test_sdxl_chapters)."""
import math
import os

import numpy as np
import pytest
import torch

from divdistill.metrics import commit_point
from divdistill.metrics import commit_index
from divdistill.chapters.dt.trajectory import Curves, band, commit, commit_t_diff, rebound

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NB = os.path.join(ROOT, "notebooks")
# each column is one trajectory: committed from step 2, from step 0, only at the end, and a mid-way excursion
CURVES = np.array([[0.9, 0.1, 0.9, 0.05],
                   [0.6, 0.1, 0.8, 0.04],
                   [0.2, 0.0, 0.7, 0.50],
                   [0.1, 0.0, 0.6, 0.03],
                   [0.0, 0.0, 0.5, 0.00]])
FR = [0.2, 0.4, 0.6, 0.8, 1.0]


def test_commit_index_and_commit_point_on_known_curves():
    assert commit_index(CURVES, 0.3).tolist() == [2, 0, 5, 3]
    assert commit_index(CURVES[:, 0], 0.3) == 2  # one curve (S,)
    torch.testing.assert_close(commit_point(torch.tensor(CURVES), FR, 0.3), torch.tensor([0.6, 0.2, 1.0, 0.8]))
    assert float(commit_point(torch.tensor(CURVES[:, 0]), FR, 0.3)) == pytest.approx(0.6)  # one curve
    assert commit_index(CURVES, 1.0).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="steps"):
        commit_index(np.zeros((2, 2, 2)), 0.1)


def test_commit_of_the_mean_curve_with_ci_and_paired_difference():
    n = 30
    a = Curves("a", [999, 749, 499, 249], [0.25, 0.5, 0.75, 1.0], np.tile([[0.5], [0.05], [0.0], [0.0]], (1, n)))
    b = Curves("b", [999, 499, 249, 0], [0.25, 0.5, 0.75, 1.0], np.tile([[0.5], [0.4], [0.05], [0.0]], (1, n)))
    ca = commit(a, 0.1)
    assert (ca["step"].mean, ca["fraction"].mean, ca["t"].mean, ca["n"]) == (1, 0.5, 749, n)
    assert ca["t"].lo == ca["t"].hi == 749  # identical pairs: no spread
    d = commit_t_diff(a, b, 0.1)
    assert (d.mean, d.lo, d.hi) == (500, 500, 500)  # a commits at t=749, b at t=249
    never = Curves("c", [999, 499], [0.5, 1.0], np.ones((2, n)))
    assert commit(never, 0.1)["t"].mean == 0 and commit(never, 0.1)["fraction"].mean == 1.0


def test_band_and_rebound():
    mean, lo, hi = band(CURVES)
    np.testing.assert_allclose(mean, CURVES.mean(1))
    assert np.all(lo <= mean + 1e-12) and np.all(hi >= mean - 1e-12)
    rise, peak = rebound(CURVES)
    assert int(np.argmax(rise)) == 3 and peak[3] == 2 and math.isclose(rise[3], 0.46)


def test_committed_curves_are_used_only_for_the_world_that_made_them(random_world, tmp_path):
    from divdistill import base
    from divdistill.chapters.dt import store as S

    feats = lambda x: torch.nn.functional.adaptive_avg_pool2d(x.float(), 4).flatten(1)  # noqa: E731
    plans = {"base": base(random_world, n=3)}
    ps, ss = ["a", "a", "b", "b"], [0, 1, 0, 1]
    curves, meta = S.compute_all(random_world, plans, ps, ss, feats)
    path = str(tmp_path / "curves.json")
    S.save_curves(path, curves, ps, ss, {**meta, "world_fingerprint": S.world_fingerprint(random_world)})
    got, meta2, src = S.load_or_compute(random_world, plans, ps, ss, feats, path=path)
    assert src.startswith("committed") and meta2["reference_distance"] == pytest.approx(meta["reference_distance"])
    np.testing.assert_allclose(got["base"].dist, curves["base"].dist, atol=1e-5)
    _, _, src = S.load_or_compute(random_world, {"base": base(random_world, n=2)}, ps, ss, feats, path=path)
    assert src.startswith("computed live") and "other plans" in src
    with torch.no_grad():
        next(random_world.spec("base").unet.parameters()).add_(1e-3)
    _, _, src = S.load_or_compute(random_world, plans, ps, ss, feats, path=path)
    assert "another world" in src
