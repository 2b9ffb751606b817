"""Benchmark: hybrid(k=1, base_guidance=0) vs the distilled student — NFE, wall time, peak memory.

Tiny world on CPU (default): the committed teacher as base and, as the "student", a second UNet under a 4-step LCM
schedule (999/749/499/249); the loop's cost does not depend on the weights. With --sdxl on a CUDA GPU: SDXL-size
UNets built from the SDXL-base config with random weights, two-UNet mode vs single-UNet-LoRA mode.

    python benchmarks/hybrid_overhead.py [--batch 64] [--repeats 7] [--sdxl]
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

    from divdistill.tiny.teacher import NOISE_SCHEDULE

    world = dd.load_world("tiny", device="cpu", students=[])
    world.add(ModelSpec("student", copy.deepcopy(world.spec("base").unet), scheduler_factory(LCMScheduler, NOISE_SCHEDULE),
                        4, 0.0, timesteps=(999, 749, 499, 249)))
    plans = {"distilled": dd.distilled(world, "student"), "hybrid": dd.hybrid(world, "student", k=1, base_guidance=0)}
    prompts, seeds = ["a red circle"] * batch, list(range(batch))
    nfe = {k: dd.run_plan(world, p, prompts[:2], seeds[:2], capture=False).nfe for k, p in plans.items()}
    med = time_plans(world, plans, prompts, seeds, repeats)
    return {"batch": batch, "repeats": repeats, "nfe": nfe, "median_s": med,
            "ratio_hybrid_over_distilled": med["hybrid"] / med["distilled"]}


def sdxl(batch: int, repeats: int) -> dict:
    """Two-UNet vs single-UNet-LoRA hybrid on SDXL-size random UNets (CUDA only)."""
    from diffusers import LCMScheduler, UNet2DConditionModel
    from peft import LoraConfig

    from divdistill.registry import Conditioning, World

    dev, dt = torch.device("cuda"), torch.float16
    sched_cfg = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    make = scheduler_factory(LCMScheduler, sched_cfg)
    cond = Conditioning({"encoder_hidden_states": torch.randn(batch, 77, 2048, device=dev, dtype=dt),
                         "added_cond_kwargs": {"text_embeds": torch.randn(batch, 1280, device=dev, dtype=dt),
                                               "time_ids": torch.tensor([[1024, 1024, 0, 0, 1024, 1024]] * batch,
                                                                        device=dev, dtype=dt)}})
    out = {}
    for mode in ("two_unet", "lora"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base_unet = UNet2DConditionModel(**SDXL_UNET).to(dev, dt).eval()
        if mode == "two_unet":
            student_unet, adapter = UNet2DConditionModel(**SDXL_UNET).to(dev, dt).eval(), None
        else:
            base_unet.add_adapter(LoraConfig(r=64, target_modules=["to_q", "to_k", "to_v", "to_out.0"]), "student")
            student_unet, adapter = base_unet, "student"
        specs = {"base": ModelSpec("base", base_unet, make, 4, 0.0, role="base"),
                 "student": ModelSpec("student", student_unet, make, 4, 0.0, adapter=adapter,
                                      timesteps=(999, 749, 499, 249))}
        world = World("sdxl", "base", specs, dev, dt, (4, 128, 128), lambda p: cond)
        plans = {"distilled": dd.distilled(world, "student"), "hybrid": dd.hybrid(world, "student", k=1)}
        res = {"median_s": time_plans(world, plans, ["x"] * batch, list(range(batch)), repeats), "peak_gib": {}}
        for name, plan in plans.items():
            torch.cuda.reset_peak_memory_stats()
            dd.run_plan(world, plan, ["x"] * batch, list(range(batch)), capture=False)
            res["peak_gib"][name] = torch.cuda.max_memory_allocated() / 2**30
        res["time_ratio"] = res["median_s"]["hybrid"] / res["median_s"]["distilled"]
        res["peak_ratio"] = res["peak_gib"]["hybrid"] / res["peak_gib"]["distilled"]
        out[mode] = res
        del base_unet, student_unet, world, specs
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--sdxl", action="store_true", help="SDXL-size random UNets on CUDA")
    a = p.parse_args()
    if a.sdxl:
        if not torch.cuda.is_available():
            raise SystemExit("--sdxl needs a CUDA GPU (SDXL-size UNets are impractical on a CPU)")
        res = sdxl(a.batch, a.repeats)
    else:
        res = tiny(a.batch, a.repeats)
    import json

    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
