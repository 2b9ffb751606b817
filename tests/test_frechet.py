"""One Fréchet distance (metrics.frechet_from_stats + metrics.feature_stats): every former FID of the project is
reproduced on fixed random features — metrics.frechet and the hybrid bootstrap bit for bit, the evaluate CLI's and
FID_tiny (torchmetrics' running sums) to ≤ 1e-9 relative. The `_old_*` functions are the code before the merge."""
import numpy as np
import pytest
import torch

from divdistill import metrics as M
from divdistill.chapters.hybrid import stats as S
from divdistill.evaluation import scores

CASES = [(0, 300, 200, 8), (1, 500, 400, 64), (2, 120, 90, 16), (3, 1000, 1000, 32)]  # (seed, n_real, n_fake, D)


def _feats(seed: int, n_real: int, n_fake: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 features like the extractors', real and fake of different means and spreads."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d ** 0.5
    real = (torch.randn(n_real, d, generator=g) @ mix) * 0.5 + 1.0
    fake = (torch.randn(n_fake, d, generator=g) @ mix) * 0.6 + 1.1
    return real, fake


def _old_frechet(real, fake):
    r, f = real.double(), fake.double()
    mu_r, mu_f = r.mean(0), f.mean(0)
    cr, cf = torch.cov(r.T), torch.cov(f.T)
    eig = torch.linalg.eigvals(cr @ cf).sqrt().real.sum()
    return float(((mu_r - mu_f) ** 2).sum() + cr.trace() + cf.trace() - 2 * eig)


def _old_frechet_stats(feats):
    f = np.asarray(feats, np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def _old_weighted_frechet(ref, feats, c):
    mu_r, cov_r = ref
    w_, v_ = np.linalg.eigh((cov_r + cov_r.T) / 2)
    root = (v_ * np.sqrt(w_.clip(0))) @ v_.T
    f = np.asarray(feats, np.float64)
    out = np.empty(len(c))
    for b, w in enumerate(c):
        n = w.sum()
        mu = w @ f / n
        x = f - mu
        cov = (x.T * w) @ x / max(n - 1, 1)
        tr_sqrt = np.sqrt(np.linalg.eigvalsh(root @ cov @ root).clip(0)).sum()
        out[b] = ((mu - mu_r) ** 2).sum() + np.trace(cov) + np.trace(cov_r) - 2 * tr_sqrt
    return out


class _Given(torch.nn.Module):
    def __init__(self, num_features):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


def _old_evaluate_fid(fake, real=None, stats=None, batch=4096):
    """evaluation/scores.fid before: torchmetrics' FrechetInceptionDistance on given features."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Given(fake.shape[1]), reset_real_features=False)
    if real is not None:
        for i in range(0, len(real), batch):
            metric.update(real[i:i + batch].double(), real=True)
    else:
        mu_t, sig_t = torch.as_tensor(stats[0], dtype=torch.float64), torch.as_tensor(stats[1], dtype=torch.float64)
        metric.real_features_num_samples = torch.tensor(2)
        metric.real_features_sum = 2 * mu_t
        metric.real_features_cov_sum = sig_t + 2 * torch.outer(mu_t, mu_t)
    for i in range(0, len(fake), batch):
        metric.update(fake[i:i + batch].double(), real=False)
    return float(metric.compute())


@pytest.mark.parametrize("case", CASES)
def test_frechet_is_bit_identical_to_the_former_formula(case):
    real, fake = _feats(*case)
    assert M.frechet(real, fake) == _old_frechet(real, fake)
    assert M.frechet(real, real) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_hybrid_bootstrap_fid_is_bit_identical_to_the_former_one(case):
    real, fake = (t.numpy() for t in _feats(*case))
    ref = M.feature_stats(real)
    assert all(np.array_equal(a, b) for a, b in zip(ref, _old_frechet_stats(real)))
    rng = np.random.default_rng(case[0])
    c = np.concatenate([np.ones((1, len(fake))), rng.multinomial(len(fake), np.full(len(fake), 1 / len(fake)),
                                                                 size=20).astype(np.float64)])
    assert np.array_equal(S.weighted_frechet(ref, fake, c), _old_weighted_frechet(ref, fake, c))


@pytest.mark.parametrize("case", CASES)
def test_evaluate_fid_equals_the_former_torchmetrics_one(case, tmp_path):
    real, fake = _feats(*case)
    assert scores.fid(fake, real=real) == pytest.approx(_old_evaluate_fid(fake, real=real), rel=1e-9, abs=0)
    scores.write_stats(str(tmp_path / "ref.npz"), real)
    st = scores.read_stats(str(tmp_path / "ref.npz"))
    assert all(np.array_equal(a, b) for a, b in zip(st, _old_frechet_stats(real.double().numpy())))
    assert scores.fid(fake, stats=st) == pytest.approx(_old_evaluate_fid(fake, stats=st), rel=1e-9, abs=0)


class _Evaluator(torch.nn.Module):
    """A fixed random feature network: images (B, 3, 8, 8) → (B, 12)."""

    num_features = 12

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 12))

    def forward(self, x):
        return self.net(x)


def test_fid_tiny_on_torchmetrics_equals_frechet_of_features():
    ev = _Evaluator()
    g = torch.Generator().manual_seed(5)
    real, fake = torch.rand(600, 3, 8, 8, generator=g) * 2 - 1, torch.rand(300, 3, 8, 8, generator=g) * 1.6 - 0.7
    want = M.frechet(M.features(ev, real), M.features(ev, fake))
    assert M.fid(ev, real, fake) == pytest.approx(want, rel=1e-9, abs=0)


def test_the_two_ways_of_the_root_trace_agree():
    real, fake = (t.double() for t in _feats(1, 500, 400, 64))
    (mu1, cov1), (mu2, cov2) = M.feature_stats(fake), M.feature_stats(real)
    torch_way = float(M.frechet_from_stats(mu1, cov1, mu2, cov2))
    np_stats = [v.numpy() for v in (mu1, cov1, mu2, cov2)]
    numpy_way = float(M.frechet_from_stats(*np_stats, root2=M.sqrt_psd(np_stats[3])))
    assert numpy_way == pytest.approx(torch_way, rel=1e-9, abs=0)


def test_a_set_of_one_feature_row_is_a_clear_error():
    real, fake = _feats(0, 10, 1, 4)
    with pytest.raises(ValueError, match=r">= 2 feature rows per set .* got 1"):
        M.frechet(real, fake)
    with pytest.raises(ValueError, match=r">= 2 feature rows"):
        scores.fid(fake, real=real)
