"""Load the tiny world (teacher, text encoder, students) from `data/tiny` into the common World registry."""
from __future__ import annotations

import json
import os

import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, LCMScheduler, UNet2DConditionModel)

from ..registry import Conditioning, ModelSpec, ModelUnavailableError, World, scheduler_factory
from .schedule import SNR_FACTOR, diffusers_config, load_schedule, prior_spread, prior_std
from .text import TextEncoder, Tokenizer

SCHEDULERS = {c.__name__: c for c in (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, LCMScheduler,
                                      EulerDiscreteScheduler, EulerAncestralDiscreteScheduler)}
BASE_GUIDANCE = 4.0  # CFG scale of the tiny teacher's "Base" rows (the 3–5 range)
BASE_STEPS = 50


# The tiny world's variants (issue 8), one folder each under data/tiny/ with teacher/ and students/:
# "spectrum-matched" (issue 19, the default): SNR × s from the count and the spectrum on both sides (tiny/spectrum.py);
# "sd-schedule": SD's scaled-linear schedule (the ablation); "snr-matched": SNR × 64/3 (values counted alone; retired:
# only its teacher and its diagnostics stay in data/, since its factor ignores the spectrum and its teacher is weak).
VARIANTS = ("spectrum-matched", "sd-schedule", "snr-matched")  # the default first: chapters list them in this order
DEFAULT_VARIANT = "spectrum-matched"  # the ONE place that decides which variant load_world("tiny") gives


def data_dir() -> str:
    """The tiny world's data: $DIVDISTILL_DATA, else `data/tiny` of this checkout (evaluator + one folder per variant)."""
    env = os.environ.get("DIVDISTILL_DATA")
    if env:
        return env
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "data", "tiny"))


def variant_dir(variant: str | None = None) -> str:
    """The folder of one variant (teacher/, students/); default DEFAULT_VARIANT; a clear error for an unknown one."""
    variant = DEFAULT_VARIANT if variant is None else variant
    if variant not in VARIANTS:
        raise ValueError(f"unknown tiny-world variant {variant!r}; valid variants: {list(VARIANTS)}")
    return os.path.join(data_dir(), variant)


def variant_snr_factor(variant: str | None = None) -> float:
    """The SNR factor a variant's models are trained on: 1, the value count 64/3, or the spectrum-aware derivation."""
    variant = DEFAULT_VARIANT if variant is None else variant
    variant_dir(variant)  # a clear error for an unknown variant
    if variant == "spectrum-matched":
        from .spectrum import derive

        return derive()["snr_factor"]
    return {"sd-schedule": 1.0, "snr-matched": SNR_FACTOR}[variant]


def evaluator_dir() -> str:
    """The evaluator is schedule-independent: one, shared by every variant."""
    return os.path.join(data_dir(), "evaluator")


def base_scheduler_factory(schedule: dict):
    """The tiny base's sampler: DDIM (eta 0) with trailing spacing, so its first step is at t=999 like SDXL's."""
    return scheduler_factory(DDIMScheduler, diffusers_config(schedule), timestep_spacing="trailing")


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
    schedule = diffusers_config(load_schedule(path))  # the schedule travels with the student
    return ModelSpec(name=meta["name"], unet=load_unet(os.path.join(path, "unet"), device, dtype),
                     make_scheduler=scheduler_factory(SCHEDULERS[cls], schedule,
                                                      **meta.get("scheduler_overrides", {})),
                     n_steps=len(meta["timesteps"]), guidance=float(meta.get("guidance", 0.0)),
                     guidance_mode=meta.get("guidance_mode", "cfg"), timesteps=tuple(meta["timesteps"]),
                     notes=meta.get("notes", ""))


