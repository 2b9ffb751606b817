"""The tiny world: generator, tokenizer, trainers (smoke + resume), evaluator, committed checkpoints."""
import os

import pytest
import torch

from divdistill import base, run_plan
from divdistill.tiny import SHAPES, STYLES, Tokenizer, parse_prompt, sample_scenes, scenes_for_prompt
from divdistill.tiny.evaluator import Evaluator, EvaluatorConfig, evaluator_loss, train_evaluator
from divdistill.tiny.teacher import TeacherConfig, train_teacher
from divdistill.tiny.world import SMALL_LARGE_SPLIT


def test_generator_is_deterministic_and_seed_sensitive():
    a, b, c = sample_scenes(64, seed=3), sample_scenes(64, seed=3), sample_scenes(64, seed=4)
    assert torch.equal(a.images, b.images) and a.prompts == b.prompts
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (64, 3, 32, 32) and a.images.min() >= -1 and a.images.max() <= 1


def test_prompts_agree_with_labels_and_pretraining_excludes_held_out_concepts():
    sc = sample_scenes(500, seed=0)
    assert SHAPES.index("star") not in sc.shape.tolist() and STYLES.index("outlined") not in sc.style.tolist()
    for i, p in enumerate(sc.prompts):
        spec = parse_prompt(p)
        for k in ("shape", "color", "bg", "style"):
            assert spec[k] is None or spec[k] == int(getattr(sc, k)[i]), (p, k)
        if spec["size"] is not None:
            assert spec["size"] == int(sc.size[i] >= SMALL_LARGE_SPLIT)
    assert len(set(sc.prompts)) > 50  # prompts name a random subset of factors


def test_scenes_for_prompt_fix_named_factors_only():
    sc = scenes_for_prompt("a large blue square on a dark background", 50, seed=1)
    assert set(sc.shape.tolist()) == {SHAPES.index("square")} and (sc.size >= SMALL_LARGE_SPLIT).all()
    assert sc.x.std() > 1 and sc.y.std() > 1  # unnamed position still varies
    held_out = scenes_for_prompt("a outlined star", 8, seed=0)
    assert set(held_out.shape.tolist()) == {SHAPES.index("star")} and set(held_out.style.tolist()) == {1}


def test_tokenizer_round_trip_and_empty_prompt():
    tok = Tokenizer()
    p = "a large outlined red circle on a dark background"
    assert tok.decode(tok.encode(p)) == p
    empty = tok.encode("")
    assert empty[0] == tok.index["<bos>"] and set(empty[1:]) == {tok.index["<pad>"]}
    assert tok(["a shape", ""]).shape == (2, tok.max_len)


def test_unknown_word_names_the_word_and_the_vocabulary():
    with pytest.raises(ValueError, match=r"unknown word\(s\) \['hexagon'\].*vocabulary is \[.*'circle'"):
        Tokenizer().encode("a red hexagon")


def test_bad_inputs_get_clear_errors():
    ev = Evaluator(width=16)
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\).*got \(2, 1, 32, 32\)"):
        ev(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"got \(2, 3, 64, 64\)"):
        ev(torch.zeros(2, 3, 64, 64))
    with pytest.raises(ValueError, match="unknown shape/style"):
        sample_scenes(4, 0, shapes=("hexagon",))
    with pytest.raises(ValueError, match="steps and batch"):
        TeacherConfig(steps=0)


def test_teacher_loss_decreases_on_a_fixed_batch():
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from divdistill.tiny.schedule import SD_SCHEDULE
    from divdistill.tiny.teacher import diffusion_loss, unet_config
    from divdistill.tiny.text import TextEncoder

    torch.manual_seed(0)
    unet, enc, tok = UNet2DConditionModel(**unet_config(8, 16)), TextEncoder(dim=16), Tokenizer()
    opt = torch.optim.Adam(list(unet.parameters()) + list(enc.parameters()), 2e-3)
    sc = sample_scenes(16, seed=0)
    t, noise = torch.randint(0, 1000, (16,)), torch.randn(16, 3, 32, 32)
    losses = []
    for _ in range(25):
        loss = diffusion_loss(unet, enc, tok, sc.images, sc.prompts, t, noise, DDPMScheduler(**SD_SCHEDULE))
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_evaluator_loss_decreases():
    torch.manual_seed(0)
    ev, sc = Evaluator(width=16), sample_scenes(32, seed=0)
    opt = torch.optim.Adam(ev.parameters(), 3e-3)
    losses = []
    for _ in range(25):
        loss = evaluator_loss(ev, sc)
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_killed_teacher_run_resumes_exactly(tmp_path):
    cfg = dict(batch=4, width=8, text_dim=16, ckpt_every=2)
    train_teacher(str(tmp_path / "straight"), TeacherConfig(steps=4, **cfg), progress=False)
    train_teacher(str(tmp_path / "killed"), TeacherConfig(steps=2, **cfg), progress=False)  # "killed" after step 2
    state = torch.load(tmp_path / "killed" / "train_state.pt", weights_only=False)
    assert state["step"] == 2
    train_teacher(str(tmp_path / "killed"), TeacherConfig(steps=4, **cfg), progress=False)  # resumes at step 2
    a = torch.load(tmp_path / "straight" / "train_state.pt", weights_only=False)
    b = torch.load(tmp_path / "killed" / "train_state.pt", weights_only=False)
    assert b["step"] == 4 and len(b["losses"]) == 4 and a["losses"] == b["losses"]
    assert b["losses"] == a["losses"]
    for k in a["parts"]["ema"]:
        assert torch.equal(a["parts"]["ema"][k], b["parts"]["ema"][k]), k


