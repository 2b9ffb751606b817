"""Control adapters (paper Sec. 6, Table 1): peft LoRAs in the diffusers LoRA format, loaded unfused into each UNet."""
from __future__ import annotations

import os

import torch

WEIGHT_NAME = "pytorch_lora_weights.safetensors"
# Every attention, feed-forward and resnet projection of the tiny UNet (attention lives only at 8×8 there, so a style
# of thin outlines needs the convolutions too).
TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1",
                  "conv2")
_SUFFIXES = (".lora_A.weight", ".lora_B.weight")


class AdapterMismatchError(ValueError):
    """A LoRA's keys or shapes do not fit the UNet it is loaded into."""


def add_lora(unet, name: str, rank: int = 4, targets=TARGET_MODULES) -> list[torch.nn.Parameter]:
    """Add a fresh trainable LoRA adapter `name` (alpha = rank: scale 1) to `unet`; returns its parameters."""
    from peft import LoraConfig

    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets), init_lora_weights="gaussian"),
                     adapter_name=name)
    unet.requires_grad_(False)
    params = [p for n, p in unet.named_parameters() if f".{name}." in n and "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    return params


def adapter_state_dict(unet, name: str) -> dict:
    """The adapter's weights in the diffusers LoRA layout: `unet.<module>.lora_A/B.weight`."""
    from peft.utils import get_peft_model_state_dict

    sd = get_peft_model_state_dict(unet, adapter_name=name)
    return {f"unet.{k}": v.detach().float().cpu().contiguous() for k, v in sd.items()}


def save_adapter(unet, name: str, folder: str) -> str:
    """Write `folder/pytorch_lora_weights.safetensors` (fp32, atomically); returns the path."""
    from ..io import atomic_save_safetensors

    path = os.path.join(folder, WEIGHT_NAME)
    atomic_save_safetensors(adapter_state_dict(unet, name), path, dtype=torch.float32)
    return path


def read_lora(path: str) -> dict:
    """A LoRA state dict from a folder (its pytorch_lora_weights.safetensors), a .safetensors or a .pt/.bin file."""
    if os.path.isdir(path):
        path = os.path.join(path, WEIGHT_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no LoRA file at {path!r}; train the tiny controls with "
                                "`python -m divdistill.control train-all`")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def target_modules(unet) -> dict:
    """{module path: Linear/Conv2d} of a UNet, seen through any peft LoRA wrappers already on it."""
    out = {}
    for n, m in unet.named_modules():
        if not isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) or ".lora_" in n or ".lora_magnitude" in n:
            continue
        out[n[: -len(".base_layer")] if n.endswith(".base_layer") else n] = m
    return out


def check_keys(unet, state_dict: dict, strict: bool = True) -> None:
    """Fail naming every unexpected key (no such module / wrong shape), and with strict=True every missing module
    (one the adapter's target names cover in this UNet but the file lacks), before anything is loaded."""
    mods = target_modules(unet)
    bad = [k for k in state_dict if not (k.startswith("unet.") and k.endswith(_SUFFIXES))]
    if bad:
        raise AdapterMismatchError(f"keys not in the diffusers/peft LoRA layout `unet.<module>.lora_A|lora_B.weight`: "
                                   f"{bad[:5]} (kohya-style `lora_unet_*` files go through control.kohya_to_peft)")
    unexpected, shapes, covered = [], [], set()
    for k, v in state_dict.items():
        mod = k[len("unet."):-len(".lora_A.weight")]
        if mod not in mods:
            unexpected.append(f"{k} (no module {mod!r} in this UNet)")
            continue
        covered.add(mod)
        w = mods[mod].weight
        want = w.shape[1] if k.endswith(".lora_A.weight") else w.shape[0]
        got = v.shape[1] if k.endswith(".lora_A.weight") else v.shape[0]
        if got != want:
            shapes.append(f"{k}: {tuple(v.shape)} does not fit module {mod!r} of weight {tuple(w.shape)}")
    suffixes = {m.rsplit(".", 1)[-1] if not m.endswith("to_out.0") else "to_out.0" for m in covered}
    missing = sorted(m for m in mods if m not in covered and any(m.endswith("." + s) for s in suffixes))
    missing = missing if strict else []
    if unexpected or shapes or missing:
        raise AdapterMismatchError(
            f"LoRA does not fit this UNet (architecture differs): {len(unexpected)} unexpected key(s) "
            f"{unexpected[:4]}; "
            f"{len(shapes)} shape mismatch(es) {shapes[:4]}; {len(missing)} missing module(s) {missing[:4]}")


def load_adapter(unet, lora, name: str, strict: bool = True) -> None:
    """Load a LoRA (path or diffusers-layout state dict) as adapter `name` on `unet`, unfused (`load_lora_adapter`,
    the call `pipeline.load_lora_weights` makes); an adapter of that name already there is replaced."""
    sd = read_lora(lora) if isinstance(lora, str) else dict(lora)
    check_keys(unet, sd, strict)
    if name in (getattr(unet, "peft_config", None) or {}):
        unet.delete_adapters(name)
    from diffusers.utils import logging as dlog

    log = dlog.get_logger("diffusers.utils.peft_utils")  # it matches adapter names as substrings: "s" flags
    level = log.level  # other adapters' keys as missing; check_keys above has checked this adapter's keys
    log.setLevel(dlog.ERROR)
    try:
        unet.load_lora_adapter(sd, prefix="unet", adapter_name=name)
    finally:
        log.setLevel(level)
    unet.disable_adapters()  # off until a plan step asks for it (sampling._activate_adapter)


def load_controls(world, lora, name: str, models=None, strict: bool = True) -> list[str]:
    """Load one LoRA as adapter `name` into every model's UNet (each UNet once: adapters are scoped per UNet).

    Args:
        world: a loaded World.
        lora: a folder, file or diffusers-layout state dict.
        name: the adapter name plan steps use (`plan.with_adapters`).
        models: registry names (default: all).
        strict: also fail on modules the LoRA should cover but lacks.
    Returns:
        The model names it was loaded into.
    """
    sd = read_lora(lora) if isinstance(lora, str) else dict(lora)
    seen, done = set(), []
    for m in models or world.names:
        unet = world.spec(m).unet
        if id(unet) not in seen:
            try:
                load_adapter(unet, sd, name, strict)
            except AdapterMismatchError as e:
                raise AdapterMismatchError(f"model {m!r}: {e}") from e
            seen.add(id(unet))
        done.append(m)
    return done
