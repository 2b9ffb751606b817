"""The engine's training loop: resumable `fit` (every part checkpointed atomically), optimizer step, EMA, loss records."""
from __future__ import annotations

import os
import time

import torch
from tqdm.auto import tqdm

from .io import atomic_torch_save


def fit(out: str, parts: dict, step_fn, steps: int, ckpt_every: int = 100, desc: str = "train",
        progress: bool = True, probe=None, probe_at=()) -> dict:
    """Run step_fn(step) → loss for steps [start, steps), resuming from `out/train_state.pt` when present.

    `parts` maps names to objects with state_dict/load_state_dict (modules, optimizers, replay buffers). step_fn
    must draw its randomness from the step number, so a resumed run equals an uninterrupted one. `probe(step)` → dict
    of metrics runs after each step count in `probe_at` (e.g. half-way, to judge a plateau); its results are
    checkpointed with the state and returned as `probes` {step: metrics}.
    """
    os.makedirs(out, exist_ok=True)
    path, start, wall, losses, probes = os.path.join(out, "train_state.pt"), 0, 0.0, [], {}
    if os.path.exists(path):
        st = torch.load(path, map_location="cpu", weights_only=False)
        for k, v in parts.items():
            v.load_state_dict(st["parts"][k])
        start, wall, losses, probes = st["step"], st["wall"], st["losses"], st.get("probes", {})
    t0 = time.time() - wall
    for step in tqdm(range(start, steps), initial=start, total=steps, desc=desc, disable=not progress):
        out_ = step_fn(step)
        losses.append({k: float(v) for k, v in out_.items()} if isinstance(out_, dict) else float(out_))
        if probe is not None and step + 1 in probe_at:
            probes[step + 1] = {**probe(step + 1), "wall_s": time.time() - t0}
        if (step + 1) % ckpt_every == 0 or step + 1 == steps or step + 1 in probe_at:
            atomic_torch_save({"parts": {k: v.state_dict() for k, v in parts.items()}, "step": step + 1,
                               "wall": time.time() - t0, "losses": losses, "probes": probes}, path)
    return {"losses": losses, "wall": time.time() - t0, "probes": probes}


def optimizer_step(opt, loss: torch.Tensor, params=None, clip: float | None = 1.0) -> None:
    """zero_grad → backward → (clip grad norm of `params`) → step: the one optimizer step every trainer takes."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None and params is not None:
        torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()


@torch.no_grad()
def ema_update(ema_params, params, decay: float) -> None:
    """Exponential moving average: ema ← decay·ema + (1 − decay)·param, in place."""
    for pe, p in zip(ema_params, params):
        pe.lerp_(p.detach().to(pe.dtype), 1 - decay)


def ema_decay_for_batch(decay: float, ref_batch: int, batch: int) -> float:
    """The per-step decay at `batch` whose horizon in *samples* equals `decay`'s at `ref_batch`: decay^(batch/ref).

    A run at 8× the batch takes 8× fewer steps over the same samples; keeping the per-step decay would leave its
    EMA anchored to the weights it started from (0.999 over 668 steps keeps 0.999^668 ≈ 0.51 of them)."""
    if not 0 <= decay < 1 or ref_batch < 1 or batch < 1:
        raise ValueError(f"need 0 <= decay < 1 and batches >= 1, got decay={decay}, ref_batch={ref_batch}, "
                         f"batch={batch}")
    return decay ** (batch / ref_batch)


def loss_curve(losses: list, key: str | None = None, points: int = 20) -> list[dict]:
    """The loss curve, compressed for provenance: mean loss over `points` equal windows, with their end step."""
    vals = [l[key] if key else l for l in losses]
    if not vals:
        return []
    w = max(1, len(vals) // points)
    return [{"step": min(i + w, len(vals)), "loss": sum(vals[i:i + w]) / len(vals[i:i + w])}
            for i in range(0, len(vals), w)]


def last_mean(losses: list, key: str | None = None, n: int = 50) -> float:
    """Mean of the last n recorded losses (of `key` when steps returned several)."""
    tail = [l[key] if key else l for l in losses[-n:]]
    return sum(tail) / max(1, len(tail))


def step_generator(seed: int, step: int) -> torch.Generator:
    """The per-step random stream: a pure function of (seed, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)
