"""The one noise schedule (issue 8): SNR shift, diffusers compatibility, schedules travel with models, variants."""
import json
import os
import shutil

import pytest
import torch
from diffusers import DDPMScheduler

from divdistill import distilled, load_world, run_plan
from divdistill.registry import ModelSpec, World, scheduler_factory
from divdistill.tiny.loader import SCHEDULERS, VARIANTS, load_tiny_world, variant_dir
from divdistill.tiny.schedule import (SD_SCHEDULE, SNR_FACTOR, alphas_cumprod, betas_from_alphas_cumprod,
                                      diffusers_config, save_schedule, scheduler_config, sd_alphas_cumprod, shifted,
                                      snr)
from conftest import STUDENT_TS, _unet


def test_shifted_schedule_multiplies_snr_exactly_at_every_t():
    base = snr(sd_alphas_cumprod())
    for s in (0.5, SNR_FACTOR, 100.0):
        assert torch.allclose(snr(shifted(s)) / base, torch.full_like(base, s), rtol=1e-9, atol=0)
    for s in (0.5, SNR_FACTOR):  # what a diffusers scheduler rebuilds from trained_betas, in float32
        a = alphas_cumprod(scheduler_config(s))[:-1]
        assert torch.allclose(snr(a) / base, torch.full_like(base, s), rtol=2e-3)
    assert SNR_FACTOR == pytest.approx(65536 / 3072)


def test_factor_one_reproduces_diffusers_scaled_linear():
    ref = DDPMScheduler(**SD_SCHEDULE).alphas_cumprod.double()
    assert (shifted(1.0) - ref).abs().max() < 1e-6
    via_betas = {**SD_SCHEDULE, "trained_betas": betas_from_alphas_cumprod(shifted(1.0))}
    assert (alphas_cumprod(via_betas)[:-1].double() - ref).abs().max() < 1e-6
    assert scheduler_config(1.0) == SD_SCHEDULE
    with pytest.raises(ValueError, match="snr_factor must be > 0"):
        shifted(0)


def test_every_registry_scheduler_runs_a_4_step_plan_on_the_shifted_schedule():
    cfg = diffusers_config(scheduler_config(SNR_FACTOR))
    emb = torch.zeros(1, 4, 16)

    def encode(prompts):
        from divdistill.registry import Conditioning
        e = emb.expand(len(prompts), -1, -1)
        return Conditioning({"encoder_hidden_states": e}, {"encoder_hidden_states": e})

    unet = _unet(3)
    specs = {"base": ModelSpec("base", unet, scheduler_factory(SCHEDULERS["DDIMScheduler"], cfg,
                                                               timestep_spacing="trailing"), 4, 1.0, role="base")}
    for name, cls in SCHEDULERS.items():
        over = {} if name in ("LCMScheduler", "DDPMScheduler") else {"timestep_spacing": "trailing"}
        specs[name] = ModelSpec(name, unet, scheduler_factory(cls, cfg, **over), 4, 0.0, timesteps=STUDENT_TS)
    world = World("tiny", "base", specs, torch.device("cpu"), torch.float32, (3, 32, 32), encode)
    for name in SCHEDULERS:
        sched = specs[name].make_scheduler()
        assert torch.allclose(sched.alphas_cumprod.double(), shifted(SNR_FACTOR), rtol=1e-4), name
        img = run_plan(world, distilled(world, name), ["p"], [0], capture=False).images
        assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all(), name


def _world_copy(tmp_path, teacher_factor, student_factor):
    """A world folder: the committed sd-schedule teacher's weights, with the given schedules saved beside them."""
    src = variant_dir("sd-schedule")
    root = tmp_path / "world"
    for part in ("unet", "text_encoder"):
        shutil.copytree(os.path.join(src, "teacher", part), root / "teacher" / part)
    save_schedule(str(root / "teacher"), scheduler_config(teacher_factor))
    st = root / "students" / "lcm"
    shutil.copytree(os.path.join(src, "students", "lcm", "unet"), st / "unet")
    shutil.copy(os.path.join(src, "students", "lcm", "student.json"), st / "student.json")
    save_schedule(str(st), scheduler_config(student_factor))
    return root


def test_loaded_models_carry_their_own_schedule(tmp_path):
    root = _world_copy(tmp_path, SNR_FACTOR, 2.0)
    w = load_tiny_world(str(root))
    a_base = w.spec("base").make_scheduler().alphas_cumprod.double()
    a_student = w.spec("lcm").make_scheduler().alphas_cumprod.double()
    assert torch.allclose(a_base, shifted(SNR_FACTOR), rtol=1e-4)
    assert torch.allclose(a_student, shifted(2.0), rtol=1e-4)
    assert w.extras["schedule"]["snr_factor"] == pytest.approx(SNR_FACTOR)
    os.remove(root / "students" / "lcm" / "scheduler.json")
    with pytest.raises(FileNotFoundError, match="scheduler.json"):
        load_tiny_world(str(root))


def test_variants_load_and_unknown_variant_lists_the_valid_ones():
    w = load_world("tiny", device="cpu", variant="sd-schedule", students=["dmd2"])
    assert w.extras["variant"] == "sd-schedule" and os.path.isdir(w.extras["evaluator_root"])
    assert w.extras["schedule"] == json.load(open(os.path.join(variant_dir("sd-schedule"), "teacher",
                                                               "scheduler.json")))
    with pytest.raises(ValueError, match=r"unknown tiny-world variant 'nope'.*" + "sd-schedule"):
        load_world("tiny", device="cpu", variant="nope")
    assert set(VARIANTS) >= {"sd-schedule", "snr-matched"}
