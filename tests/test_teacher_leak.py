"""The acceptance with the leak at t = 999 removed to second order (chapters/tiny_world/leak.py): the prior's start is
the acceptance's own images, the prompt's Gaussian changes them, the checks and the page's summary are computed."""
import pytest
import torch

from divdistill.chapters.tiny_world.leak import STARTS, _images, diagnose_leak
from divdistill.chapters.tiny_world.size_report import leak_summary, leak_table_rows
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


def test_diagnose_leak_rows_and_checks(tiny_world):
    ev = load_evaluator(tiny_world.extras["evaluator_root"])
    d = diagnose_leak(tiny_world, ev, n=4, moment_scenes=400, prompts=EVAL_PROMPTS[1:3])
    assert [r["start"] for r in d["rows"]] == list(STARTS) and d["n"] == 4
    for r in d["rows"]:
        assert 0 <= r["adherence"] <= 1 and r["diversity_ratio"] > 0 and "fid" not in r["fails"]
        assert set(r["fails"]) <= {"adherence", "bg", "color", "shape", "size", "style", "diversity_ratio", "grain"}
    assert [r["start"] for r in leak_table_rows(d)] == ["prior", "Gaussian q(x_T | c)"]


def _doc(prior_fails, given_fails):
    row = lambda s, f: {"start": s, "n": 1000, "adherence": 0.94, "adherence_bg": 1.0, "adherence_size": 0.85,  # noqa
                        "diversity_ratio": 1.0, "teacher_grain_p90": 2.4, "fid_eval_prompts": 30.0, "fails": f}
    return {"n": 1000, "rows": [row(STARTS[0], prior_fails), row(STARTS[1], given_fails)]}


def test_leak_summary_names_the_checks_the_start_causes():
    text = leak_summary(_doc(["adherence", "size", "grain"], ["grain"]))
    assert "So adherence and size fail because the start lacks the prompt's share" in text
    assert "What fails from both starts (grain) is not the leak's" in text
    assert "fails adherence, size and grain" in text and "FID_tiny on the evaluation prompts 30.0 → 30.0" in text
    text = leak_summary(_doc(["size"], ["size", "diversity_ratio"]))
    assert "No check fails only because of the start." in text and "also fails diversity_ratio" in text
    assert leak_summary(None).startswith("No leak diagnosis")
    rows = leak_table_rows(_doc(["size"], []))
    assert rows[1]["fails"] == "none" and rows[0]["size"] == "0.850" and rows[0]["grain p90"] == "2.4"
