"""Hybrid inference (paper Sec. 5, Fig. 7) inside any diffusers pipeline: a `callback_on_step_end` that hands the
denoising over from the base to the student after the base's first k steps.

    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)           # the student's sampler (DMD2)
    switch = divdistill.HybridSwitch(dmd2_unet, after=1)                       # or HybridSwitch("dmd2") (LoRA)
    image = pipe(prompt, timesteps=[999, 749, 499, 249], guidance_scale=0, callback_on_step_end=switch).images[0]

The run stays on the pipeline's own scheduler, timesteps and noise; only the module that predicts changes (the
pipeline reads `self.unet` at every step). No diffusers code is patched: the callback assigns the pipeline's `unet`
component (or enables the student's LoRA adapter on the one UNet) and restores the base after the last step.
"""
from __future__ import annotations

from typing import Any

import torch
from diffusers.callbacks import PipelineCallback

from .preview import UNetCalls

CFG_TENSORS = ("prompt_embeds", "add_text_embeds", "add_time_ids")  # SDXL's [uncond; cond] batched inputs


def _lora_active(unet) -> list[str]:
    """Names of the LoRA adapters that would act in the UNet's next forward pass (none when adapters are disabled)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    active = set()
    for m in unet.modules():
        if isinstance(m, BaseTunerLayer) and not m.disable_adapters:
            active.update(a for a in m.active_adapters if float(m.scaling.get(a, 1.0) or 0.0) != 0.0)
    return sorted(active)


class HybridSwitch(PipelineCallback):
    """The paper's hybrid plan (Sec. 5): base for the first `after` steps, then the student, on the pipeline's grid.

    Args:
        student: the student's UNet (a module: two-UNet mode) or the name of its LoRA adapter already loaded on the
            pipeline's UNet (single-UNet mode: the adapter must be disabled for the base's steps).
        after: k, the number of leading steps the base runs (1 ≤ k ≤ the run's steps; k = steps runs the base alone
            on the student's sampler; k = 0 is the student alone and needs no switch).
        student_guidance: the student's CFG scale from step k on; None keeps the pipeline's `guidance_scale` for
            every step. 0 or 1 drops the pipeline's [uncond; cond] batch (the base may use CFG, the student not).
        adapter_scale: the student adapter's weight (LoRA mode).
        preview: a `DTPreview` (or any callback) called first at every step: x̂0 of every step, base and student.
    """

    def __init__(self, student, after: int = 1, student_guidance: float | None = None, adapter_scale: float = 1.0,
                 preview=None):
        super().__init__()
        if not isinstance(student, (torch.nn.Module, str)):
            raise TypeError(f"student must be the student's UNet (a torch module) or its LoRA adapter's name (a str), "
                            f"got {type(student).__name__}")
        if isinstance(after, bool) or not isinstance(after, int) or after < 1:
            raise ValueError(f"after={after!r}: the base's number of leading steps k must be an int >= 1 (k = 0 is the "
                             "student alone: run its pipeline, or enable its adapter, without a switch)")
        if student_guidance is not None and not float(student_guidance) >= 0:
            raise ValueError(f"student_guidance must be None (keep the pipeline's) or >= 0, got {student_guidance!r}")
        if preview is not None and not callable(preview):
            raise TypeError(f"preview must be a callback (e.g. a DTPreview), got {type(preview).__name__}")
        self.student, self.after, self.adapter_scale, self.preview = student, after, float(adapter_scale), preview
        self.student_guidance = None if student_guidance is None else float(student_guidance)
        self._base = None
        if isinstance(preview, UNetCalls) and isinstance(student, torch.nn.Module):
            preview.watch(student)

    @property
    def tensor_inputs(self) -> list[str]:
        """What the pipeline must hand the callback: the CFG-batched inputs when the student's guidance changes."""
        return ["latents"] + (list(CFG_TENSORS) if self.student_guidance is not None else [])

    @property
    def lora_mode(self) -> bool:
        return isinstance(self.student, str)

    def callback_fn(self, pipe, step_index: int, timestep, callback_kwargs: dict) -> dict[str, Any]:
        if step_index == 0:
            self._start(pipe)
        if self.preview is not None:
            callback_kwargs = self.preview(pipe, step_index, timestep, callback_kwargs)
        last = step_index == pipe.num_timesteps - 1
        if step_index == self.after - 1 and not last:
            callback_kwargs = self._switch(pipe, callback_kwargs)
        if last:
            self.restore(pipe)
        return callback_kwargs

    def _start(self, pipe) -> None:
        """Check the pipeline before its base steps go on: the step count, the base UNet, the adapter's state."""
        unet = getattr(pipe, "unet", None)
        if unet is None:
            raise ValueError(f"{type(pipe).__name__} has no `unet` component; HybridSwitch switches UNet pipelines")
        n = pipe.num_timesteps
        if self.after > n:
            raise ValueError(f"after={self.after} base steps do not fit this {n}-step run; valid after is 1..{n}")
        if self.lora_mode:
            self._check_adapter(unet)
            return
        if unet is self.student:
            raise RuntimeError("the pipeline's UNet is already the student (an earlier run was interrupted?); call "
                               "switch.restore(pipe) or put the base UNet back before the run")
        dims = [getattr(u.config, "time_cond_proj_dim", None) for u in (unet, self.student)]
        if dims[0] != dims[1]:
            raise ValueError(f"the student's time_cond_proj_dim is {dims[1]}, the base's {dims[0]}: the pipeline builds "
                             "LCM's guidance embedding once from the base's UNet, so this student cannot take over "
                             "mid-run (use its LoRA, or divdistill.run_plan)")
        self._base = unet

    def _check_adapter(self, unet) -> None:
        loaded = sorted(getattr(unet, "peft_config", None) or {})
        if self.student not in loaded:
            raise ValueError(f"no adapter {self.student!r} on the pipeline's UNet; loaded adapters: {loaded} "
                             "(load it with pipe.load_lora_weights(..., adapter_name=...))")
        active = _lora_active(unet)
        if active:
            raise RuntimeError(f"adapter(s) {active} were active during the base's first step; call "
                               "pipe.disable_lora() (or pipe.unet.disable_adapters()) before the run")

    def _switch(self, pipe, kw: dict) -> dict:
        """Hand over to the student after the base's k-th step (and change the guidance if asked)."""
        kw = self._set_guidance(pipe, kw)
        if self.lora_mode:
            pipe.unet.enable_adapters()
            pipe.unet.set_adapters([self.student], [self.adapter_scale])
        else:
            pipe.unet = self.student
        return kw

    def _set_guidance(self, pipe, kw: dict) -> dict:
        g = self.student_guidance
        if g is None:
            return kw
        cfg_on = bool(pipe.do_classifier_free_guidance)
        if g > 1 and not cfg_on:
            raise ValueError(f"student_guidance={g} needs CFG, but the base steps ran without it (guidance_scale="
                             f"{pipe.guidance_scale}); the unconditional embeddings were never computed")
        if g <= 1 and cfg_on:
            missing = [k for k in CFG_TENSORS if k in pipe._callback_tensor_inputs and k not in kw]
            if missing or "prompt_embeds" not in kw:
                raise ValueError(f"dropping CFG needs the pipeline to pass {list(CFG_TENSORS)} to the callback; "
                                 f"missing {missing or ['prompt_embeds']}")
            kw = {**kw, **{k: kw[k].chunk(2)[1] for k in CFG_TENSORS if k in kw}}  # (2B, ...) → the cond half
        pipe._guidance_scale = g  # the attribute diffusers' own CFG-cutoff callbacks set
        return kw

    def restore(self, pipe) -> None:
        """Put the pipeline back in the base's state (called after the last step; call it after an interrupted run)."""
        if self.lora_mode:
            pipe.unet.disable_adapters()
        elif self._base is not None:
            pipe.unet = self._base
