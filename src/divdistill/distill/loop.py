"""A resumable training loop: every part's state is checkpointed atomically; a killed run resumes where it stopped."""
from __future__ import annotations

import os
import time

import torch
from tqdm.auto import tqdm

from ..provenance import atomic_torch_save


def fit(out: str, parts: dict, step_fn, steps: int, ckpt_every: int = 100, desc: str = "train",
        progress: bool = True) -> dict:
    """Run step_fn(step) → loss for steps [start, steps), resuming from `out/train_state.pt` when present.

    `parts` maps names to objects with state_dict/load_state_dict (modules, optimizers, replay buffers). step_fn
    must draw its randomness from the step number, so a resumed run equals an uninterrupted one.
    """
    os.makedirs(out, exist_ok=True)
    path, start, wall, losses = os.path.join(out, "train_state.pt"), 0, 0.0, []
    if os.path.exists(path):
        st = torch.load(path, map_location="cpu", weights_only=False)
        for k, v in parts.items():
            v.load_state_dict(st["parts"][k])
        start, wall, losses = st["step"], st["wall"], st["losses"]
    t0 = time.time() - wall
    for step in tqdm(range(start, steps), initial=start, total=steps, desc=desc, disable=not progress):
        out = step_fn(step)
        losses.append({k: float(v) for k, v in out.items()} if isinstance(out, dict) else float(out))
        if (step + 1) % ckpt_every == 0 or step + 1 == steps:
            atomic_torch_save({"parts": {k: v.state_dict() for k, v in parts.items()}, "step": step + 1,
                               "wall": time.time() - t0, "losses": losses}, path)
    return {"losses": losses, "wall": time.time() - t0}


def last_mean(losses: list, key: str | None = None, n: int = 50) -> float:
    """Mean of the last n recorded losses (of `key` when steps returned several)."""
    tail = [l[key] if key else l for l in losses[-n:]]
    return sum(tail) / max(1, len(tail))


def step_generator(seed: int, step: int) -> torch.Generator:
    """The per-step random stream: a pure function of (seed, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


class Teacher:
    """The frozen tiny teacher + text encoder, and prompt encoding for the trainers."""

    def __init__(self, root: str, device: str = "cpu"):
        from ..tiny.loader import load_unet
        from ..tiny.text import TextEncoder, Tokenizer

        self.device = torch.device(device)
        self.unet = load_unet(os.path.join(root, "teacher", "unet"), self.device)
        self.enc = TextEncoder.load(os.path.join(root, "teacher", "text_encoder")).to(self.device).requires_grad_(False)
        self.tok = Tokenizer()

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        cond = self.enc(self.tok(prompts).to(self.device))  # (B, L, D)
        return cond, self.enc(self.tok([""] * len(prompts)).to(self.device))

    def eps_fn(self, unet=None, guidance: float = 1.0):
        """prompts → eps(x, t) of `unet` (default: the teacher) with CFG; the form DDIL's rollouts take."""
        from .common import guided_eps

        net = self.unet if unet is None else unet

        def for_prompts(prompts):
            c, u = self.encode(prompts)
            return lambda x, t: guided_eps(net, x, t, c, u, guidance)
        return for_prompts


def random_prompts(n: int, g: torch.Generator) -> list[str]:
    """Prompts of n fresh pretraining scenes, drawn from the step's generator."""
    from ..tiny.world import sample_scenes

    return sample_scenes(n, seed=int(torch.randint(2**31, (1,), generator=g))).prompts
