"""DTPreview: x̂0 previews for any diffusers pipeline through callback_on_step_end (paper Fig. 3 DT)."""
import pytest
import torch

from divdistill import base, load_world, run_plan
from divdistill.preview import DTPreview, UNetCalls, bound_size
from sdxl_fixture import build_tiny_sdxl

PROMPTS, SEEDS = ["a photo of a cat", "a red bicycle"], [41337, 63155]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return load_world("sdxl", device="cpu", models=(), sources=build_tiny_sdxl(str(tmp_path_factory.mktemp("sdxl"))))


def _run(pipe, rec, steps=4, guidance=5.0, **kw):
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    with rec:
        return pipe(PROMPTS, num_inference_steps=steps, guidance_scale=guidance, generator=gens,
                    callback_on_step_end=rec, **kw).images


def test_last_preview_is_the_pipelines_output_latents(world):
    pipe = world.extras["pipeline"]
    rec = DTPreview(pipe, decoder="identity", max_size=None)
    latents = _run(pipe, rec, output_type="latent")
    assert sorted(rec.previews) == [0, 1, 2, 3] and list(rec.timesteps.values()) == [751, 501, 251, 1]
    torch.testing.assert_close(rec.previews[3], latents.float(), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(rec.previews[0], latents.float(), atol=1e-2)  # step 0 is a different prediction


def test_previews_equal_run_plans_dt_for_a_deterministic_scheduler(world):
    pipe = world.extras["pipeline"]
    rec = DTPreview(pipe, decoder="vae")
    _run(pipe, rec, output_type="latent")
    res = run_plan(world, base(world, n=4, guidance=5.0), PROMPTS, SEEDS)
    torch.testing.assert_close(rec.stack(), res.dt, atol=1e-4, rtol=1e-4)


def test_steps_size_and_decoder_options(world):
    pipe = world.extras["pipeline"]
    rec = DTPreview(pipe, steps=[0, 2], max_size=8, decoder=lambda z: z[:, :3])
    _run(pipe, rec, guidance=1.0, output_type="latent")  # no CFG batch: one UNet pass per step
    assert sorted(rec.previews) == [0, 2] and rec.previews[0].shape == (2, 3, 8, 8)
    assert bound_size(torch.zeros(1, 3, 40, 20), 10).shape == (1, 3, 10, 5)
    with pytest.raises(ValueError, match="valid: \\['vae', 'taesd', 'identity'\\]"):
        DTPreview(pipe, decoder="jpeg")
    with pytest.raises(RuntimeError, match="context"):
        DTPreview(pipe)(pipe, 0, 999, {"latents": torch.zeros(1)})


def test_unet_calls_record_inputs_and_release_the_hook(world):
    unet = world.spec("base").unet
    with UNetCalls(unet, unet) as calls:
        run_plan(world, base(world, n=2, guidance=5.0), PROMPTS[:1], SEEDS[:1], capture=False)
    assert len(calls.calls) == 2 and calls.calls[0][0].shape[0] == 2  # [uncond; cond] per step
    assert not unet._forward_hooks
