"""Issue 19: the SNR factor from value counts and the spectrum on both sides, computed by tested functions."""
import math

import pytest
import torch

from divdistill.tiny import spectrum as S


def _field(n, alpha, count, seed=0):
    k = torch.fft.fftfreq(n) * n
    fx, fy = torch.meshgrid(k, k, indexing="ij")
    f = (fx ** 2 + fy ** 2).sqrt()
    p = torch.where(f > 0, f.clamp(min=1e-9) ** -alpha, torch.tensor(1.0))  # DC gets the f = 1 power
    z = torch.randn(count, n, n, generator=torch.Generator().manual_seed(seed))
    return torch.fft.ifft2(torch.fft.fft2(z) * p.sqrt()).real


def test_block_share_matches_a_simulated_power_law_field():
    x = _field(64, 2.0, 3000)
    m = torch.nn.functional.avg_pool2d(x[:, None], 8)
    simulated = float(m.var(0).mean() / x.var(0).mean())
    assert S.block_share(64, 8, 2.0) == pytest.approx(simulated, rel=0.05)


def test_block_share_limits():
    assert S.block_share(32, 1, 2.0) == pytest.approx(1.0)  # a 1×1 block keeps everything
    assert S.block_share(32, 4, 0.0, dc_power=1.0) == pytest.approx(1 / 16, rel=1e-9)  # white noise: 1/B²
    assert S.block_share(128, 16, 2.4) > S.block_share(128, 16, 2.0) > S.block_share(128, 16, 1.5)
    with pytest.raises(ValueError, match="block must divide"):
        S.block_share(30, 4, 2.0)


def test_snr_factor_reduces_to_the_value_count_when_both_sides_share_a_spectrum():
    # equal per-value variance and equal share: s = (16² · 4) / (4² · 3) = 64/3, the old count
    s = S.snr_factor(16, 4 * 0.5, 4, 3 * 0.5)
    assert s == pytest.approx(65536 / 3072)
    with pytest.raises(ValueError, match="layout variances > 0"):
        S.snr_factor(16, 0.0, 4, 1.0)


def test_measured_layout_variance_of_a_known_image_set():
    # images constant per image: all variance at the layout scale, Σ_c Var = C · Var(constant)
    g = torch.Generator().manual_seed(0)
    c = torch.randn(4000, 3, 1, 1, generator=g).expand(-1, -1, 32, 32)
    assert S.measured_layout_variance(c) == pytest.approx(3.0, rel=0.08)
    with pytest.raises(ValueError, match="images must be"):
        S.measured_layout_variance(torch.zeros(1, 3, 32, 32))


def test_derivation_is_deterministic_and_inside_its_band():
    d1, d2 = S.derive(n_scenes=500), S.derive(n_scenes=500)
    assert d1 == d2
    lo, hi = d1["band"]
    assert lo < d1["snr_factor"] < hi
    assert d1["count_only"] == pytest.approx(64 / 3)
    assert 0 < d1["latent_white_share"] < 1 and math.isfinite(d1["snr_factor"])


def test_each_variant_trains_on_its_own_factor():
    from divdistill.tiny.loader import variant_snr_factor
    from divdistill.tiny.schedule import SNR_FACTOR

    assert variant_snr_factor("sd-schedule") == 1.0 and variant_snr_factor("snr-matched") == SNR_FACTOR
    assert variant_snr_factor("spectrum-matched") == S.derive()["snr_factor"]
    with pytest.raises(ValueError, match="valid variants"):
        variant_snr_factor("nope")


