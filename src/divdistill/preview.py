"""x̂0 previews (the paper's DT-visualization, Fig. 3) for any diffusers pipeline, through `callback_on_step_end`.

Pipelines throw the scheduler's `pred_original_sample` away, and previews of x_t look like noise on few-step
models. `DTPreview` records the UNet's input and output with a PyTorch forward hook (no monkeypatching), combines
classifier-free guidance as the pipeline does, and turns each step into x̂0 through the same `x0_from_step` adapter
that `run_plan` uses, from the latents and the scheduler's state.

    with DTPreview(pipe, steps=range(0, 50, 5), max_size=256, decoder="taesd") as rec:
        image = pipe(prompt, callback_on_step_end=rec).images[0]
    rec.previews  # {step index: (B, 3, h, w) in [-1, 1], on the CPU}
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .sampling import x0_from_step

DECODERS = ("vae", "taesd", "identity")
TAESD_IDS = {4: "madebyollin/taesdxl"}  # latent channels → the TAESD family's decoder for SDXL-type latents


class UNetCalls(contextlib.AbstractContextManager):
    """Records (input sample, timestep, output) of every forward call of the given modules (a forward hook)."""

    def __init__(self, *modules):
        self.modules = list(dict.fromkeys(modules))  # one hook per distinct module (LoRA mode shares one UNet)
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._handles = []

    def _hook(self, module, args, kwargs, output):
        sample = args[0] if args else kwargs["sample"]
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        out = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)
        self.calls.append((sample.detach(), torch.as_tensor(t).detach(), out.detach()))

    def watch(self, module) -> None:
        """Also record `module`'s calls (e.g. a student swapped in mid-run), whether or not the context is open."""
        if any(m is module for m in self.modules):
            return
        self.modules.append(module)
        if self._handles:  # open: hook now; __exit__ removes every handle in the list
            self._handles.append(module.register_forward_hook(self._hook, with_kwargs=True))

    def __enter__(self):
        self._handles = [m.register_forward_hook(self._hook, with_kwargs=True) for m in self.modules]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        return False

    def take(self) -> list:
        """The calls since the last take."""
        calls, self.calls = self.calls, []
        return calls


