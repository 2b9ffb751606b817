"""HybridSwitch: the paper's hybrid (Sec. 5) as a diffusers callback equals run_plan(hybrid(...)) on the SDXL fixture."""
import dataclasses

import pytest
import torch
from diffusers import LCMScheduler, StableDiffusionXLPipeline

import divdistill as dd
from sdxl_fixture import build_tiny_sdxl

PROMPTS, SEEDS, TS = ["a photo of a cat", "a red bicycle"], [41337, 63155], [999, 749, 499, 249]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return build_tiny_sdxl(str(tmp_path_factory.mktemp("sdxl_switch")))


@pytest.fixture(scope="module")
def world(sources):
    return dd.load_world("sdxl", device="cpu", models=("dmd2",), sources=sources)


@pytest.fixture(scope="module")
def lora_world(sources):
    return dd.load_world("sdxl", device="cpu", models=("dmd2",), sources=sources, lora_mode=True)


def lcm_pipe(world):
    """The user's pipeline: the world's SDXL components with the student's scheduler (DMD2: LCM)."""
    pipe = world.extras["pipeline"]
    return StableDiffusionXLPipeline(**{**pipe.components, "scheduler": LCMScheduler.from_config(pipe.scheduler.config)})


def pipe_latents(world, pipe, callback, guidance=0.0):
    """The pipeline's final latents on run_plan's noise: x_T = world.noise(seeds), step noise from seed + 1."""
    gens = [torch.Generator().manual_seed(s + 1) for s in SEEDS]
    return pipe(PROMPTS, timesteps=TS, guidance_scale=guidance, latents=world.noise(SEEDS), generator=gens,
                callback_on_step_end=callback, output_type="latent").images


def plan_latents(world, plan):
    """run_plan's final latents and x̂0 per step (the world without its VAE decode)."""
    res = dd.run_plan(dataclasses.replace(world, decode_fn=None), plan, PROMPTS, SEEDS)
    return res.images, res.dt


@pytest.mark.parametrize("k", [1, 2])
def test_two_unet_switch_equals_run_plan_hybrid(world, k):
    pipe = lcm_pipe(world)
    base = pipe.unet
    got = pipe_latents(world, pipe, dd.HybridSwitch(world.spec("dmd2").unet, after=k))
    want, _ = plan_latents(world, dd.hybrid(world, "dmd2", k=k, base_guidance=0))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert pipe.unet is base  # restored after the last step
    assert not torch.allclose(got, plan_latents(world, dd.distilled(world, "dmd2"))[0], atol=1e-3)


def test_base_cfg_then_student_without_cfg(world):
    pipe = lcm_pipe(world)
    switch = dd.HybridSwitch(world.spec("dmd2").unet, after=2, student_guidance=0)
    got = pipe_latents(world, pipe, switch, guidance=5.0)
    want, _ = plan_latents(world, dd.hybrid(world, "dmd2", k=2, base_guidance=5.0))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_lora_mode_switch_equals_run_plan_hybrid(lora_world):
    pipe = lcm_pipe(lora_world)
    pipe.unet.disable_adapters()
    got = pipe_latents(lora_world, pipe, dd.HybridSwitch("dmd2", after=1))
    assert dd.switch._lora_active(pipe.unet) == []  # back to the base after the run
    want, _ = plan_latents(lora_world, dd.hybrid(lora_world, "dmd2", k=1, base_guidance=0))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    pipe.unet.disable_adapters()  # run_plan's last step left the student's adapter on
    with pytest.raises(RuntimeError, match="active during the base's first step.*disable_lora"):
        pipe.unet.enable_adapters()
        pipe_latents(lora_world, pipe, dd.HybridSwitch("dmd2", after=1))
    pipe.unet.disable_adapters()
    with pytest.raises(ValueError, match="no adapter 'turbo'.*loaded adapters: \\['dmd2'\\]"):
        pipe_latents(lora_world, pipe, dd.HybridSwitch("turbo", after=1))


def test_composes_with_dt_preview(world):
    pipe = lcm_pipe(world)
    rec = dd.DTPreview(pipe, decoder="identity", max_size=None)
    switch = dd.HybridSwitch(world.spec("dmd2").unet, after=1, preview=rec)
    with rec:
        got = pipe_latents(world, pipe, switch)
    assert not world.spec("dmd2").unet._forward_hooks  # the student's hook left with the context
    want, dt = plan_latents(world, dd.hybrid(world, "dmd2", k=1, base_guidance=0))
    torch.testing.assert_close(rec.stack(), dt, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_bad_inputs_get_clear_errors(world):
    student = world.spec("dmd2").unet
    with pytest.raises(TypeError, match="UNet .* or its LoRA adapter's name"):
        dd.HybridSwitch(3)
    with pytest.raises(ValueError, match="k = 0 is the student alone"):
        dd.HybridSwitch(student, after=0)
    with pytest.raises(ValueError, match="student_guidance must be"):
        dd.HybridSwitch(student, student_guidance=-1)
    pipe = lcm_pipe(world)
    with pytest.raises(ValueError, match="after=5 base steps do not fit this 4-step run; valid after is 1..4"):
        pipe_latents(world, pipe, dd.HybridSwitch(student, after=5))
    with pytest.raises(ValueError, match="needs CFG, but the base steps ran without it"):
        pipe_latents(world, pipe, dd.HybridSwitch(student, after=1, student_guidance=3.0))
    pipe.unet = student
    with pytest.raises(RuntimeError, match="already the student"):
        pipe_latents(world, pipe, dd.HybridSwitch(student, after=1))
