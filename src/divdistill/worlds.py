"""`load_world(scale=...)`: one entry point for both scales."""
from __future__ import annotations

SCALES = ("tiny", "sdxl")


def load_world(scale: str = "tiny", device: str | None = None, **kwargs):
    """Load a World: scale="tiny" (the shipped toy world, CPU) or "sdxl" (hub checkpoints, GPU).

    Args:
        scale: "tiny" or "sdxl".
        device: torch device; None or "auto": "cuda" when available, else "cpu".
        **kwargs: passed to the scale's loader (tiny: root, students; sdxl: models, lora_mode, dtype, sources).
    Returns:
        A World whose registry the plan helpers and `run_plan` use.
    """
    from .commandline import resolve_device

    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid scales: {SCALES}")
    device = resolve_device(device)  # None/"auto": cuda when present; "cuda" without CUDA is a clear error
    if scale == "tiny":
        from .tiny.loader import load_tiny_world

        return load_tiny_world(device=device, **kwargs)
    from .sdxl import load_sdxl_world

    return load_sdxl_world(device=device, **kwargs)
