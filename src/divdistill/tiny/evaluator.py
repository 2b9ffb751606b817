"""The tiny world's evaluator CNN: the stand-in for Inception (FID), CLIP (prompt adherence) and DreamSim (distance).

It is trained on generator data (every shape and style, held-out ones included, as Inception and CLIP have seen
the world) to predict each scene's factors. Its penultimate features feed FID and precision/recall/density/coverage;
cosine distance between them is the perceptual distance for diversity and DT curves; its factor predictions score
prompt adherence and attributes such as size for sliders.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..io import atomic_save_safetensors, atomic_write_json, provenance
from .world import COLOR_NAMES, POS_RANGE, SHAPES, SIZE_RANGE, SMALL_LARGE_SPLIT, STYLES, parse_prompt, sample_scenes

HEADS = {"shape": len(SHAPES), "color": len(COLOR_NAMES), "bg": 2, "style": len(STYLES)}
REGRESS = ("size", "x", "y")
_RANGES = {"size": SIZE_RANGE, "x": POS_RANGE, "y": POS_RANGE}


def _block(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU())


class Evaluator(nn.Module):
    """Small CNN: (B, 3, 32, 32) in [-1, 1] → 128-d features and factor predictions."""

    num_features = 128

    # the prompt reader generic metrics (metrics.adherence) use: the evaluator knows its world's vocabulary
    parse_prompt = staticmethod(parse_prompt)
    size_split = SMALL_LARGE_SPLIT

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.body = nn.Sequential(_block(3, w // 2, 1), _block(w // 2, w, 2), _block(w, 2 * w, 1),
                                  _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, 2))  # (B, 4w, 4, 4)
        self.proj = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 16, self.num_features), nn.SiLU())
        self.heads = nn.ModuleDict({k: nn.Linear(self.num_features, n) for k, n in HEADS.items()})
        self.regress = nn.Linear(self.num_features, len(REGRESS))
        self.width = width

    def features(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        return self.proj(self.body(images))  # (B, 128)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features, so the module plugs into torchmetrics' FrechetInceptionDistance(feature=...)."""
        return self.features(images)

    def predict(self, images: torch.Tensor) -> dict:
        """Factor predictions: class indices for shape/color/bg/style, pixels for size/x/y."""
        h = self.features(images)
        out = {k: head(h).argmax(-1) for k, head in self.heads.items()}
        reg = self.regress(h)
        for i, k in enumerate(REGRESS):
            lo, hi = _RANGES[k]
            out[k] = lo + (reg[:, i] + 1) / 2 * (hi - lo)
        return out

    def logits(self, images: torch.Tensor) -> dict:
        h = self.features(images)
        return {**{k: head(h) for k, head in self.heads.items()}, "regress": self.regress(h)}


def _check_images(images: torch.Tensor) -> None:
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[-2:] != (32, 32):
        raise ValueError(f"expected images of shape (B, 3, 32, 32) in [-1, 1], got {tuple(images.shape)}")


@dataclass
class EvaluatorConfig:
    steps: int = 3000
    batch: int = 128
    lr: float = 2e-3
    width: int = 32
    seed: int = 1
    noise: float = 0.05  # pixel noise augmentation so generated (imperfect) images are read robustly
    ckpt_every: int = 500


def evaluator_loss(model: Evaluator, sc) -> torch.Tensor:
    lg = model.logits(sc.images)
    loss = sum(F.cross_entropy(lg[k], getattr(sc, k)) for k in HEADS)
    target = torch.stack([(getattr(sc, k) - _RANGES[k][0]) / (_RANGES[k][1] - _RANGES[k][0]) * 2 - 1
                          for k in REGRESS], -1)  # (B, 3) in [-1, 1]
    return loss + 10 * F.mse_loss(lg["regress"], target)


def train_evaluator(out: str, cfg: EvaluatorConfig, device: str = "cpu", progress: bool = True) -> dict:
    """Train (or resume) the evaluator on generator scenes of every shape and style; writes weights + provenance."""
    from ..training import fit, optimizer_step

    torch.manual_seed(cfg.seed)
    model = Evaluator(cfg.width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    lr_at = lambda s: cfg.lr * 0.5 * (1 + torch.cos(torch.tensor(s / cfg.steps * torch.pi))).item()  # noqa: E731

    def step_fn(step: int) -> torch.Tensor:
        sc = sample_scenes(cfg.batch, seed=10_000_000 + cfg.seed * 100_003 + step, shapes=SHAPES, styles=STYLES)
        g = torch.Generator().manual_seed(step)
        sc.images = (sc.images + cfg.noise * torch.randn(sc.images.shape, generator=g)).to(device)
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step)
        loss = evaluator_loss(model, sc)
        optimizer_step(opt, loss, clip=None)
        return loss.detach()

    res = fit(out, {"model": model, "opt": opt}, step_fn, cfg.steps, cfg.ckpt_every, "evaluator", progress)
    model = model.cpu().eval()
    metrics = evaluator_accuracy(model, n=2000, seed=424242)
    save_evaluator(model, out)
    atomic_write_json(os.path.join(out, "provenance.json"),
                      provenance({"kind": "evaluator", **asdict(cfg)}, cfg.seed, cfg.steps, res["wall"], metrics))
    return {"wall_time_s": res["wall"], **metrics}


def adherence_from_predictions(pred: dict, prompts: list[str]) -> dict:
    """`metrics.adherence` from cached factor predictions of the tiny evaluator (shape, color, size, bg, style)."""
    from ..metrics import factor_adherence

    return factor_adherence(pred, prompts, parse_prompt, SMALL_LARGE_SPLIT)


@torch.no_grad()
def evaluator_accuracy(model: Evaluator, n: int = 2000, seed: int = 424242) -> dict:
    """Held-out accuracy per factor; size/x/y as mean abs error (pixels) and accuracy in 4 equal bins."""
    sc = sample_scenes(n, seed=seed, shapes=SHAPES, styles=STYLES)
    pred = model.eval().predict(sc.images)
    res = {f"acc_{k}": (pred[k] == getattr(sc, k)).float().mean().item() for k in HEADS}
    for k in REGRESS:
        lo, hi = _RANGES[k]
        true = getattr(sc, k)
        res[f"mae_{k}_px"] = (pred[k] - true).abs().mean().item()
        bins = lambda v: ((v - lo) / (hi - lo) * 4).clamp(0, 3.999).floor()  # noqa: E731
        res[f"acc_{k}_4bins"] = (bins(pred[k]) == bins(true)).float().mean().item()
    res["n"] = n
    return res


def save_evaluator(model: Evaluator, out: str) -> None:
    atomic_save_safetensors(model.state_dict(), os.path.join(out, "evaluator.safetensors"))
    atomic_write_json(os.path.join(out, "config.json"), {"width": model.width})


def load_evaluator(path: str) -> Evaluator:
    """Load the committed evaluator (fp16 on disk → fp32, eval mode)."""
    from safetensors.torch import load_file

    cfg_path = os.path.join(path, "config.json")
    if not os.path.exists(cfg_path):
        raise FileNotFoundError(f"no evaluator at {path!r} (expected config.json + evaluator.safetensors); "
                                "train one with `python -m divdistill.tiny train-evaluator`")
    with open(cfg_path) as f:
        model = Evaluator(**json.load(f))
    model.load_state_dict({k: v.float() for k, v in load_file(os.path.join(path, "evaluator.safetensors")).items()})
    return model.eval().requires_grad_(False)
