"""Load the tiny world (teacher, text encoder, students) from `data/tiny` into the common World registry."""
from __future__ import annotations

import json
import os

import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, LCMScheduler, UNet2DConditionModel)

from ..registry import Conditioning, ModelSpec, ModelUnavailableError, World, scheduler_factory
from .teacher import NOISE_SCHEDULE
from .text import TextEncoder, Tokenizer

SCHEDULERS = {c.__name__: c for c in (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, LCMScheduler,
                                      EulerDiscreteScheduler, EulerAncestralDiscreteScheduler)}
BASE_GUIDANCE = 4.0  # CFG scale of the tiny teacher's "Base" rows (the 3–5 range)
BASE_STEPS = 50


def data_dir() -> str:
    """The tiny world's checkpoints: $DIVDISTILL_DATA, else `data/tiny` of this checkout."""
    env = os.environ.get("DIVDISTILL_DATA")
    if env:
        return env
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "data", "tiny"))


def base_scheduler_factory():
    """The tiny base's sampler: DDIM (eta 0) with trailing spacing, so its first step is at t=999 like SDXL's."""
    return scheduler_factory(DDIMScheduler, NOISE_SCHEDULE, timestep_spacing="trailing")


def load_unet(path: str, device, dtype=torch.float32) -> UNet2DConditionModel:
    if not os.path.isdir(path):
        raise ModelUnavailableError(f"no UNet at {path!r}; train it with `python -m divdistill.tiny train-teacher`")
    return UNet2DConditionModel.from_pretrained(path, torch_dtype=dtype).to(device).eval().requires_grad_(False)


def student_spec(path: str, device, dtype=torch.float32) -> ModelSpec:
    """A tiny student from `path/student.json` + `path/unet`."""
    with open(os.path.join(path, "student.json")) as f:
        meta = json.load(f)
    cls = meta["scheduler"]
    if cls not in SCHEDULERS:
        raise ValueError(f"{path}: unknown scheduler {cls!r}; valid: {sorted(SCHEDULERS)}")
    return ModelSpec(name=meta["name"], unet=load_unet(os.path.join(path, "unet"), device, dtype),
                     make_scheduler=scheduler_factory(SCHEDULERS[cls], NOISE_SCHEDULE,
                                                      **meta.get("scheduler_overrides", {})),
                     n_steps=len(meta["timesteps"]), guidance=float(meta.get("guidance", 0.0)),
                     guidance_mode=meta.get("guidance_mode", "cfg"), timesteps=tuple(meta["timesteps"]),
                     notes=meta.get("notes", ""))


def load_tiny_world(root: str | None = None, device: str = "cpu", students=None) -> World:
    """The tiny world: teacher ("base") plus every student found under `root/students` (or those named)."""
    root = root or data_dir()
    device = torch.device(device)
    enc_path = os.path.join(root, "teacher", "text_encoder")
    if not os.path.isdir(enc_path):
        raise ModelUnavailableError(f"no tiny world at {root!r}: expected teacher/unet and teacher/text_encoder; "
                                    "reproduce them with `python -m divdistill.tiny train-teacher`")
    enc, tok = TextEncoder.load(enc_path).to(device), Tokenizer()
    base = ModelSpec("base", load_unet(os.path.join(root, "teacher", "unet"), device), base_scheduler_factory(),
                     BASE_STEPS, BASE_GUIDANCE, role="base", notes="tiny teacher, DDIM trailing, CFG 4")
    specs = {"base": base}
    sdir = os.path.join(root, "students")
    found = sorted(d for d in os.listdir(sdir) if os.path.exists(os.path.join(sdir, d, "student.json"))) \
        if os.path.isdir(sdir) else []
    if students is not None:
        missing = [s for s in students if s not in found]
        if missing:
            raise KeyError(f"unknown tiny student(s) {missing}; found in {sdir}: {found}")
        found = list(students)
    for d in found:
        spec = student_spec(os.path.join(sdir, d), device)
        specs[spec.name] = spec

    @torch.no_grad()
    def encode(prompts):
        cond = enc(tok(prompts).to(device))  # (B, L, D)
        uncond = enc(tok([""] * len(prompts)).to(device))
        return Conditioning({"encoder_hidden_states": cond}, {"encoder_hidden_states": uncond})

    return World("tiny", "base", specs, device, torch.float32, (3, 32, 32), encode, None,
                 {"text_encoder": enc, "tokenizer": tok, "root": root})
