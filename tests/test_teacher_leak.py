"""The acceptance with the leak at t = 999 removed to second order (chapters/tiny_world/leak.py): the prior's start is
the acceptance's own images, the prompt's Gaussian changes them, the checks and the page's summary are computed."""
import pytest
import torch

from divdistill.chapters.tiny_world.leak import STARTS, _images, diagnose_leak, start_kind
from divdistill.chapters.tiny_world.size_report import leak_summary, leak_table_rows, spread_summary
from divdistill.plan import base
from divdistill.sampling import generate
from divdistill.tiny.evaluator import load_evaluator
from divdistill.tiny.quality import EVAL_PROMPTS, prompt_set


def test_prior_start_is_the_acceptance_set_and_the_prompts_gaussian_differs(tiny_world):
    prompts, seeds = prompt_set(2, EVAL_PROMPTS[1:2])  # two images of one prompt
    with torch.no_grad():
        mine = _images(tiny_world, prompts, seeds, False, 400, 0, batch=2)
        theirs = generate(tiny_world, base(tiny_world), prompts, seeds).images  # what `tiny evaluate` samples
        given = _images(tiny_world, prompts, seeds, True, 400, 0, batch=1)
    assert torch.allclose(mine, theirs, atol=1e-5)
    assert not torch.allclose(mine, given, atol=1e-2)
    assert torch.allclose(given, _images(tiny_world, prompts, seeds, True, 400, 0, batch=2), atol=1e-5)  # per image
    spread = _images(tiny_world, prompts, seeds, False, 400, 0, batch=2, sdxl_spread=True)
    assert not torch.allclose(mine, spread, atol=1e-3) and (mine - spread).abs().max() < 0.5  # the same draws, nudged


def test_diagnose_leak_rows_and_checks(tiny_world):
    ev = load_evaluator(tiny_world.extras["evaluator_root"])
    d = diagnose_leak(tiny_world, ev, n=2, moment_scenes=400, prompts=EVAL_PROMPTS[1:2])
    assert [r["start"] for r in d["rows"]] == list(STARTS) and d["n"] == 2
    for r in d["rows"]:
        assert 0 <= r["adherence"] <= 1 and r["diversity_ratio"] > 0 and "fid" not in r["fails"]
        assert set(r["fails"]) <= {"adherence", "bg", "color", "shape", "size", "style", "diversity_ratio", "grain"}
    assert [r["start"] for r in leak_table_rows(d)] == ["prior", "Gaussian q(x_T | c)", "prior, SDXL's spread",
                                                        "Gaussian q(x_T | c), SDXL's spread"]
    assert d["values_per_start"] == 3 * 32 * 32
    assert [start_kind(s) for s in STARTS] == [(False, False), (True, False), (False, True), (True, True)]
    with pytest.raises(ValueError, match="unknown start"):
        start_kind("a real scene")


def _doc(prior_fails, given_fails, *spread_fails):
    row = lambda s, f: {"start": s, "n": 1000, "adherence": 0.94, "adherence_bg": 1.0, "adherence_size": 0.85,  # noqa
                        "diversity_ratio": 1.0, "teacher_grain_p90": 2.4 if "grain" in f else 1.7,
                        "teacher_grain_visible_frac": 0.1, "fid_eval_prompts": 30.0, "fails": f}
    fails = (prior_fails, given_fails, *spread_fails)
    return {"n": 1000, "values_per_start": 3072, "rows": [row(s, f) for s, f in zip(STARTS, fails)]}


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
