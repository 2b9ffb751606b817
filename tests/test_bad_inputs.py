"""Every bad input of issue 20 gets one clear error naming what was wrong and what is valid; a CLI prints one line
`PROG: error: …` and exits 2 without a traceback (as argparse does)."""
import math

import pytest
import torch

import divdistill as dd
from divdistill.tiny.text import Tokenizer
from divdistill.tiny.world import parse_prompt


@pytest.fixture(scope="module")
def world():
    return dd.load_world("tiny", device="cpu", students=["dmd2"])


@pytest.mark.parametrize("g", [math.nan, math.inf, -math.inf])
def test_hybrid_guidance_must_be_finite(world, g):
    with pytest.raises(ValueError, match="must be a finite number"):
        dd.hybrid(world, "dmd2", base_guidance=g)


@pytest.mark.parametrize("seed, what", [(1.5, "not an integer"), ("x", "not an integer"), (2**70, "out of range"),
                                        (-1, "out of range")])
def test_seeds_are_integers_in_range(world, seed, what):
    with pytest.raises(ValueError, match=rf"seed .* {what}; seeds are integers in \[0, "):
        dd.run_plan(world, dd.distilled(world, "dmd2"), ["a red circle"], [seed])


def test_numpy_and_tensor_seeds_still_work(world):
    import numpy as np

    plan = dd.distilled(world, "dmd2")
    a = dd.run_plan(world, plan, ["a red circle"], [3], capture=False).images
    for s in (np.int64(3), torch.tensor(3)):
        assert torch.equal(dd.run_plan(world, plan, ["a red circle"], [s], capture=False).images, a)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda():
    with pytest.raises(ValueError, match="no CUDA; valid here: auto, cpu"):
        dd.load_world("tiny", device="cuda")


def test_prompts_case_is_normalised_punctuation_rejected():
    """Documented rule (tiny world): prompts are lower-cased; punctuation is no word of the vocabulary, so
    'a red circle.' is rejected with the vocabulary, the same way by the tokenizer and by parse_prompt."""
    tok = Tokenizer()
    assert tok.encode("A Red CIRCLE") == tok.encode("a red circle")
    assert parse_prompt("A Red CIRCLE") == parse_prompt("a red circle")
    for fn in (tok.encode, parse_prompt):
        with pytest.raises(ValueError, match=r"unknown word\(s\) \['circle\.'\]"):
            fn("a red circle.")


def _csv(tmp_path, text, name="p.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


GOOD = "case_number,prompt,evaluation_seed\n0,a red circle,1\n"


@pytest.mark.parametrize("args, message", [
    (["--plan", "hybrid:nope:1"], "unknown tiny student(s) ['nope']"),
    (["--plan", "hyb:dmd2"], "bad plan 'hyb:dmd2'; valid forms: base | distilled:NAME"),
    (["--plan", "base", "--csv", "BAD"], "missing column(s) ['case_number', 'evaluation_seed']"),
    (["--plan", "base", "--csv", "/nonexistent/p.csv"], "prompt CSV '/nonexistent/p.csv' not found"),
    (["--plan", "base", "--n", "-5"], "argument --n: must be a positive integer, got -5"),
    (["--plan", "base", "--csv", "SEED"], "evaluation_seed must be integers, got '0' and 'x'"),
])
def test_generate_cli_one_line_exit_2(tmp_path, capsys, args, message):
    from divdistill.generate import main

    args = list(args)
    if "--csv" not in args:
        args += ["--csv", _csv(tmp_path, GOOD)]
    i = args.index("--csv") + 1
    if args[i] == "BAD":
        args[i] = _csv(tmp_path, "prompt\na red circle\n", "bad.csv")
    elif args[i] == "SEED":
        args[i] = _csv(tmp_path, "case_number,prompt,evaluation_seed\n0,a red circle,x\n", "seed.csv")
    try:
        rc = main([*args, "--out", str(tmp_path / "out"), "--device", "cpu"])
    except SystemExit as e:  # argparse's own errors (a bad --n) exit 2 the same way
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("divdistill-generate: error: ")
    assert message in err


def test_generate_debug_shows_the_traceback(tmp_path):
    from divdistill.generate import main

    with pytest.raises(ValueError, match="bad plan"):
        main(["--plan", "hyb:x", "--csv", _csv(tmp_path, GOOD), "--out", str(tmp_path / "o"), "--debug"])


@pytest.mark.parametrize("module", ["divdistill.generate", "divdistill.evaluation.cli", "divdistill.distill.__main__",
                                    "divdistill.control.__main__"])
def test_help_is_consistent(module, capsys):
    """Every CLI built on divdistill.commandline shows --debug and --device (auto) in --help."""
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--debug" in out and ("--device" in out or "{train" in out)
