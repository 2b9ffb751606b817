"""Paper-scale world: SDXL-base-1.0 and the paper's distilled students (DMD2, Turbo, Lightning, LCM) from the hub."""
from __future__ import annotations

import os

import torch

from .registry import Conditioning, ModelSpec, ModelUnavailableError, World, scheduler_factory

BASE_ID = "stabilityai/stable-diffusion-xl-base-1.0"
FP16_VAE_ID = "madebyollin/sdxl-vae-fp16-fix"
# name → where its weights live, which scheduler and schedule it samples with (../shared/notes/paper-scale-models.md)
SDXL_MODELS = {
    "dmd2": dict(repo="tianweiy/DMD2", file="dmd2_sdxl_4step_unet_fp16.bin", scheduler="LCMScheduler",
                 timesteps=(999, 749, 499, 249), guidance=0.0, lora=("tianweiy/DMD2", "dmd2_sdxl_4step_lora_fp16.safetensors"),
                 notes="DMD2 README schedule; the paper's hybrid code used LCM's default grid 999/759/499/259"),
    "turbo": dict(repo="stabilityai/sdxl-turbo", subfolder="unet", variant="fp16", scheduler="EulerAncestralDiscreteScheduler",
                  overrides={"timestep_spacing": "trailing"}, n_steps=4, guidance=0.0, resolution=512),
    "lightning": dict(repo="ByteDance/SDXL-Lightning", file="sdxl_lightning_4step_unet.safetensors",
                      scheduler="EulerDiscreteScheduler", overrides={"timestep_spacing": "trailing"}, n_steps=4,
                      guidance=0.0, lora=("ByteDance/SDXL-Lightning", "sdxl_lightning_4step_lora.safetensors")),
    "lcm": dict(repo="latent-consistency/lcm-sdxl", variant="fp16", scheduler="LCMScheduler", n_steps=4, guidance=8.0,
                guidance_mode="embed", lora=("latent-consistency/lcm-lora-sdxl", "pytorch_lora_weights.safetensors"),
                notes="guidance enters as LCM's w-embedding (w = guidance − 1); the paper's code used 0 (w = −1)"),
}
BASE_STEPS, BASE_GUIDANCE = 50, 7.0


def _fail(name: str, src: str, err: Exception) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"could not load {name!r} from {src!r} ({type(err).__name__}: {str(err)[:300]}). No model hub is reachable "
        f"from this machine, or the files are missing. Use scale='tiny' (the shipped toy world), or pass "
        f"sources={{'{name}': '/local/path'}} to load_world.")


def _scheduler_cls(name: str):
    import diffusers

    return getattr(diffusers, name)


def _load_file(path: str) -> dict:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _resolve(src: str, filename: str) -> str:
    """A file inside a local folder, or fetched from the hub (cached) when `src` is a repo id."""
    if os.path.isdir(src):
        return os.path.join(src, filename)
    from huggingface_hub import hf_hub_download

    return hf_hub_download(src, filename)


def _student_unet(name, info, src, base_unet, dtype, device):
    from diffusers import UNet2DConditionModel

    if "file" in info:
        unet = UNet2DConditionModel.from_config(base_unet.config)
        unet.load_state_dict(_load_file(_resolve(src, info["file"])))
        return unet.to(device, dtype).eval().requires_grad_(False)
    kw = {"subfolder": info["subfolder"]} if "subfolder" in info else {}
    if "variant" in info and not os.path.isdir(src) and dtype == torch.float16:
        kw["variant"] = info["variant"]
    return UNet2DConditionModel.from_pretrained(src, torch_dtype=dtype, **kw).to(device).eval().requires_grad_(False)


