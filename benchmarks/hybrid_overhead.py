"""Benchmark: hybrid(k=1, base_guidance=0) vs the distilled student — NFE, wall time, peak memory.

Tiny world on CPU (default): the committed teacher as base and, as the "student", a second UNet under a 4-step LCM
schedule (999/749/499/249); the loop's cost does not depend on the weights. With --sdxl on a CUDA GPU: SDXL-size
UNets, text encoders and VAE built from the SDXL-base configs with random weights, timed over the whole plan
(prompt encoding, every step, VAE decode), two-UNet mode vs single-UNet-LoRA mode; seconds per image and peak memory.

    python benchmarks/hybrid_overhead.py [--batch N] [--repeats 7] [--sdxl]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

import divdistill as dd
from divdistill.registry import ModelSpec, scheduler_factory

# SDXL-base-1.0's UNet config (stabilityai/stable-diffusion-xl-base-1.0, unet/config.json)
SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D",
                                                                         "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
                 use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816)


def time_plans(world, plans: dict, prompts, seeds, repeats: int) -> dict:
    """Median seconds per plan, interleaving plans so drift on a shared machine hits them alike."""
    times = {k: [] for k in plans}
    for name, plan in plans.items():  # warm-up
        dd.run_plan(world, plan, prompts, seeds, capture=False)
    for r in range(repeats):
        order = list(plans.items()) if r % 2 == 0 else list(plans.items())[::-1]  # alternate who runs first
        for name, plan in order:
            if world.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            dd.run_plan(world, plan, prompts, seeds, capture=False)
            if world.device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def tiny(batch: int, repeats: int) -> dict:
    from diffusers import LCMScheduler

    from divdistill.tiny.schedule import diffusers_config

    world = dd.load_world("tiny", device="cpu", students=[])
    sched = diffusers_config(world.extras["schedule"])  # the loaded teacher's own noise schedule
    world.add(ModelSpec("student", copy.deepcopy(world.spec("base").unet), scheduler_factory(LCMScheduler, sched),
                        4, 0.0, timesteps=(999, 749, 499, 249)))
    plans = {"distilled": dd.distilled(world, "student"), "hybrid": dd.hybrid(world, "student", k=1, base_guidance=0)}
    prompts, seeds = ["a red circle"] * batch, list(range(batch))
    nfe = {k: dd.run_plan(world, p, prompts[:2], seeds[:2], capture=False).nfe for k, p in plans.items()}
    med = time_plans(world, plans, prompts, seeds, repeats)
    return {"batch": batch, "repeats": repeats, "nfe": nfe, "median_s": med,
            "ratio_hybrid_over_distilled": med["hybrid"] / med["distilled"]}


SDXL_LATENT = (4, 128, 128)  # 1024² images
# SDXL-base-1.0's text encoders and VAE (text_encoder/, text_encoder_2/, vae/ config.json)
SDXL_TE1 = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
SDXL_TE2 = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
                vocab_size=49408, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)
SDXL_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=1024,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                scaling_factor=0.13025, force_upcast=False)


def _sdxl_text_and_vae(dev, dt):
    """Random-weight SDXL text encoders + VAE: encode (penultimate states, pooled) and decode, as `sdxl._encode`."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from divdistill.registry import Conditioning

    with dev:  # random init on the GPU itself (seconds, where a CPU init of these sizes takes minutes)
        te1 = CLIPTextModel(CLIPTextConfig(**SDXL_TE1)).to(dev, dt).eval()
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TE2)).to(dev, dt).eval()
        vae = AutoencoderKL(**SDXL_VAE).to(dev, dt).eval()

    @torch.no_grad()
    def encode(prompts):
        ids = torch.randint(0, 49408, (len(prompts), 77), device=dev, generator=torch.Generator(dev).manual_seed(0))
        h1 = te1(ids, output_hidden_states=True).hidden_states[-2]
        o2 = te2(ids, output_hidden_states=True)
        pe = torch.cat([h1, o2.hidden_states[-2]], -1)  # (B, 77, 2048)
        ids_t = torch.tensor([[1024, 1024, 0, 0, 1024, 1024]] * len(prompts), device=dev, dtype=dt)
        c = {"encoder_hidden_states": pe, "added_cond_kwargs": {"text_embeds": o2.text_embeds, "time_ids": ids_t}}
        u = {"encoder_hidden_states": torch.zeros_like(pe),  # SDXL's force_zeros_for_empty_prompt
             "added_cond_kwargs": {"text_embeds": torch.zeros_like(o2.text_embeds), "time_ids": ids_t}}
        return Conditioning(c, u)

    @torch.no_grad()
    def decode(latents):
        return vae.decode(latents.to(dt) / vae.config.scaling_factor).sample.float().clamp(-1, 1)

    return encode, decode, (te1, te2, vae)