def test_tiny_cli_names_a_bad_variant_in_one_line(capsys):
    from divdistill.tiny.__main__ import main

    assert main(["evaluate", "--variant", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m divdistill.tiny: error: unknown tiny-world variant 'nope'") and "\n" not in err


def test_offset_noise_carries_sdxls_over_by_the_same_count():
    # identical worlds on the same schedule need SDXL's own 0.05
    assert S.offset_noise_for(1.0, 0.3, 16384, 0.3, 16384) == pytest.approx(0.05)
    # a mean that varies k times more needs offset noise whose variance (plus 1/N) grows k times
    k = 4.0
    sig = S.offset_noise_for(1.0, k * 0.3, 1024, 0.3, 16384)
    assert sig ** 2 + 1 / 1024 == pytest.approx(k * (1 / 16384 + 0.05 ** 2))
    with pytest.raises(ValueError, match="no offset noise"):
        S.offset_noise_for(1.0, 1e-6, 1024, 0.3, 16384)
    g = torch.Generator().manual_seed(0)
    c = torch.randn(4000, 3, 1, 1, generator=g).expand(-1, -1, 8, 8)
    assert S.measured_mean_variance(c) == pytest.approx(3.0, rel=0.08)


def test_derived_offset_noise_is_deterministic():
    a, b = S.derive_offset(s=11.0, n_scenes=500), S.derive_offset(s=11.0, n_scenes=500)
    assert a == b and 0 < a["offset_noise"] < 1 and a["snr_factor"] == 11.0


def test_teacher_cli_offset_noise_option():
    from divdistill.tiny.__main__ import _offset_noise, main

    assert _offset_noise("0.1", 11.0) == 0.1
    assert _offset_noise("derived", 11.0) == S.derive_offset(s=11.0)["offset_noise"]
    with pytest.raises(ValueError, match="'derived'"):
        _offset_noise("lots", 11.0)
    assert main(["train-teacher", "--offset-noise", "-1", "--steps", "1"]) == 2


def test_ema_horizon_in_samples_is_kept_across_batch_sizes():
    """A continuation at 8× the batch: the scaled decay keeps as much of its start as the reference run does over the
    same samples; the unscaled one keeps about half of it after 668 steps (the H200 run of issue 19)."""
    from divdistill.tiny.__main__ import _ema, main
    from divdistill.training import ema_decay_for_batch

    d8 = ema_decay_for_batch(0.999, 64, 512)
    assert d8 ** 668 == pytest.approx(0.999 ** (668 * 8)) and d8 ** 668 < 0.01
    assert 0.999 ** 668 == pytest.approx(0.51, abs=0.01)
    assert ema_decay_for_batch(0.999, 64, 64) == 0.999
    assert _ema("scaled", 512) == d8 and _ema("0.99", 512) == 0.99
    for bad in ("lots", "1.0", "-0.1"):
        with pytest.raises(ValueError, match="'scaled'"):
            _ema(bad, 64)
    with pytest.raises(ValueError, match="decay"):
        ema_decay_for_batch(1.0, 64, 512)
    assert main(["train-teacher", "--ema", "2", "--steps", "1"]) == 2


def _ddim_gain(alphas_cumprod, lam, steps):
    """x_0 = G·x_T under DDIM with the exact ε-prediction for scalar data N(0, λ) (everything is linear)."""
    ts = torch.linspace(len(alphas_cumprod) - 1, 0, steps).round().long().tolist()
    g = 1.0  # x_t = g·x_T
    for t, nxt in zip(ts, ts[1:] + [None]):
        a = float(alphas_cumprod[t])
        eps = (1 - a) ** 0.5 / (a * lam + 1 - a)  # E[ε | x_t] = this · x_t
        x0 = (1 - (1 - a) ** 0.5 * eps) / a ** 0.5  # x̂0 = this · x_t
        a_next = 1.0 if nxt is None else float(alphas_cumprod[nxt])
        g *= a_next ** 0.5 * x0 + (1 - a_next) ** 0.5 * eps if nxt is not None else x0
    return g


def test_terminal_leak_a_prompt_free_start_keeps_one_over_one_plus_snr_of_the_variance():
    from divdistill.tiny.schedule import shifted
    ac, lam = shifted(11.4), 0.7
    a_T = float(ac[-1])
    snr = S.layout_snr_at(a_T, 1, lam)  # B = 1: one value's SNR
    kept = _ddim_gain(ac, lam, 1000) ** 2 * (1 - a_T) / lam  # start N(0, 1 − ᾱ_T): no signal part
    assert kept == pytest.approx(1 / (1 + snr), rel=0.02)
    full = _ddim_gain(ac, lam, 1000) ** 2 * (a_T * lam + 1 - a_T) / lam  # start q(x_T): the data's variance back
    assert full == pytest.approx(1.0, rel=0.02)


def test_terminal_leak_matches_sdxl_on_the_derived_factor_only():
    rows = {r["schedule"].split(" (")[0] if "SDXL" in r["schedule"] else r["schedule"].split("(")[-1].rstrip(")"): r
            for r in S.terminal_leak()}
    assert set(rows) == {"SDXL", "sd-schedule", "spectrum-matched", "snr-matched"}
    assert rows["spectrum-matched"]["layout_snr_T"] == pytest.approx(rows["SDXL"]["layout_snr_T"], rel=1e-6)
    snrs = [rows[k]["layout_snr_T"] for k in ("sd-schedule", "spectrum-matched", "snr-matched")]
    assert snrs == sorted(snrs) and snrs[0] < 0.2 < 2 < snrs[2]
    for r in rows.values():
        assert r["signal_share_T"] + r["variance_kept_linear"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="0 < alpha_bar < 1"):
        S.layout_snr_at(1.0, 4, 1.0)

