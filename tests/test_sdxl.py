"""The sdxl path on a tiny random-weight SDXL-architecture pipeline saved to disk and loaded by the real loader."""
import pytest
import torch
from diffusers import StableDiffusionXLPipeline

from divdistill import ModelUnavailableError, base, distilled, hybrid, load_world, run_plan
from conftest import CallRecorder
from sdxl_fixture import build_tiny_sdxl

PROMPTS, SEEDS = ["a photo of a cat", "a red bicycle"], [41337, 63155]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return build_tiny_sdxl(str(tmp_path_factory.mktemp("tiny_sdxl")))


@pytest.fixture(scope="module")
def world(sources):
    return load_world("sdxl", device="cpu", models=("dmd2",), sources=sources)


def test_loader_builds_registry_with_paper_schedules(world):
    assert world.names == ["base", "dmd2"]
    assert distilled(world, "dmd2").timesteps == [999, 749, 499, 249]
    assert type(world.spec("dmd2").make_scheduler()).__name__ == "LCMScheduler"
    assert world.spec("dmd2").unet is not world.spec("base").unet  # two-UNet mode


def test_base_plan_matches_diffusers_pipeline(world, sources):
    pipe = StableDiffusionXLPipeline.from_pretrained(sources["base"])
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    latents = pipe(PROMPTS, num_inference_steps=4, guidance_scale=5.0, generator=gens, output_type="latent").images
    ours = run_plan(world, base(world, n=4, guidance=5.0), PROMPTS, SEEDS)
    torch.testing.assert_close(ours.images, world.decode(latents), atol=1e-4, rtol=1e-4)
    assert ours.nfe == 8


def test_hybrid_calls_base_then_student_and_keeps_nfe(world):
    log = []
    hooks = [CallRecorder(world.spec(n).unet, log, n).handle for n in ("base", "dmd2")]
    try:
        res = run_plan(world, hybrid(world, "dmd2", k=1), PROMPTS, SEEDS)
    finally:
        for h in hooks:
            h.remove()
    assert [n for n, _ in log] == ["base", "dmd2", "dmd2", "dmd2"]
    assert res.nfe == run_plan(world, distilled(world, "dmd2"), PROMPTS, SEEDS, capture=False).nfe == 4
    assert res.dt.shape[:2] == (4, 2) and res.dt.shape[2] == 3  # decoded through the VAE
    torch.testing.assert_close(res.dt[-1], res.images)


def test_lora_mode_toggles_adapters_on_one_unet(sources, world):
    lw = load_world("sdxl", device="cpu", models=("dmd2",), lora_mode=True, sources=sources)
    unet = lw.spec("base").unet
    assert lw.spec("dmd2").unet is unet and lw.spec("dmd2").adapter == "dmd2"
    lora_layer = next(m for m in unet.modules() if hasattr(m, "lora_A") and len(m.lora_A))
    states = []
    h = unet.register_forward_pre_hook(lambda m, a: states.append(lora_layer.disable_adapters))
    try:
        res = run_plan(lw, hybrid(lw, "dmd2", k=1), PROMPTS, SEEDS)
    finally:
        h.remove()
    assert states == [True, False, False, False]  # base: adapters off; student: on
    assert not lora_layer.merged  # never fused
    assert res.nfe == 4
    pure_base = run_plan(lw, base(lw, n=4, guidance=5.0), PROMPTS, SEEDS).images
    torch.testing.assert_close(pure_base, run_plan(world, base(world, n=4, guidance=5.0), PROMPTS, SEEDS).images)
    student = run_plan(lw, distilled(lw, "dmd2"), PROMPTS, SEEDS).images
    assert not torch.allclose(student, run_plan(lw, distilled(lw, "base", timesteps=[999, 749, 499, 249], guidance=0),
                                                PROMPTS, SEEDS).images)


def test_missing_weights_give_one_clear_error(tmp_path):
    with pytest.raises(ModelUnavailableError, match="scale='tiny'"):
        load_world("sdxl", device="cpu", sources={"base": str(tmp_path / "nowhere")})


def test_unknown_sdxl_model_lists_valid_ones(sources):
    with pytest.raises(KeyError, match="valid: \\['dmd2', 'lcm', 'lightning', 'turbo'\\]"):
        load_world("sdxl", device="cpu", models=("sdxl-flash",), sources=sources)


def test_lora_mode_rejects_models_without_lora(sources):
    with pytest.raises(ValueError, match="no LoRA release"):
        load_world("sdxl", device="cpu", models=("turbo",), lora_mode=True, sources=sources)


def test_unknown_scale():
    with pytest.raises(ValueError, match="valid scales"):
        load_world("sd3")
