"""The acceptance with the leak at t = 999 removed to second order (chapters/tiny_world/leak.py): the prior's start is
the acceptance's own images, the prompt's Gaussian changes them, the checks and the page's summary are computed."""
import pytest
import torch

from divdistill.chapters.tiny_world.leak import STARTS, _images, diagnose_leak, start_kind, start_spread, starts_for
from divdistill.chapters.tiny_world.size_report import leak_summary, leak_table_rows, spread_summary
from divdistill.plan import base
from divdistill.sampling import generate
from divdistill.tiny.evaluator import load_evaluator
from divdistill.tiny.quality import EVAL_PROMPTS, prompt_set


def test_prior_start_is_the_acceptance_set_and_the_prompts_gaussian_differs(tiny_world):
    prompts, seeds = prompt_set(2, EVAL_PROMPTS[1:2])  # two images of one prompt
    with torch.no_grad():
        mine = _images(tiny_world, prompts, seeds, "the sampling prior", 400, 0, batch=2)
        theirs = generate(tiny_world, base(tiny_world), prompts, seeds).images  # what `tiny evaluate` samples
        given = _images(tiny_world, prompts, seeds, "a Gaussian with q(x_T | c)'s moments", 400, 0, batch=1)
    assert torch.allclose(mine, theirs, atol=1e-5)
    assert not torch.allclose(mine, given, atol=1e-2)
    assert torch.allclose(given, _images(tiny_world, prompts, seeds, "a Gaussian with q(x_T | c)'s moments", 400, 0,
                                         batch=2), atol=1e-5)  # per image
    spread = _images(tiny_world, prompts, seeds, starts_for(tiny_world)[2], 400, 0, batch=2)  # the other spread
    assert not torch.allclose(mine, spread, atol=1e-3) and (mine - spread).abs().max() < 0.5  # the same draws, nudged


def test_diagnose_leak_rows_and_checks(tiny_world):
    ev = load_evaluator(tiny_world.extras["evaluator_root"])
    d = diagnose_leak(tiny_world, ev, n=2, moment_scenes=400, prompts=EVAL_PROMPTS[1:2])
    assert [r["start"] for r in d["rows"]] == starts_for(tiny_world) and d["n"] == 2
    assert [r["amplitude_spread"] for r in d["rows"]] == [start_spread(tiny_world, s) for s in starts_for(tiny_world)]
    for r in d["rows"]:
        assert 0 <= r["adherence"] <= 1 and r["diversity_ratio"] > 0 and "fid" not in r["fails"]
        assert set(r["fails"]) <= {"adherence", "bg", "color", "shape", "size", "style", "diversity_ratio", "grain"}
    other = "own" if tiny_world.prior_spread is not None else "SDXL's"
    assert [r["start"] for r in leak_table_rows(d)] == ["prior", "Gaussian q(x_T | c)", f"prior, {other} spread",
                                                        f"Gaussian q(x_T | c), {other} spread"]
    assert d["values_per_start"] == 3 * 32 * 32
    assert [start_kind(s) for s in STARTS] == [(False, "world"), (True, "world"), (False, "sdxl"), (True, "sdxl"),
                                               (False, "own"), (True, "own")]
    with pytest.raises(ValueError, match="unknown start"):
        start_kind("a real scene")


def _doc(prior_fails, given_fails, *spread_fails, starts=list(STARTS)[:4], spreads=(None, None)):
    row = lambda s, f: {"start": s, "n": 1000, "adherence": 0.94, "adherence_bg": 1.0, "adherence_size": 0.85,  # noqa
                        "diversity_ratio": 1.0, "teacher_grain_p90": 2.4 if "grain" in f else 1.7,
                        "teacher_grain_visible_frac": 0.1, "fid_eval_prompts": 30.0, "fails": f,
                        "amplitude_spread": spreads[0] if s in STARTS and STARTS[s][2] == "world" else None}
    fails = (prior_fails, given_fails, *spread_fails)
    return {"n": 1000, "values_per_start": 3072, "rows": [row(s, f) for s, f in zip(starts, fails)]}


def test_leak_summary_names_the_checks_the_start_causes():
    text = leak_summary(_doc(["adherence", "size", "grain"], ["grain"]))
    assert "So adherence and size fail because the start lacks the prompt's share" in text
    assert "What fails from both starts (grain) is not the leak's" in text
    assert "fails adherence, size and grain" in text and "FID_tiny on the evaluation prompts 30.0 → 30.0" in text
    text = leak_summary(_doc(["size"], ["size", "diversity_ratio"]))
    assert "No check fails only because of the start." in text and "also fails diversity_ratio" in text
    assert leak_summary(None).startswith("No leak diagnosis")
    rows = leak_table_rows(_doc(["size"], []))
    assert rows[1]["fails"] == "none" and rows[0]["size"] == "0.850" and rows[0]["grain p90"] == "1.7"


def test_spread_summary_says_what_the_sdxl_spread_removes():
    text = spread_summary(_doc(["adherence", "size", "grain"], ["grain"], ["adherence", "size"], []))
    assert "±0.28% for 65,536 values, not ±1.28% for 3,072" in text and "from 2.40 to 1.70 levels" in text
    assert "So the grain is the start's amplitude spread" in text and "passes every check made here" in text
    assert "the prior fails adherence and size, the prompt's Gaussian nothing" in text
    text = spread_summary(_doc(["grain"], ["grain"], ["grain"], ["grain"]))
    assert "So the grain" not in text and "passes every check" not in text and "Grain still fails" in text
    assert spread_summary(_doc(["size"], [])) == "" and spread_summary(None) == ""


def test_spread_summary_on_a_world_that_declares_the_sdxl_spread():
    """The world's own rows are at SDXL's spread and the last two at the draws' own: the summary reads them the same."""
    doc = _doc(["adherence", "size"], [], ["adherence", "size", "grain"], ["grain"],
               starts=[list(STARTS)[i] for i in (0, 1, 4, 5)], spreads=(0.0028, None))
    text = spread_summary(doc)
    assert text.startswith("This world's prior declares an SDXL latent's amplitude spread")
    assert "from 2.40 to 1.70 levels" in text and "So the grain is the start's amplitude spread" in text
    assert "the prior fails adherence and size, the prompt's Gaussian nothing" in text
    assert [r["start"] for r in leak_table_rows(doc)][2:] == ["prior, own spread", "Gaussian q(x_T | c), own spread"]


def test_starts_for_a_world_pick_its_prior_and_the_other_spread(tiny_world):
    import dataclasses

    from divdistill.tiny.schedule import SDXL_SPREAD

    spread = dataclasses.replace(tiny_world, prior_spread=SDXL_SPREAD)
    plain = dataclasses.replace(tiny_world, prior_spread=None)
    assert [STARTS[s][2] for s in starts_for(spread)] == ["world", "world", "own", "own"]
    assert [STARTS[s][2] for s in starts_for(plain)] == ["world", "world", "sdxl", "sdxl"]
    assert [start_spread(spread, s) for s in starts_for(spread)] == [SDXL_SPREAD, SDXL_SPREAD, None, None]
    assert [start_spread(plain, s) for s in starts_for(plain)] == [None, None, SDXL_SPREAD, SDXL_SPREAD]
