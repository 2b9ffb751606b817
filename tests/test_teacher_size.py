"""The teacher's size diagnosis (chapters/tiny_world/size.py): the named-side flags, the six sources on the
committed teacher (seeded, so repeatable), the three closer priors' starts, pooled shares, the start gaps and their
summary, and clear errors."""
import pytest
import torch

from divdistill.chapters.tiny_world.size import (SOURCES, MomentStarts, offset_starts, on_named_side, pooled, size_rows,
                                                 start_gap, teacher_offset_noise)
from divdistill.chapters.tiny_world.size_report import size_summary, size_table_rows
from divdistill.tiny.evaluator import SMALL_LARGE_SPLIT, load_evaluator
from divdistill.tiny.loader import variant_dir
from divdistill.tiny.world import sample_scenes, scenes_for_prompt


def test_named_side_reads_the_split():
    r = torch.tensor([SMALL_LARGE_SPLIT - 0.1, SMALL_LARGE_SPLIT, SMALL_LARGE_SPLIT + 3])
    assert on_named_side(r, 1).tolist() == [0.0, 1.0, 1.0]
    assert on_named_side(r, 0).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="0 \\(small\\) or 1 \\(large\\)"):
        on_named_side(r, 2)


@pytest.fixture(scope="module")
def rows(tiny_world):
    ev = load_evaluator(tiny_world.extras["evaluator_root"])
    prompts = ("a large square", "a small orange triangle")
    return ev, prompts, size_rows(tiny_world, ev, n=2, seed=0, prompts=prompts, offset_noise=0.6, moment_scenes=400)


