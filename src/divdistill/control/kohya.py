"""Concept Sliders' public weight format (kohya-style `lora_unet_<module>.lora_down/up.weight` + `.alpha`) ↔ peft."""
from __future__ import annotations

import difflib

import torch

PREFIX = "lora_unet_"
_PARTS = (".lora_down.weight", ".lora_up.weight", ".alpha")


class KohyaKeyError(KeyError):
    """A kohya key names no module of the UNet, lacks its pair, or does not fit the module's shape."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def is_kohya(state_dict: dict) -> bool:
    """True for the kohya/LoRANetwork layout (Concept Sliders' `.pt` files, A1111/ComfyUI LoRAs)."""
    return any(k.startswith(("lora_unet_", "lora_te")) for k in state_dict)


def _split(key: str) -> tuple[str, str]:
    for part in _PARTS:
        if key.endswith(part):
            return key[: -len(part)], part
    raise KohyaKeyError(f"key {key!r} is not a kohya LoRA key: expected `lora_unet_<module>` + one of {list(_PARTS)}")


def kohya_to_peft(state_dict: dict, unet) -> dict:
    """Convert a kohya-layout UNet LoRA to the diffusers/peft layout `unet.<module>.lora_A/B.weight` for `unet`.

    alpha/rank is folded into lora_B, so the result loads with lora_alpha = rank (scale 1) and
    W + (alpha / rank) · up @ down is preserved exactly.

    Args:
        state_dict: kohya keys (`lora_unet_<module path with _>.lora_down.weight`, `.lora_up.weight`, `.alpha`).
        unet: the UNet it is meant for (module names are recovered from it: `_` is ambiguous in kohya names).
    Returns:
        A state dict for `load_adapter` / `unet.load_lora_adapter(..., prefix="unet")`.
    """
    from .adapters import target_modules

    mods = {n.replace(".", "_"): (n, m) for n, m in target_modules(unet).items()}
    groups: dict[str, dict] = {}
    for key, val in state_dict.items():
        base, part = _split(key)
        if not base.startswith(PREFIX):
            raise KohyaKeyError(f"key {key!r}: only UNet keys `{PREFIX}*` convert; text-encoder LoRAs "
                                "(`lora_te1_*`, `lora_te2_*`) are not supported here")
        groups.setdefault(base, {})[part] = val
    out = {}
    for base, parts in groups.items():
        flat = base[len(PREFIX):]
        if flat not in mods:
            near = difflib.get_close_matches(flat, list(mods), n=1)
            hint = f"; the nearest module is {mods[near[0]][0]!r} (key {PREFIX}{near[0]})" if near else ""
            raise KohyaKeyError(f"key {base!r} names no Linear/Conv2d module of this UNet: expected module "
                                f"{flat!r} with `_` for `.`{hint}")
        for need in _PARTS[:2]:
            if need not in parts:
                raise KohyaKeyError(f"key {base + need!r} is missing (module {mods[flat][0]!r} needs both "
                                    "lora_down and lora_up)")
        name, mod = mods[flat]
        down, up = parts[".lora_down.weight"].float(), parts[".lora_up.weight"].float()
        rank, (out_f, in_f) = down.shape[0], mod.weight.shape[:2]
        if down.shape[1] != in_f or up.shape[0] != out_f or up.shape[1] != rank:
            raise KohyaKeyError(f"key {base!r}: lora_down {tuple(down.shape)} / lora_up {tuple(up.shape)} do not fit "
                                f"module {name!r} of weight {tuple(mod.weight.shape)} (expected down (r, {in_f}, …), "
                                f"up ({out_f}, r, …))")
        alpha = float(parts[".alpha"]) if ".alpha" in parts else float(rank)
        out[f"unet.{name}.lora_A.weight"] = down
        out[f"unet.{name}.lora_B.weight"] = up * (alpha / rank)
    return out


def peft_to_kohya(state_dict: dict) -> dict:
    """The inverse layout: `unet.<module>.lora_A/B.weight` → kohya keys with alpha = rank (same effective delta)."""
    out = {}
    for key, val in state_dict.items():
        if not key.startswith("unet.") or not key.endswith((".lora_A.weight", ".lora_B.weight")):
            raise KohyaKeyError(f"key {key!r} is not in the diffusers/peft layout `unet.<module>.lora_A|lora_B.weight`")
        mod = key[len("unet."):-len(".lora_A.weight")]
        base = PREFIX + mod.replace(".", "_")
        if key.endswith(".lora_A.weight"):
            out[base + ".lora_down.weight"] = val
            out[base + ".alpha"] = torch.tensor(float(val.shape[0]))
        else:
            out[base + ".lora_up.weight"] = val
    return out


def delta_weights(peft_state: dict) -> dict:
    """The merged weight change per module, up @ down (scale 1), for checking conversions: {module: ΔW}."""
    out = {}
    for key, a in peft_state.items():
        if key.endswith(".lora_A.weight"):
            mod = key[len("unet."):-len(".lora_A.weight")]
            b = peft_state[key.replace("lora_A", "lora_B")]
            out[mod] = (b.flatten(1).float() @ a.flatten(1).float())  # (out, in·k·k)
    return out