def test_teacher_width_is_checked_and_carried_by_the_cli(tmp_path):
    """--width (issue 19's wider-UNet remedy): a multiple of 8, never silently mixed with a fine-tune's start, and
    recorded in the run's provenance."""
    import json

    from divdistill.tiny.__main__ import main

    with pytest.raises(ValueError, match="multiple of 8"):
        TeacherConfig(width=12)
    cfg = dict(steps=1, batch=2, text_dim=16, ckpt_every=2)
    train_teacher(str(tmp_path / "w8"), TeacherConfig(width=8, **cfg), progress=False)
    with pytest.raises(ValueError, match="width-8 teacher; this run asks for width 16"):
        train_teacher(str(tmp_path / "w16"), TeacherConfig(width=16, init_from=str(tmp_path / "w8"), **cfg),
                      progress=False)
    assert main(["train-teacher", "--width", "8", "--steps", "1", "--batch", "2", "--out", str(tmp_path / "cli")]) == 0
    rec = json.loads((tmp_path / "cli" / "provenance.json").read_text())
    assert rec["config"]["width"] == 8 and rec["config"]["unet"]["block_out_channels"] == [8, 16, 32]
    assert main(["train-teacher", "--width", "20", "--steps", "1", "--out", str(tmp_path / "bad")]) == 2


def test_killed_evaluator_run_resumes_exactly(tmp_path, monkeypatch):
    import divdistill.tiny.evaluator as E

    cfg = EvaluatorConfig(steps=4, batch=8, width=16, ckpt_every=2)
    train_evaluator(str(tmp_path / "straight"), cfg, progress=False)
    real, calls = E.evaluator_loss, []

    def dies_at_step_3(model, sc):  # the process is killed during step 3, after the step-2 checkpoint
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(model, sc)

    monkeypatch.setattr(E, "evaluator_loss", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train_evaluator(str(tmp_path / "killed"), cfg, progress=False)
    monkeypatch.setattr(E, "evaluator_loss", real)
    assert torch.load(tmp_path / "killed" / "train_state.pt", weights_only=False)["step"] == 2
    train_evaluator(str(tmp_path / "killed"), cfg, progress=False)  # resumes at step 2
    a = torch.load(tmp_path / "straight" / "train_state.pt", weights_only=False)
    b = torch.load(tmp_path / "killed" / "train_state.pt", weights_only=False)
    assert b["step"] == 4 and a["losses"] == b["losses"]
    for k in a["parts"]["model"]:
        assert torch.equal(a["parts"]["model"][k], b["parts"]["model"][k]), k


def test_evaluator_training_writes_provenance(tmp_path):
    res = train_evaluator(str(tmp_path), EvaluatorConfig(steps=3, batch=8, width=16), progress=False)
    import json

    prov = json.load(open(tmp_path / "provenance.json"))
    assert prov["steps"] == 3 and prov["metrics"]["n"] == 2000 and "git_commit" in prov
    assert 0 <= res["acc_shape"] <= 1


def test_committed_world_loads_and_samples_deterministically(tiny_world):
    plan = base(tiny_world, n=5)
    a = run_plan(tiny_world, plan, ["a red circle", "a shape"], [7, 8]).images
    b = run_plan(tiny_world, plan, ["a red circle", "a shape"], [7, 8]).images
    assert torch.equal(a, b) and a.shape == (2, 3, 32, 32)


def test_committed_checkpoints_have_provenance():
    import json

    from divdistill.tiny.loader import evaluator_dir, variant_dir

    for path in (os.path.join(variant_dir("sd-schedule"), "teacher"), evaluator_dir()):
        prov = json.load(open(os.path.join(path, "provenance.json")))
        assert {"config", "seed", "steps", "wall_time_s", "git_commit", "metrics"} <= set(prov)
        assert prov["metrics"], path


def test_teacher_lr_schedule_warms_up_holds_and_decays_to_zero():
    """The decay tail leaves every earlier step's learning rate as the constant recipe's, so a run extended by it
    equals one trained with it from the start; decay_steps = 0 is the committed teachers' recipe."""
    from divdistill.tiny.teacher import TeacherConfig, teacher_lr

    flat, tail = TeacherConfig(steps=6500), TeacherConfig(steps=7500, decay_steps=1000)
    assert [teacher_lr(flat, s) for s in range(0, 7500, 50)][:130] == [teacher_lr(tail, s) for s in range(0, 6500, 50)]
    assert teacher_lr(tail, 99) == pytest.approx(0.5e-3) and teacher_lr(flat, 7499) == 1e-3
    lrs = [teacher_lr(tail, s) for s in range(6500, 7500)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[0] > 0.99e-3 and lrs[-1] == 0.0
    with pytest.raises(ValueError, match="decay_steps must be in"):
        TeacherConfig(steps=10, decay_steps=11)


def test_committed_data_stays_under_its_budget():
    """data/ ≤ 60 MB (issue 19): every file git tracks there, or every file on disk but training state without git."""
    import subprocess

    root = os.path.join(os.path.dirname(__file__), "..")
    try:
        files = subprocess.run(["git", "ls-files", "-z", "data"], cwd=root, capture_output=True, check=True,
                               text=True).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):
        files = [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(os.path.join(root, "data"))
                 for f in fs if f != "train_state.pt"]
    total = sum(os.path.getsize(os.path.join(root, f)) for f in files if f and os.path.exists(os.path.join(root, f)))
    assert 1e6 < total <= 60e6, f"data/ holds {total / 1e6:.1f} MB; the budget is 60 MB"
