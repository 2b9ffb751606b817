"""Which control LoRAs the project trains, and where each lives under data/tiny/loras/<variant>/<source>/<control>."""
from __future__ import annotations

import os

BASE_CONTROLS = ("style", "concept", "slider")  # train.py also has a background-tone slider ("slider_bg")
REVERSE_SOURCE = "dmd2"  # the student the reverse direction trains on (the paper's main student)
REVERSE_CONTROLS = ("style", "concept", "slider")
ALL = [("base", c) for c in BASE_CONTROLS] + [(REVERSE_SOURCE, c) for c in REVERSE_CONTROLS]
DEFAULT_STEPS = {"style": 120, "concept": 120, "slider": 100, "slider_bg": 100}  # fixed before any transfer result
TABLE_TARGETS = ("base", "dmd2", "lcm", "turbo", "lightning")  # the paper's Table 1 columns


def loras_root(world) -> str:
    """data/tiny/loras/<variant> of the world's data folder."""
    from ..tiny.loader import data_dir

    variant = world.extras.get("variant") or "custom"
    return os.path.join(data_dir(), "loras", variant)


def lora_dir(world, source: str, control: str) -> str:
    return os.path.join(loras_root(world), source, control)


def adapter_name(source: str, control: str) -> str:
    """The adapter name a plan step uses for this LoRA (one per UNet)."""
    return f"{control}_from_{source}"
