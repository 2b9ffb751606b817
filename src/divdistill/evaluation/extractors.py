"""Per-image feature extractors of the evaluate CLI: the paper's Inception, CLIP, DreamSim and the tiny evaluator.

Each maps uint8 images (B, 3, S, S) (and prompts, where scored against text) to named per-image tensors (B, ...).
"""
from __future__ import annotations

import importlib
import re

import torch

SDXL_EXTRA = 'pip install -e ".[sdxl]"'


class MissingExtraError(ImportError):
    """An optional paper-scale metric package (torch-fidelity, dreamsim) is not installed."""


def require(module: str, package: str, what: str):
    """Import `module` or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(f"{what} needs the `{package}` package, which is not installed: {SDXL_EXTRA}") from e


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


class TinyExtractor:
    """The tiny world's evaluator, stand-in for every paper model: features (FID/PRDC/diversity), shape logits (IS),
    factor predictions (prompt adherence, the CLIP-score analogue)."""

    size, needs_prompt, name = 32, False, "tiny-evaluator"

    def __init__(self, evaluator):
        self.evaluator = evaluator.eval()
        self.device = next(evaluator.parameters()).device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts=None) -> dict:
        x = images.to(self.device).float() / 127.5 - 1  # (B, 3, 32, 32) in [-1, 1]
        h = self.evaluator.features(x)  # (B, 128)
        pred = self.evaluator.predict(x)
        return {"feat": h, "logits": self.evaluator.heads["shape"](h),
                **{f"pred_{k}": pred[k].float() for k in ("shape", "color", "bg", "style", "size")}}


class _PoolAndLogits(torch.nn.Module):
    """torchmetrics' NoTrainInceptionV3 with both outputs of one pass: its forward returns only the first feature."""

    def __init__(self):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048", "logits_unbiased"])

    def forward(self, x):  # uint8 (B, 3, H, W) → (B, 2048), (B, 1008)
        return self.net._torch_fidelity_forward(x)


class InceptionExtractor:
    """Inception-v3 (torch-fidelity's FID network, as torchmetrics uses it): 2048-d pool features and 1008 logits.

    Args:
        model: maps uint8 (B, 3, 299, 299) to (pool features, logits); default torchmetrics' NoTrainInceptionV3
            (needs torch-fidelity; its weights download on first use). Tests pass a random-weight network.
        device: where it runs.
    """

    size, needs_prompt = 299, False

    def __init__(self, model=None, device="cpu", name: str | None = None):
        name = name or ("inception-v3-compat" if model is None else f"custom-{type(model).__name__}")
        if model is None:
            require("torch_fidelity", "torch-fidelity", "FID and Inception Score at scale='sdxl'")
            model = _PoolAndLogits()
        self.model, self.device, self.name = model.to(device).eval(), torch.device(device), name

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts=None) -> dict:
        pool, logits = self.model(images.to(self.device))
        return {"feat": pool.reshape(len(images), -1), "logits": logits.reshape(len(images), -1)}


class _TensorFeatures(torch.nn.Module):
    """CLIPModel whose get_*_features return tensors: transformers ≥ 5 returns a ModelOutput (the projected
    embedding is its pooler_output), which torchmetrics 1.9's clip_score cannot normalise."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def get_image_features(self, *a, **kw):
        out = self.model.get_image_features(*a, **kw)
        return out if torch.is_tensor(out) else out.pooler_output

    def get_text_features(self, *a, **kw):
        out = self.model.get_text_features(*a, **kw)
        return out if torch.is_tensor(out) else out.pooler_output


class ClipExtractor:
    """CLIP score of each image against its prompt, through torchmetrics' CLIPScore (100 · cos(image, text)).

    Args:
        model_id: a hub id or a local folder holding a CLIPModel and its CLIPProcessor (default: the paper's
            CLIP ViT-L/14, torchmetrics' default).
        device: where it runs.
    """

    size, needs_prompt = 224, True

    def __init__(self, model_id: str = "openai/clip-vit-large-patch14", device="cpu"):
        from torchmetrics.multimodal.clip_score import CLIPScore
        from transformers import CLIPModel, CLIPProcessor

        model = _TensorFeatures(CLIPModel.from_pretrained(model_id).to(device).eval())
        self.metric = CLIPScore(model_name_or_path=lambda: (model, CLIPProcessor.from_pretrained(model_id)))
        self.device, self.name = torch.device(device), f"clip-{_slug(model_id)[-60:]}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str]) -> dict:
        from torchmetrics.functional.multimodal.clip_score import _clip_score_update

        score, _ = _clip_score_update(list(images.to(self.device)), list(prompts), self.metric.model,
                                      self.metric.processor)
        return {"score": score}


def dreamsim_features(images: torch.Tensor, cache: dict) -> torch.Tensor:
    """DreamSim embeddings (the paper's diversity metric, Table 3) of images in [-1, 1]; needs the sdxl extra."""
    if "dreamsim" not in cache:
        mod = require("dreamsim", "dreamsim", "DreamSim diversity at scale='sdxl'")
        dev = images.device if images.is_cuda else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        cache["dreamsim"] = mod.dreamsim(pretrained=True, device=str(dev))[0]
    model = cache["dreamsim"]
    dev = next(model.parameters()).device  # wherever the model lives
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 32):
            x = (images[i:i + 32].float().to(dev).clamp(-1, 1) + 1) / 2  # (b, 3, H, W) in [0, 1]
            x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)
            out.append(model.embed(x.clamp(0, 1)).float().cpu())
    return torch.cat(out)


class DreamSimExtractor:
    """DreamSim embeddings for per-prompt pairwise diversity (Table 3); cosine distance between them is DreamSim's.

    Args:
        device: where it runs.
        model: anything with `.embed(x)` for x in [0, 1] at 224² (default: DreamSim's pretrained ensemble, which
            needs the `dreamsim` package; tests pass a random-weight network).
    """

    size, needs_prompt = 224, False

    def __init__(self, device="cpu", model=None):
        if model is None:
            require("dreamsim", "dreamsim", "DreamSim diversity at scale='sdxl'")
        self.cache, self.device = ({} if model is None else {"dreamsim": model.to(device)}), torch.device(device)
        self.name = "dreamsim" if model is None else f"custom-{type(model).__name__}"

    def __call__(self, images: torch.Tensor, prompts=None) -> dict:
        return {"embed": dreamsim_features(images.to(self.device).float() / 127.5 - 1, self.cache)}
