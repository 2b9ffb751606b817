"""ONNX export of the tiny world for the live page (issue 18): the teacher, the text encoder, the paper's four
students (Sec. 5 hybrid, Tables 2–3) and the tiny evaluator (the book's diversity: mean pairwise cosine distance of
its features, Table 3), plus each model's scheduler constants, cached by the world's content hash."""
from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np
import onnx
import torch

from .compact import compact
from .noise import N_SEEDS, noise_arrays

MODELS = ("base", "dmd2", "turbo", "lightning", "lcm")  # the teacher and the paper's four students
MAX_BATCH = 64  # 16 images × CFG's doubled batch, with room
HERE = os.path.dirname(os.path.abspath(__file__))
EXPORT_CODE = ("export.py", "compact.py", "noise.py")  # the code whose change means a re-export
EVALUATOR = "evaluator"  # evaluator.onnx: images (B, 3, 32, 32) → the features metrics.pairwise_diversity reads


def atomic_write(path: str, data: bytes) -> None:
    """Write bytes to path through a temporary file and a rename (a kill never leaves half a file)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def world_root(world=None) -> str:
    """The folder of the world to export: the given world's, else the default tiny world's (without loading it)."""
    if world is None:
        from ..tiny.loader import variant_dir

        root = variant_dir()
    else:
        root = world.extras.get("root")
    if not root or not os.path.isdir(root):
        raise ValueError(f"the live page exports a tiny world loaded from disk; this world has root={root!r}")
    return root


def evaluator_root(root: str, world=None) -> str:
    """The evaluator folder a world uses: its extras' `evaluator_root`, else the loader's rule (the world folder's
    own evaluator/, else the shared data/tiny/evaluator) applied to `root` without loading the world."""
    got = world.extras.get("evaluator_root") if world is not None else None
    if got:
        return got
    from ..tiny.loader import evaluator_dir

    own = os.path.join(root, "evaluator")
    return own if os.path.isdir(own) else evaluator_dir()


def world_hash(root: str, models=MODELS, evaluator: str | None = None) -> str:
    """Content hash of what the export reads: the teacher, the exported students, the evaluator folder (default:
    `evaluator_root(root)`), this package's code, the exporter."""
    from importlib.metadata import version

    h = hashlib.sha256(f"torch {torch.__version__} onnxscript {version('onnxscript')}".encode())
    dirs = [os.path.join(root, "teacher")] + [os.path.join(root, "students", m) for m in models if m != "base"]
    ev = evaluator or evaluator_root(root)
    if not os.path.isdir(ev):
        raise FileNotFoundError(f"the live page exports the tiny evaluator; no evaluator folder at {ev!r}")
    files = [os.path.join(HERE, f) for f in EXPORT_CODE]
    for top in dirs + [ev]:
        for d, sub, names in sorted(os.walk(top)):
            sub[:] = sorted(s for s in sub if s != "__pycache__")
            files += [os.path.join(d, f) for f in sorted(names) if ".tmp" not in f and f != "train_state.pt"]
    for p in files:
        name = (f"evaluator/{os.path.relpath(p, ev)}" if p.startswith(ev + os.sep)
                else os.path.relpath(p, root if p.startswith(root) else HERE))
        h.update(name.encode())
        with open(p, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:16]


class _UNet(torch.nn.Module):
    """(x (B, 3, 32, 32), t (B,) int64, c (B, L, D)) → ε (B, 3, 32, 32): the call `run_plan` makes."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, c):
        return self.unet(x, t, encoder_hidden_states=c).sample


class _Features(torch.nn.Module):
    """images (B, 3, 32, 32) → (B, 128): `metrics.features(evaluator, images)`, its clamp to [−1, 1] included."""

    def __init__(self, evaluator):
        super().__init__()
        self.evaluator = evaluator

    def forward(self, x):
        return self.evaluator.features(x.float().clamp(-1, 1))


def _export(module, args: tuple, names: tuple, path: str) -> None:
    """torch.onnx's dynamo exporter (the default since torch 2.9; needs onnx + onnxscript), batch axis dynamic."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    tmp = f"{path}.tmp{os.getpid()}.onnx"
    torch.onnx.export(module.eval(), args, tmp, dynamo=True, external_data=False,
                      dynamic_shapes={n: {0: batch} for n in names}, verbose=False)
    onnx.save(compact(onnx.load(tmp)), tmp)  # fp16-exact weights stored in fp16: same values, 40% of the bytes
    os.replace(tmp, path)


