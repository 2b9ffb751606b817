"""Committed Fig. 5 curves: compute every plan's curves, store them with the world's fingerprint, reuse them only
for that exact world (else compute live)."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch

from ...io import atomic_write_json
from .trajectory import THRESHOLD_FRACTION, Curves, plan_curves, reference_distance, reference_layout


def world_fingerprint(world) -> str:
    """A hash of what the curves depend on: every model's weights, timesteps, guidance, scheduler class and noise
    schedule, and the text encoder's weights (bit-exact, independent of thread count). Committed curves are used
    only for the exact world that produced them."""
    h = hashlib.sha256()
    for name in world.names:
        spec = world.spec(name)
        for k, v in sorted(spec.unet.state_dict().items()):
            h.update(k.encode()), h.update(v.detach().float().cpu().numpy().tobytes())
        sched = spec.make_scheduler()
        h.update(json.dumps([name, spec.default_timesteps(), spec.guidance, type(sched).__name__,
                             sched.config.prediction_type]).encode())
        h.update(np.round(sched.alphas_cumprod.double().numpy(), 6).tobytes())
    for key, mod in sorted(world.extras.items()):  # the text encoder (tiny); pipelines are hashed via their UNets
        if isinstance(mod, torch.nn.Module):
            for k, v in sorted(mod.state_dict().items()):
                h.update(f"{key}.{k}".encode()), h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def save_curves(path: str, curves: dict, prompts, seeds, meta: dict) -> None:
    """Write the curves of every plan (and the pairs and provenance) atomically as JSON."""
    atomic_write_json(path, {**meta, "prompts": list(prompts), "seeds": [int(s) for s in seeds],
                             "curves": [c.as_dict() for c in curves.values()]})


def load_curves(path: str) -> tuple[dict, dict]:
    """(name → Curves, metadata) from `save_curves` output."""
    with open(path) as f:
        data = json.load(f)
    curves = {d["name"]: Curves.from_dict(d) for d in data.pop("curves")}
    return curves, data


def compute_all(world, plans: dict, prompts, seeds, features, layout=None, batch_size: int = 64) -> tuple[dict, dict]:
    """Curves of every plan on the same pairs, plus the thresholds (stated rule: THRESHOLD_FRACTION × the base's
    within-prompt distance between final images)."""
    curves = {n: plan_curves(world, p, prompts, seeds, features, layout, batch_size, name=n) for n, p in plans.items()}
    b = curves["base"]
    meta = {"reference_distance": reference_distance(b.final_feats, prompts), "threshold_fraction": THRESHOLD_FRACTION}
    if layout is not None:
        meta["reference_layout"] = reference_layout(b.final_layout, prompts)
    return curves, meta


def thresholds(meta: dict) -> tuple[float, float | None]:
    """(distance threshold, layout threshold or None) from a curves file's metadata."""
    f = meta["threshold_fraction"]
    lay = meta.get("reference_layout")
    return f * meta["reference_distance"], (f * lay if lay is not None else None)


def load_or_compute(world, plans: dict, prompts, seeds, features, layout=None, path: str | None = None,
                    batch_size: int = 64) -> tuple[dict, dict, str]:
    """The committed curves at `path` when they were made by this very world (same fingerprint) and cover these
    plans; otherwise computed now on (prompts, seeds). Returns (curves, metadata, where they came from)."""
    if path and os.path.exists(path):
        curves, meta = load_curves(path)
        fp = world_fingerprint(world)
        same_plans = all(n in curves and curves[n].timesteps == p.timesteps for n, p in plans.items())
        if meta.get("world_fingerprint") == fp and same_plans:
            return {n: curves[n] for n in plans}, meta, f"committed ({os.path.basename(path)}, n={len(meta['seeds'])})"
        why = "another world" if meta.get("world_fingerprint") != fp else "other plans"
    else:
        why = "no committed file"
    curves, meta = compute_all(world, plans, prompts, seeds, features, layout, batch_size)
    meta.update(prompts=list(prompts), seeds=[int(s) for s in seeds])
    return curves, meta, f"computed live (n={len(seeds)}; {why})"