def test_moment_starts_carry_q_xT_moments():
    a_T = 0.05
    m = MomentStarts(a_T, n_scenes=2000, seed=0)
    noise = (1 - a_T) ** 0.5 * torch.randn(4000, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x = m(noise, seed=2)  # (B, C, H, W)
    data = sample_scenes(4000, seed=3).images
    # q(x_T)'s per-channel mean and per-value variance: √ᾱ_T·mean(x0) and ᾱ_T·var(x0) + 1 − ᾱ_T
    assert torch.allclose(x.mean((0, 2, 3)), a_T ** 0.5 * data.mean((0, 2, 3)), atol=0.01)
    assert float(x.var(0).mean()) == pytest.approx(a_T * float(data.var(0).mean()) + 1 - a_T, rel=0.02)
    assert torch.equal(m(noise[:2], seed=2), m(noise[:2], seed=2))  # seeded: the same start twice
    p = "a large blue square on a dark background"
    c = MomentStarts(a_T, n_scenes=1000, seed=0, prompt=p)(noise[:2000], seed=2)  # q(x_T | c): the prompt's scenes
    own = scenes_for_prompt(p, 2000, seed=3).images
    assert torch.allclose(c.mean((0, 2, 3)), a_T ** 0.5 * own.mean((0, 2, 3)), atol=0.015)
    assert float((c.mean((0, 2, 3)) - x.mean((0, 2, 3))).abs().max()) > 0.03  # dark and blue: not the data's mean


def test_offset_starts_add_per_channel_constants():
    noise = torch.zeros(3000, 3, 4, 4)
    x = offset_starts(noise, 0.6, 0.05, seed=0)
    assert torch.equal(x, x[:, :, :1, :1].expand_as(x))  # constant over pixels
    assert float(x[:, :, 0, 0].std()) == pytest.approx(0.95 ** 0.5 * 0.6, rel=0.05)
    assert torch.equal(offset_starts(noise, 0.0, 0.05, seed=0), noise)


def test_teacher_offset_noise_read_from_provenance():
    assert teacher_offset_noise(variant_dir("spectrum-matched")) == pytest.approx(0.6106, abs=1e-3)
    assert teacher_offset_noise(None) == 0.0


def test_six_sources_per_prompt_repeatable(tiny_world, rows):
    ev, prompts, got = rows
    assert [(r["prompt"], r["source"]) for r in got] == [(p, s) for p in prompts for s in SOURCES]
    assert all(r["n"] == 2 and len(r["on named side"]) == 2 for r in got)
    assert {r["named"] for r in got} == {"small", "large"}
    # the two teacher starts are different inputs to the same plan: their images differ
    by = {(r["prompt"], r["source"]): r for r in got}
    assert any(by[(p, SOURCES[1])]["mean size"] != by[(p, SOURCES[2])]["mean size"] for p in prompts)
    # same seed, same output: every source seeds each image on its own, so one image again is the first image again
    again = size_rows(tiny_world, ev, n=1, seed=0, prompts=prompts[:1], offset_noise=0.6, moment_scenes=400)
    assert [r["on named side"][0] for r in again] == [r["on named side"][0] for r in got[:len(SOURCES)]]
    with pytest.raises(ValueError, match="names no size"):
        size_rows(tiny_world, ev, n=1, prompts=("a red circle",), moment_scenes=400)
    with pytest.raises(ValueError, match="offset_noise must be >= 0"):
        size_rows(tiny_world, ev, n=1, prompts=prompts, offset_noise=-1.0)


def test_pooled_gap_and_summary_from_constructed_rows():
    def row(source, named, flags):
        return {"prompt": f"a {named} shape", "named": named, "source": source, "n": len(flags),
                "on named side": flags, "mean size": 8.0}

    closer = [row(s, w, [1.0] * 20 + [0.0] * 20) for s in SOURCES[3:] for w in ("large", "small")]
    rows = [row(SOURCES[0], "large", [1.0] * 40), row(SOURCES[1], "large", [1.0] * 20 + [0.0] * 20),
            row(SOURCES[2], "large", [1.0] * 39 + [0.0]), row(SOURCES[0], "small", [1.0] * 40),
            row(SOURCES[1], "small", [1.0] * 39 + [0.0]), row(SOURCES[2], "small", [1.0] * 39 + [0.0])] + closer
    p = pooled(rows, SOURCES[1], "large")
    assert p["share"] == 0.5 and p["n"] == 40 and p["lo"] < 0.5 < p["hi"]
    assert pooled(rows, SOURCES[1])["share"] == pytest.approx(59 / 80)
    assert start_gap(rows, "large").lo > 0.2 and start_gap(rows, "small").mean == 0.0
    d = {"split": SMALL_LARGE_SPLIT, "rows": rows,
         "pooled": [pooled(rows, s, w) for s in SOURCES for w in (None, "small", "large")]}
    text = size_summary(d)
    assert "not in rendering it" in text
    assert "Neither clearly lifts it" in text  # the closer priors match the prior on "large" and fall on "small"
    assert size_table_rows(d)[0] == {"prompt": "a large shape", "data": "1.00 (8.0)",
                                     "teacher, prior": "0.50 (8.0)", "teacher, real layout": "0.97 (8.0)",
                                     "teacher, Gaussian q(x_T)": "0.50 (8.0)", "teacher, prior + offset": "0.50 (8.0)",
                                     "teacher, Gaussian q(x_T | c)": "0.50 (8.0)"}
    assert "does not clearly lift the share" in text  # the prompt's Gaussian sits at the prior's share
    lifted = [r for r in rows if r["source"] != SOURCES[4]] + [row(SOURCES[4], w, [1.0] * 40) for w in ("large",
                                                                                                          "small")]
    d_lift = {**d, "rows": lifted, "pooled": [pooled(lifted, s, w) for s in SOURCES for w in (None, "small", "large")]}
    assert "part of the miss is the prior's" in size_summary(d_lift)
    old = [r for r in rows if r["source"] in SOURCES[:3]]  # a diagnosis from before the closer priors
    d_old = {**d, "rows": old, "pooled": [pooled(old, s, w) for s in SOURCES[:3] for w in (None, "small", "large")]}
    assert "not in rendering it" in size_summary(d_old) and "closer to q(x_T)" not in size_summary(d_old)
    with pytest.raises(ValueError, match="unknown start"):
        start_gap(rows, None, SOURCES[1])
    flat = [dict(r, **{"on named side": [1.0] * r["n"]}) for r in old]
    d_flat = {**d, "rows": flat, "pooled": [pooled(flat, s, w) for s in SOURCES[:3] for w in (None, "small", "large")]}
    assert "not the first steps' alone" in size_summary(d_flat)
    flat5 = [dict(r, **{"on named side": [1.0] * r["n"]}) for r in rows]  # every start alike: no gap anywhere
    d_flat5 = {**d, "rows": flat5, "pooled": [pooled(flat5, s, w) for s in SOURCES for w in (None, "small", "large")]}
    assert "there is no start gap to close" in size_summary(d_flat5)
    noisy = [1.0] * 30 + [0.0] * 10  # "small": the same noisy share from both starts
    one = [row(SOURCES[0], "large", [1.0] * 40), row(SOURCES[1], "large", [1.0] * 34 + [0.0] * 6),
           row(SOURCES[2], "large", [1.0] * 40), row(SOURCES[0], "small", [1.0] * 40),
           row(SOURCES[1], "small", noisy), row(SOURCES[2], "small", noisy)]  # only "large" gains
    d_one = {**d, "rows": one, "pooled": [pooled(one, s, w) for s in SOURCES[:3] for w in (None, "small", "large")]}
    assert "clearly so for “large”" in size_summary(d_one)
    assert size_summary(None).startswith("No size diagnosis")
    real = {w: next(r["on named side"] for r in rows if r["source"] == SOURCES[2] and r["named"] == w)
            for w in ("large", "small")}
    closes = [r for r in rows if r["source"] != SOURCES[5]] + [row(SOURCES[5], w, real[w]) for w in real]
    d_close = {**d, "rows": closes, "terminal": {"alpha_bar_T": 0.05, "layout_snr_T": 1.22, "signal_share_T": 0.55},
               "pooled": [pooled(closes, s, w) for s in SOURCES for w in (None, "small", "large")]}
    text = size_summary(d_close)
    assert "It closes 100% of the gap" in text and "A better teacher cannot close this gap" in text
    assert "layout SNR of 1.22" in text and "55% of q(x_T)'s layout-scale variance" in text
    half = [r for r in rows if r["source"] != SOURCES[5]] + [row(SOURCES[5], "large", [1.0] * 32 + [0.0] * 8),
                                                              row(SOURCES[5], "small", [1.0] * 39 + [0.0])]
    d_half = {**d, "rows": half, "pooled": [pooled(half, s, w) for s in SOURCES for w in (None, "small", "large")]}
    text = size_summary(d_half)
    assert "mostly the prompt's share of q(x_T)" in text and "(on “large”, 63%)" in text  # (32 − 20) / (39 − 20)
    assert "there is no start gap for it to close" in size_summary(d_flat5)
    with pytest.raises(ValueError, match="no rows for source"):
        pooled(rows, "the moon")