def _check(path: str, module, args: tuple) -> float:
    """Max |onnxruntime − torch| of an exported model on its example inputs (the export's own parity check)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
    with torch.no_grad():
        want = module(*args).numpy()
    return float(np.abs(sess.run(None, feeds)[0] - want).max())


def scheduler_info(world, name: str) -> dict:
    """What the page's schedulers need from a model's diffusers scheduler: class, config flags, ᾱ_t, grid."""
    spec = world.spec(name)
    sched = spec.make_scheduler()
    cfg = dict(sched.config)
    bad = [k for k in ("clip_sample", "thresholding", "rescale_betas_zero_snr") if cfg.get(k)]
    if bad or cfg.get("prediction_type") != "epsilon":
        raise ValueError(f"{name}: the page's schedulers implement ε-prediction without clipping/thresholding; "
                         f"this scheduler has prediction_type={cfg.get('prediction_type')!r}, {bad}")
    final = getattr(sched, "final_alpha_cumprod", None)
    return {"scheduler": type(sched).__name__, "timestep_spacing": cfg.get("timestep_spacing"),
            "timestep_scaling": cfg.get("timestep_scaling"), "num_train_timesteps": cfg["num_train_timesteps"],
            "final_alpha_cumprod": None if final is None else float(final),
            "alphas_cumprod": [float(a) for a in sched.alphas_cumprod.float()],
            "timesteps": spec.default_timesteps(), "guidance": float(spec.guidance),
            "guidance_mode": spec.guidance_mode, "n_steps": spec.n_steps}


def _vocabulary(world) -> dict:
    from ..tiny.world import BACKGROUNDS, COLOR_NAMES, SHAPES, SIZE_WORDS, STYLES

    tok = world.extras["tokenizer"]
    return {"vocab": list(tok.vocab), "max_len": tok.max_len, "shapes": list(SHAPES), "colors": list(COLOR_NAMES),
            "sizes": list(SIZE_WORDS), "styles": list(STYLES), "backgrounds": list(BACKGROUNDS)}


def export_world(world, out: str) -> dict:
    """Write text_encoder.onnx, <model>.onnx, noise.bin and world.json into `out`; returns world.json's content."""
    os.makedirs(out, exist_ok=True)
    missing = [m for m in MODELS if m not in world.specs]
    if missing:
        raise KeyError(f"the live page needs {list(MODELS)}; this world lacks {missing} (has {world.names})")
    t0, checks = time.time(), {}
    enc, tok = world.extras["text_encoder"].eval(), world.extras["tokenizer"]
    ids = tok(["a red circle", ""])  # (2, L)
    _export(enc, (ids,), ("ids",), os.path.join(out, "text_encoder.onnx"))
    checks["text_encoder"] = _check(os.path.join(out, "text_encoder.onnx"), enc, (ids,))
    cond = world.encode(["a red circle", "a blue square"]).cond["encoder_hidden_states"]  # (2, L, D)
    args = (torch.randn(2, *world.latent_shape, generator=torch.Generator().manual_seed(0)),
            torch.tensor([999, 249]), cond)
    for m in MODELS:
        module = _UNet(world.spec(m).unet)
        _export(module, args, ("x", "t", "c"), os.path.join(out, f"{m}.onnx"))
        checks[m] = _check(os.path.join(out, f"{m}.onnx"), module, args)
    from ..tiny.evaluator import load_evaluator

    ev_root = world.extras.get("evaluator_root")
    if not ev_root:
        raise ValueError("the live page exports the tiny evaluator; this world has no extras['evaluator_root']")
    feats = _Features(load_evaluator(ev_root))
    imgs = (torch.rand(4, *world.latent_shape, generator=torch.Generator().manual_seed(1)) * 2.4 - 1.2,)  # clamped
    _export(feats, imgs, ("x",), os.path.join(out, f"{EVALUATOR}.onnx"))
    checks[EVALUATOR] = _check(os.path.join(out, f"{EVALUATOR}.onnx"), feats, imgs)
    seeds = list(range(N_SEEDS))
    noise = noise_arrays(world, seeds)  # (S, 1 + steps, C, H, W)
    atomic_write(os.path.join(out, "noise.bin"), noise.astype("<f4").tobytes())
    info = {"variant": world.extras.get("variant"), "models": {m: scheduler_info(world, m) for m in MODELS},
            "base": world.base_name, "latent_shape": list(world.latent_shape), **_vocabulary(world),
            "noise": {"file": "noise.bin", "seeds": seeds, "shape": list(noise.shape),
                      "layout": "[seed][0: x_T, 1..: the noise each re-noising step draws][C][H][W], float32 LE"},
            "evaluator": {"file": f"{EVALUATOR}.onnx", "features": feats.evaluator.num_features,
                          "input": "images (B, 3, 32, 32), clamped to [-1, 1] inside the graph (metrics.features)",
                          "diversity": "metrics.pairwise_diversity: mean pairwise cosine distance of the features"},
            "onnx_max_abs_vs_torch": checks, "export_seconds": round(time.time() - t0, 1)}
    return info


def build_cache(cache: str, world=None, force: bool = False) -> tuple[dict, bool]:
    """The export in `cache`, redone only when the world's content hash changed; returns (world.json, exported?)."""
    from .. import load_world

    key = world_hash(world_root(world), evaluator=_ev(world))  # loads the default world only to export it
    path = os.path.join(cache, "world.json")
    if not force and os.path.exists(path):
        with open(path) as f:
            info = json.load(f)
        if info.get("hash") == key and all(os.path.exists(os.path.join(cache, f"{m}.onnx"))
                                           for m in (*MODELS, EVALUATOR)):
            return info, False
    world = world or load_world("tiny", device="cpu", students=[m for m in MODELS if m != "base"])
    if world_hash(world_root(world), evaluator=_ev(world)) != key:
        raise RuntimeError(f"load_world('tiny') loaded {world_root(world)}, not the world hashed; report this")
    info = {"hash": key, **export_world(world, cache)}
    atomic_write(path, json.dumps(info).encode())  # written last: its hash marks a complete export
    return info, True


def _ev(world):
    """The evaluator folder of a given world (None: the default world's, found by `evaluator_root`)."""
    return None if world is None else evaluator_root(world_root(world), world)