def _guided(pipe, calls, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(model output after the pipeline's guidance, UNet input x) for one step: (B, C, h, w) each."""
    if not calls:
        raise RuntimeError("no UNet call was recorded for this step; use DTPreview as a context manager "
                           "(`with DTPreview(pipe) as rec: pipe(..., callback_on_step_end=rec)`)")
    sample, _, out = calls[-1]
    if out.shape[0] == batch:  # no CFG batch (guidance off, or LCM's w-embedding)
        return out, sample
    if out.shape[0] != 2 * batch:
        raise ValueError(f"the UNet returned a batch of {out.shape[0]} for {batch} latents; DTPreview understands "
                         "pipelines that batch [uncond; cond] (classifier-free guidance) or run one pass")
    uncond, cond = out.chunk(2)
    g = float(getattr(pipe, "guidance_scale", 1.0))
    guided = uncond + g * (cond - uncond)
    rescale = float(getattr(pipe, "guidance_rescale", 0.0) or 0.0)
    if rescale > 0:
        from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

        guided = rescale_noise_cfg(guided, cond, guidance_rescale=rescale)
    return guided, sample.chunk(2)[1]


def make_decoder(pipe, decoder):
    """A latents → image function: "vae" (the pipeline's), "taesd" (AutoencoderTiny from the hub), "identity", an
    `AutoencoderKL`/`AutoencoderTiny` module, or any callable."""
    if callable(decoder) and not isinstance(decoder, torch.nn.Module):
        return decoder
    if isinstance(decoder, str):
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; valid: {list(DECODERS)}, an autoencoder module, "
                             "or a callable")
        if decoder == "identity":
            return lambda z: z
        if decoder == "vae":
            decoder = pipe.vae
        else:
            from diffusers import AutoencoderTiny

            ch = pipe.vae.config.latent_channels
            if ch not in TAESD_IDS:
                raise ValueError(f"no TAESD decoder known for {ch}-channel latents; pass an AutoencoderTiny module")
            decoder = AutoencoderTiny.from_pretrained(TAESD_IDS[ch]).to(pipe.device, pipe.vae.dtype)
    return lambda z: _decode_with(decoder, z)


@torch.no_grad()
def _decode_with(vae, z: torch.Tensor) -> torch.Tensor:
    """Latents (B, c, h, w) → images (B, 3, H, W) in [-1, 1] through an AutoencoderKL or AutoencoderTiny."""
    cfg = vae.config
    dtype = torch.float32 if (next(vae.parameters()).dtype == torch.float16 and getattr(cfg, "force_upcast", False)) \
        else next(vae.parameters()).dtype
    z = z / getattr(cfg, "scaling_factor", 1.0) + (getattr(cfg, "shift_factor", None) or 0.0)
    if dtype != next(vae.parameters()).dtype:
        vae = vae.to(dtype)  # the stock SDXL VAE overflows in fp16 (its config says force_upcast)
    return vae.decode(z.to(dtype)).sample.float().clamp(-1, 1)


def bound_size(images: torch.Tensor, max_size: int | None) -> torch.Tensor:
    """Downsample (B, C, H, W) so that its longer side is at most max_size (area averaging); None keeps it."""
    if max_size is None or max(images.shape[-2:]) <= max_size:
        return images
    h, w = images.shape[-2:]
    s = max_size / max(h, w)
    return F.interpolate(images.float(), size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")


class DTPreview(UNetCalls):
    """A `callback_on_step_end` that records x̂0 (paper Fig. 3's DT) at chosen steps of any diffusers pipeline.

    Args:
        pipe: the pipeline (its UNet is hooked while the context is open; its scheduler gives x̂0).
        steps: step indices to record (default: every step).
        max_size: longest side of a stored preview in pixels (None: full size).
        decoder: "vae" (the pipeline's), "taesd" (cheap AutoencoderTiny), "identity" (latents, or a pixel-space
            model's images), an autoencoder module, or a callable latents → images.
    After the run, `previews` maps step index → (B, C, h, w) on the CPU and `timesteps` step index → t.
    """

    def __init__(self, pipe, steps=None, max_size: int | None = 256, decoder="vae"):
        unet = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        if unet is None:
            raise ValueError(f"{type(pipe).__name__} has neither a `unet` nor a `transformer` to read x̂0 from")
        super().__init__(unet)
        self.pipe, self.max_size = pipe, max_size
        self.steps = None if steps is None else {int(s) for s in steps}
        self.decode = make_decoder(pipe, decoder)
        self.previews: dict[int, torch.Tensor] = {}
        self.timesteps: dict[int, int] = {}

    def x0(self, pipe, t, latents: torch.Tensor) -> torch.Tensor:
        """x̂0 in latent space of the step that just ran at timestep t; latents: the pipeline's after that step."""
        model_output, x_in = _guided(pipe, self.take(), latents.shape[0])
        return x0_from_step(None, pipe.scheduler, model_output, x_in, int(round(float(t))))

    def __call__(self, pipe, i: int, t, callback_kwargs: dict) -> dict:
        if not self._handles:
            raise RuntimeError("DTPreview records only inside its context: `with DTPreview(pipe) as rec: ...`")
        if self.steps is not None and i not in self.steps:
            self.take()
            return callback_kwargs
        x0 = self.x0(pipe, t, callback_kwargs["latents"])
        self.previews[i] = bound_size(self.decode(x0).float(), self.max_size).cpu()
        self.timesteps[i] = int(round(float(t)))
        return callback_kwargs

    def stack(self) -> torch.Tensor:
        """The recorded previews in step order: (S, B, C, h, w)."""
        if not self.previews:
            raise ValueError("no previews were recorded (did the pipeline run with callback_on_step_end=<this>?)")
        return torch.stack([self.previews[i] for i in sorted(self.previews)])


@torch.no_grad()
def run_with_xt(world, plan, prompts, seeds):
    """`run_plan` plus the x_t each step's model saw, decoded like x̂0 (the "x_t view" beside the DT view): DTPreview's
    path for this package's worlds, through run_plan's callback instead of a UNet hook.

    x_t is the model's input without CFG doubling: the VP latent √ᾱ·x0 + √(1−ᾱ)·ε for DDPM/DDIM/LCM schedulers and
    Euler's scaled input x/√(σ²+1), the same quantity. Returns (Result, xt (S, B, C, H, W) on the CPU).
    """
    from .sampling import run_plan

    frames = []
    res = run_plan(world, plan, prompts, seeds, callback=lambda i, t, model, x_t, x0: frames.append(
        world.decode(x_t).float().cpu()))
    return res, torch.stack(frames)
