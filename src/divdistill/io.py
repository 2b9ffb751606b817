"""The one home of file output: atomic text/JSON/torch/safetensors/PNG writes and the provenance record of every
checkpoint and committed JSON."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time

import torch


def atomic_write_text(path: str, text: str) -> None:
    """Write text to `path` via a temporary file and rename, so a kill never leaves half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str, obj) -> None:
    """Write JSON to `path` atomically (see `atomic_write_text`)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float))


def atomic_torch_save(obj, path: str) -> None:
    """torch.save through a temporary file and rename."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_save_safetensors(state: dict, path: str, dtype=torch.float16) -> None:
    """Save a state dict as safetensors (cast to `dtype`) through a temporary file and rename."""
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    save_file({k: v.detach().to(dtype).contiguous() for k, v in state.items()}, tmp)
    os.replace(tmp, path)


def git_commit() -> str:
    """The current git commit (with '+dirty' when the tree has changes), or 'unknown' outside a checkout.

    A copy of the tree without .git (e.g. a lent GPU's) names its commit in $DIVDISTILL_GIT_COMMIT."""
    if os.environ.get("DIVDISTILL_GIT_COMMIT"):
        return os.environ["DIVDISTILL_GIT_COMMIT"]
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        sha = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=here, stderr=subprocess.DEVNULL).decode().strip()
        dirty = subprocess.check_output(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                        stderr=subprocess.DEVNULL).decode().strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(config: dict, seed: int, steps: int, wall_time_s: float, metrics: dict | None = None) -> dict:
    """The provenance record written next to every checkpoint."""
    return {
        "config": config,
        "seed": seed,
        "steps": steps,
        "wall_time_s": round(wall_time_s, 1),
        "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "device": "cuda" if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}",
        "host": platform.machine(),
        "metrics": metrics or {},
    }


def update_metrics(path: str, metrics: dict) -> None:
    """Merge `metrics` into the provenance JSON at `path` (atomic)."""
    with open(path) as f:
        rec = json.load(f)
    rec.setdefault("metrics", {}).update(metrics)
    atomic_write_json(path, rec)


def checkpoint_hashes(root: str | None) -> dict:
    """sha1 (first 12 hex) of every weight file (*.safetensors) and schedule (scheduler.json: its noise schedule and
    sampling prior) under a folder, by relative path: which models ran."""
    import glob
    import hashlib

    if not root:
        return {}
    out = {}
    files = [f for pat in ("*.safetensors", "scheduler.json") for f in glob.glob(os.path.join(root, "**", pat),
                                                                               recursive=True)]
    for f in sorted(files):
        with open(f, "rb") as fh:
            out[os.path.relpath(f, root)] = hashlib.sha1(fh.read()).hexdigest()[:12]
    return out


def save_png(img, path: str) -> None:
    """An image (3, H, W) in [-1, 1] as an 8-bit RGB PNG, written atomically (a killed run leaves no half file)."""
    import numpy as np
    from PIL import Image

    arr = ((img.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()  # (H, W, 3)
    tmp = path + ".tmp.png"
    Image.fromarray(np.ascontiguousarray(arr)).save(tmp)
    os.replace(tmp, path)


def weights_fingerprint(module: torch.nn.Module) -> str:
    """sha1 (first 12 hex) of every parameter's and buffer's name, shape, sum and sum of squares (float64): which
    weights a cached measurement came from, cheap enough for an SDXL UNet on its device (one reduction per tensor)."""
    import hashlib

    h = hashlib.sha1()
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            t64 = t.detach().double()
            h.update(f"{name}{tuple(t.shape)}{float(t64.sum()):.10e}{float((t64 * t64).sum()):.10e}".encode())
    return h.hexdigest()[:12]


def plan_weights(world, plan) -> dict:
    """{model: weights_fingerprint of its UNet} for every model a plan runs: which weights a measurement used."""
    return {m: weights_fingerprint(world.spec(m).unet) for m in sorted(set(plan.models))}


def save_unet(unet: torch.nn.Module, folder: str) -> None:
    """A fp16 CPU copy of `unet` saved with diffusers' save_pretrained (safetensors); the config's `_name_or_path`
    (where the weights were first loaded from: a path on the training machine) is not written."""
    import copy

    u = copy.deepcopy(unet).to("cpu").half()
    u.register_to_config(_name_or_path=None)
    u.save_pretrained(folder, safe_serialization=True)