def load_sdxl_world(device="cuda", models=("dmd2",), lora_mode: bool = False, dtype=None, sources=None,
                    height: int | None = None) -> World:
    """SDXL-base plus the named students; lora_mode=True keeps ONE UNet and toggles each student's LoRA.

    Args:
        device: torch device.
        models: student names from SDXL_MODELS.
        lora_mode: load LoRA students onto the base UNet (adapters unfused) instead of a second UNet.
        dtype: default fp16 on CUDA (with the fp16-safe VAE), fp32 on CPU.
        sources: {name: hub id or local folder} overrides, "base" and "vae" included (offline mirrors, tests).
        height: image side in pixels; default the UNet's native size (1024 for SDXL-base).
    """
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline

    unknown = [m for m in models if m not in SDXL_MODELS]
    if unknown:
        raise KeyError(f"unknown sdxl model(s) {unknown}; valid: {sorted(SDXL_MODELS)}")
    device = torch.device(device)
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    sources = dict(sources or {})
    src = sources.get("base", BASE_ID)
    try:
        kw = {"variant": "fp16"} if dtype == torch.float16 and not os.path.isdir(src) else {}
        if dtype == torch.float16:
            kw["vae"] = AutoencoderKL.from_pretrained(sources.get("vae", FP16_VAE_ID), torch_dtype=dtype)
        pipe = StableDiffusionXLPipeline.from_pretrained(src, torch_dtype=dtype, **kw).to(device)
    except Exception as e:  # hub/network/file errors all surface as one actionable message
        raise _fail("base", src, e) from e
    pipe.unet.eval().requires_grad_(False)
    base_cfg = pipe.scheduler.config
    specs = {"base": ModelSpec("base", pipe.unet, scheduler_factory(type(pipe.scheduler), base_cfg), BASE_STEPS,
                               BASE_GUIDANCE, role="base", notes="SDXL-base-1.0, its own Euler scheduler, CFG 7")}
    for name in models:
        specs[name] = _student_spec(name, pipe, base_cfg, sources, lora_mode, dtype, device)
    height = height or pipe.default_sample_size * pipe.vae_scale_factor
    side = height // pipe.vae_scale_factor
    return World("sdxl", "base", specs, device, dtype, (pipe.unet.config.in_channels, side, side),
                 lambda prompts: _encode(pipe, prompts, height, device, dtype), lambda x: _decode(pipe, x),
                 {"pipeline": pipe, "lora_mode": lora_mode})


def _student_spec(name, pipe, base_cfg, sources, lora_mode, dtype, device) -> ModelSpec:
    info = SDXL_MODELS[name]
    make = scheduler_factory(_scheduler_cls(info["scheduler"]), base_cfg, **info.get("overrides", {}))
    common = dict(make_scheduler=make, n_steps=info.get("n_steps", len(info.get("timesteps", ()))),
                  guidance=info["guidance"], guidance_mode=info.get("guidance_mode", "cfg"),
                  timesteps=info.get("timesteps"), notes=info.get("notes", ""))
    if lora_mode and "lora" in info:
        repo, file = info["lora"]
        lsrc = sources.get(f"{name}_lora", repo)
        try:
            pipe.load_lora_weights(lsrc, weight_name=file, adapter_name=name)
        except Exception as e:
            raise _fail(f"{name}_lora", lsrc, e) from e
        return ModelSpec(name, pipe.unet, adapter=name, **common)
    if lora_mode:
        raise ValueError(f"{name!r} has no LoRA release, so lora_mode=True cannot load it; models with one: "
                         f"{sorted(k for k, v in SDXL_MODELS.items() if 'lora' in v)}")
    src = sources.get(name, info["repo"])
    try:
        unet = _student_unet(name, info, src, pipe.unet, dtype, device)
    except Exception as e:
        raise _fail(name, src, e) from e
    return ModelSpec(name, unet, **common)


@torch.no_grad()
def _encode(pipe, prompts, height, device, dtype) -> Conditioning:
    """Both CLIP encoders once per batch: penultimate states (B, 77, 2048), pooled (B, 1280), SDXL micro-conditions."""
    pe, npe, pooled, npooled = pipe.encode_prompt(prompts, device=device, num_images_per_prompt=1,
                                                  do_classifier_free_guidance=True)
    ids = torch.tensor([[height, height, 0, 0, height, height]], device=device, dtype=dtype).repeat(len(prompts), 1)
    return Conditioning({"encoder_hidden_states": pe, "added_cond_kwargs": {"text_embeds": pooled, "time_ids": ids}},
                        {"encoder_hidden_states": npe, "added_cond_kwargs": {"text_embeds": npooled, "time_ids": ids}})


@torch.no_grad()
def _decode(pipe, latents) -> torch.Tensor:
    """VAE decode to [-1, 1]; upcasts the VAE when its config says fp16 overflows (stock SDXL VAE)."""
    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and vae.config.force_upcast
    z = latents.to(torch.float32 if upcast else vae.dtype) / vae.config.scaling_factor
    if upcast:
        vae.to(torch.float32)  # stays fp32: the fp16 overflow would recur on every later decode
    return vae.decode(z).sample.float().clamp(-1, 1)