def load_tiny_world(root: str | None = None, device: str = "cpu", students=None, variant: str | None = None) -> World:
    """The tiny world: teacher ("base") plus every student found under `root/students` (or those named).

    Args:
        root: a world folder (teacher/, students/); default the variant's folder under data/tiny.
        device: torch device.
        students: names to load (default: every student found).
        variant: one of VARIANTS (default DEFAULT_VARIANT); ignored when `root` is given.
    Returns:
        A World; extras hold the text encoder, tokenizer, root, variant, evaluator_root and the schedule.
    """
    if root is None:
        root = variant_dir(variant)
    elif variant is not None:
        raise ValueError(f"give either root or variant, not both (got root={root!r}, variant={variant!r})")
    device = torch.device(device)
    enc_path = os.path.join(root, "teacher", "text_encoder")
    if not os.path.isdir(enc_path):
        raise ModelUnavailableError(f"no tiny world at {root!r}: expected teacher/unet and teacher/text_encoder; "
                                    "reproduce them with `python -m divdistill.tiny train-teacher --variant <name>`")
    enc, tok = TextEncoder.load(enc_path).to(device), Tokenizer()
    schedule = load_schedule(os.path.join(root, "teacher"))  # the teacher's own schedule, saved with it
    base = ModelSpec("base", load_unet(os.path.join(root, "teacher", "unet"), device), base_scheduler_factory(schedule),
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
                 {"text_encoder": enc, "tokenizer": tok, "root": root, "schedule": schedule,
                  "variant": os.path.basename(os.path.normpath(root)), "evaluator_root": _evaluator_for(root)},
                 prior_std=prior_std(schedule), prior_spread=prior_spread(schedule))


def _evaluator_for(root: str) -> str:
    own = os.path.join(root, "evaluator")  # a self-contained world folder (tests, $DIVDISTILL_DATA) may ship its own
    return own if os.path.isdir(own) else evaluator_dir()


def world_from_models(unet, text_encoder, schedule: dict, device="cpu", students: dict | None = None) -> World:
    """A World around in-memory models (a teacher mid-training, a student being distilled): for training probes.

    `students` maps names to (unet, scheduler class name, timesteps, guidance, scheduler overrides)."""
    device = torch.device(device)
    tok, cfg = Tokenizer(), diffusers_config(schedule)
    specs = {"base": ModelSpec("base", unet.eval(), base_scheduler_factory(schedule), BASE_STEPS, BASE_GUIDANCE,
                               role="base")}
    for name, (su, cls, ts, g, over) in (students or {}).items():
        specs[name] = ModelSpec(name, su.eval(), scheduler_factory(SCHEDULERS[cls], cfg, **over), len(ts), float(g),
                                timesteps=tuple(ts))

    @torch.no_grad()
    def encode(prompts):
        return Conditioning({"encoder_hidden_states": text_encoder(tok(prompts).to(device))},
                            {"encoder_hidden_states": text_encoder(tok([""] * len(prompts)).to(device))})

    return World("tiny", "base", specs, device, torch.float32, (3, 32, 32), encode, None,
                 {"text_encoder": text_encoder, "tokenizer": tok, "root": None, "schedule": schedule,
                  "evaluator_root": evaluator_dir()}, prior_std=prior_std(schedule), prior_spread=prior_spread(schedule))


def set_world_prior(root: str, prior: str) -> dict:
    """Declare the sampling prior of a trained world: the teacher's and every student's scheduler.json (their weights
    do not depend on it; a rollout-trained student was trained from the old prior, which its provenance keeps)."""
    from ..io import atomic_write_json
    from .schedule import PRIORS

    if prior not in PRIORS:
        raise ValueError(f"unknown sampling prior {prior!r}; valid: {list(PRIORS)}")
    sdir = os.path.join(root, "students")
    folders = [os.path.join(root, "teacher")] + ([os.path.join(sdir, d) for d in sorted(os.listdir(sdir))]
                                                 if os.path.isdir(sdir) else [])
    changed = {}
    for folder in folders:
        if not os.path.exists(os.path.join(folder, "scheduler.json")):
            continue
        config = load_schedule(folder)
        old = config.pop("prior", "unit")
        save = {**config, **({} if prior == "unit" else {"prior": prior})}
        if old != prior:
            atomic_write_json(os.path.join(folder, "scheduler.json"), save)
            changed[os.path.relpath(folder, root)] = [old, prior]
    return {"root": root, "prior": prior, "prior_std": prior_std(load_schedule(folders[0])), "changed": changed}