def sdxl(batch: int, repeats: int, device: str = "cuda", dtype=torch.float16) -> dict:
    """Hybrid vs distilled, two UNets vs one UNet + unfused LoRA: SDXL-size random weights, whole plan (CUDA only).

    Each timed call is `run_plan` end to end: prompt encoding (both text encoders), every UNet step (the base step
    of the hybrid included) and the VAE decode at 1024², CUDA-synchronised. Weights are random: the cost of a
    forward pass does not depend on them.
    """
    from diffusers import LCMScheduler, UNet2DConditionModel
    from peft import LoraConfig

    from divdistill.registry import World

    dev, dt = torch.device(device), dtype
    cuda = dev.type == "cuda"
    sched_cfg = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    make = scheduler_factory(LCMScheduler, sched_cfg)
    encode, decode, keep = _sdxl_text_and_vae(dev, dt)
    out = {"batch": batch, "repeats": repeats, "device": torch.cuda.get_device_name(dev) if cuda else str(dev)}
    for mode in ("two_unet", "lora"):
        if cuda:
            torch.cuda.empty_cache()
        with dev:
            base_unet = UNet2DConditionModel(**SDXL_UNET).to(dev, dt).eval()
        if mode == "two_unet":
            with dev:
                student_unet, adapter = UNet2DConditionModel(**SDXL_UNET).to(dev, dt).eval(), None
        else:  # DMD2's LoRA release is rank 64 on the attention projections
            base_unet.add_adapter(LoraConfig(r=64, target_modules=["to_q", "to_k", "to_v", "to_out.0"]), "student")
            student_unet, adapter = base_unet, "student"
        specs = {"base": ModelSpec("base", base_unet, make, 4, 0.0, role="base"),
                 "student": ModelSpec("student", student_unet, make, 4, 0.0, adapter=adapter,
                                      timesteps=(999, 749, 499, 249))}
        world = World("sdxl", "base", specs, dev, dt, SDXL_LATENT, encode, decode)
        plans = {"distilled": dd.distilled(world, "student"), "hybrid": dd.hybrid(world, "student", k=1)}
        med = time_plans(world, plans, ["x"] * batch, list(range(batch)), repeats)
        res = {"median_s_per_image": {k: v / batch for k, v in med.items()}, "peak_gib": {}}
        for name, plan in plans.items() if cuda else ():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            dd.run_plan(world, plan, ["x"] * batch, list(range(batch)), capture=False)
            res["peak_gib"][name] = torch.cuda.max_memory_allocated() / 2**30
        res["time_ratio_hybrid_over_distilled"] = med["hybrid"] / med["distilled"]
        if cuda:
            res["peak_ratio_hybrid_over_distilled"] = res["peak_gib"]["hybrid"] / res["peak_gib"]["distilled"]
        out[mode] = res
        del base_unet, student_unet, world, specs
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=None, help="images per call (default 64 tiny, 4 sdxl)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--sdxl", action="store_true", help="SDXL-size random UNets on CUDA")
    a = p.parse_args()
    if a.sdxl:
        if not torch.cuda.is_available():
            raise SystemExit("--sdxl needs a CUDA GPU (SDXL-size UNets are impractical on a CPU)")
        res = sdxl(a.batch or 4, a.repeats)
    else:
        res = tiny(a.batch or 64, a.repeats)
    import json

    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
