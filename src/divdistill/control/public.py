"""Paper scale (Table 1): public SDXL LoRAs and Concept Sliders, by hub id or file, onto the base and every student."""
from __future__ import annotations

import os

import numpy as np
import torch

from .adapters import load_adapter
from .kohya import is_kohya, kohya_to_peft


def _read(source: str, weight_name: str | None) -> dict:
    """A LoRA file's raw state dict: a local file/folder, or a hub repo id (+ weight_name)."""
    path = source
    if os.path.isdir(source):
        path = os.path.join(source, weight_name or "pytorch_lora_weights.safetensors")
    elif not os.path.exists(source):
        from huggingface_hub import hf_hub_download

        from ..registry import ModelUnavailableError

        try:
            path = hf_hub_download(source, weight_name or "pytorch_lora_weights.safetensors")
        except Exception as e:  # offline / wrong id: one actionable message
            raise ModelUnavailableError(f"could not fetch LoRA {source!r} ({weight_name!r}) from the hub: "
                                        f"{type(e).__name__}: {str(e)[:200]}; pass a local file instead") from e
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def unet_lora(raw: dict, unet) -> tuple[dict, dict | None]:
    """(diffusers-layout UNet state dict, network alphas) of any LoRA file: kohya/Concept Sliders layout through
    `kohya_to_peft`, everything else through diffusers' own `lora_state_dict` (text-encoder parts dropped)."""
    if is_kohya(raw):
        return kohya_to_peft({k: v for k, v in raw.items() if k.startswith("lora_unet_")}, unet), None
    from diffusers import StableDiffusionXLPipeline

    sd, alphas = StableDiffusionXLPipeline.lora_state_dict(raw)
    keep = {k: v for k, v in sd.items() if k.startswith("unet.")}
    if not keep:
        raise ValueError(f"the LoRA has no UNet weights (keys start with {sorted({k.split('.')[0] for k in sd})})")
    return keep, ({k: v for k, v in alphas.items() if k.startswith("unet.")} if alphas else None)


def load_public_control(world, source: str, name: str, weight_name: str | None = None, models=None) -> list[str]:
    """Load a public LoRA/slider as adapter `name` into each model's UNet (each UNet once), unfused.

    Args:
        world: an sdxl (or tiny) World.
        source: hub repo id or local file/folder.
        name: adapter name for `plan.with_adapters`.
        weight_name: file inside the repo/folder.
        models: registry names (default all).
    Returns:
        The models it was loaded into.
    """
    raw, seen, done = _read(source, weight_name), set(), []
    for m in models or world.names:
        unet = world.spec(m).unet
        if id(unet) not in seen:
            sd, alphas = unet_lora(raw, unet)
            if alphas:
                if name in (unet.peft_config or {}):
                    unet.delete_adapters(name)
                unet.load_lora_adapter(sd, prefix="unet", network_alphas=alphas, adapter_name=name)
                unet.disable_adapters()
            else:
                load_adapter(unet, sd, name, strict=False)  # public LoRAs may cover only some layers
            seen.add(id(unet))
        done.append(m)
    return done


def clip_scores(images: torch.Tensor, text: str, cache: dict, stand_in: bool = False) -> np.ndarray:
    """Paper Table 1's score: CLIP score (torchmetrics) of each image against the control's concept text.
    stand_in=True (random-weight fixture runs, no downloads): mean brightness in [0, 1], a plumbing check only."""
    imgs = ((images.float().clamp(-1, 1) + 1) / 2).cpu()  # (B, 3, H, W) in [0, 1]
    if stand_in:
        return imgs.mean(dim=(1, 2, 3)).numpy()
    if "clip_score" not in cache:
        from torchmetrics.multimodal.clip_score import CLIPScore

        cache["clip_score"] = CLIPScore(model_name_or_path="openai/clip-vit-large-patch14")
    metric = cache["clip_score"]
    out = []
    for im in (imgs * 255).to(torch.uint8):
        metric.reset()
        out.append(float(metric(im[None], [text])))
    return np.array(out)
