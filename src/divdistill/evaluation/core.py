"""Evaluate run folders for Table 2 (FID, IS, CLIP score, time), Table 3 (per-prompt diversity) and PRDC."""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass

from .. import paper
from . import scores as S
from .store import FeatureCache, extract, folder_items, run_items

TABLE3_PROMPTS = tuple(paper.TABLE3_PROMPTS.values())


@dataclass
class Suite:
    """Which extractor (and which of its outputs) feeds each metric at one scale."""

    scale: str
    fid: object  # extractor with "feat" (FID, PRDC) and "logits" (IS)
    clip: object  # tiny: the evaluator's factor predictions; sdxl: CLIP scores
    diversity: object | None  # "feat" (tiny) or "embed" (DreamSim); None: not measured
    div_key: str = "feat"

    def extractors(self) -> list:
        return list(dict.fromkeys(e for e in (self.fid, self.clip, self.diversity) if e is not None))


def tiny_suite(device="cpu", evaluator=None) -> Suite:
    """Every metric on the tiny evaluator (FID/PRDC/diversity: features; IS: shape logits; CLIP: adherence %)."""
    from .extractors import TinyExtractor

    if evaluator is None:
        from ..tiny.evaluator import load_evaluator
        from ..tiny.loader import data_dir

        evaluator = load_evaluator(os.path.join(data_dir(), "evaluator"))
    ex = TinyExtractor(evaluator.to(device))
    return Suite("tiny", ex, ex, ex)


def sdxl_suite(device="cpu", clip_model="openai/clip-vit-large-patch14", diversity=True, inception=None,
               dreamsim=None) -> Suite:
    """The paper's metrics: Inception (FID, IS, PRDC), CLIP score, DreamSim (diversity); `inception`/`dreamsim`
    replace the pretrained networks (tests: random weights)."""
    from .extractors import ClipExtractor, DreamSimExtractor, InceptionExtractor

    return Suite("sdxl", InceptionExtractor(inception, device), ClipExtractor(clip_model, device),
                 DreamSimExtractor(device, dreamsim) if diversity else None, "embed")


def reference(ref: str, suite: Suite, cache_root: str, batch: int = 32, progress: bool = True):
    """Reference features (N, D) from a folder of real images, or stats (mu, sigma) from a .npz."""
    if ref.endswith(".npz"):
        made_by = S.stats_features(ref)
        if made_by is not None and made_by != suite.fid.name:
            raise ValueError(f"{ref} holds statistics of {made_by!r} features, this evaluation uses "
                             f"{suite.fid.name!r}; write matching ones with --write-ref-stats")
        return None, S.read_stats(ref)
    items = folder_items(ref)
    tag = hashlib.sha1(os.path.abspath(ref).encode()).hexdigest()[:10]
    cache = FeatureCache(os.path.join(cache_root, f"ref-{tag}", suite.fid.name))
    extract(items, [suite.fid], [cache], batch, desc="reference", progress=progress)
    return cache.stack(items, "feat"), None


def evaluate_run(run: str, suite: Suite, real=None, stats=None, batch: int = 32, workers: int = 4,
                 prdc_max: int = 10_000, progress: bool = True) -> dict:
    """Score one generate run folder (manifest + PNGs) against a reference (real features or (mu, sigma)).

    Returns:
        {"FID", "IS", "IS_std", "CLIP", "diversity", "prdc", "steps", "nfe", "time_s", "peak_gpu_memory_gib", "n"}.
    """
    man, items = run_items(run)
    exs = suite.extractors()
    caches = {ex.name: FeatureCache(os.path.join(run, ".evalcache", ex.name)) for ex in exs}
    extract(items, exs, [caches[e.name] for e in exs], batch, workers, desc=os.path.basename(run.rstrip("/")),
            progress=progress)
    got = lambda ex, key: caches[ex.name].stack(items, key)  # noqa: E731
    prompts = [it.prompt for it in items]
    feats = got(suite.fid, "feat")
    out = {"n": len(items), "steps": man.get("steps"), "nfe": man.get("nfe"), "time_s": man.get("seconds_per_image"),
           "peak_gpu_memory_gib": man.get("peak_gpu_memory_gib"), "plan": man["plan"]}
    if real is not None or stats is not None:
        out["FID"] = S.fid(feats, real=real, stats=stats)
    out["IS"], out["IS_std"] = S.inception_score(got(suite.fid, "logits"))
    if suite.scale == "tiny":
        preds = {k: got(suite.clip, f"pred_{k}") for k in ("shape", "color", "bg", "style", "size")}
        out["CLIP"] = S.adherence_percent(preds, prompts)
    else:
        out["CLIP"] = S.clip_score(got(suite.clip, "score"))
    if suite.diversity is not None:
        out["diversity"] = S.diversity(got(suite.diversity, suite.div_key), prompts)
    if real is not None:
        out["prdc"] = S.prdc(real, feats, max_n=prdc_max)
    return out


def _fmt(v, digits=2) -> str:
    return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def table2_markdown(results: dict, scale: str, ref_note: str) -> str:
    """Table 2's columns (method, steps, FID, IS, CLIP, time) for our runs, then the paper's rows; extra columns
    carry Table 3's mean diversity and PRDC."""
    head = ["method", "steps", "FID ↓", "IS ↑", "CLIP ↑", "time (s) ↓", "diversity ↑", "precision", "recall",
            "density", "coverage"]
    lines = [f"Table 2 format [scale={scale}; reference: {ref_note}]" + (
        "; tiny: FID/IS/PRDC on the tiny evaluator's features and shape logits, CLIP = prompt adherence %, "
        "diversity = evaluator-feature distance" if scale == "tiny" else "; diversity = DreamSim distance"), "",
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in results.items():
        p = r.get("prdc", {})
        row = [label, r.get("steps"), r.get("FID"), r.get("IS"), r.get("CLIP"), r.get("time_s"),
               r.get("diversity", {}).get("mean"), *(p.get(k) for k in ("precision", "recall", "density", "coverage"))]
        lines.append("| " + " | ".join(_fmt(v, 4 if i == 5 else 3 if i >= 6 else 2) for i, v in enumerate(row)) + " |")
    div = dict(zip(("Base", "Distilled (DMD)", "Hybrid"), paper.DIVERSITY_TABLE3["Average"]))
    for r in paper.TABLE2:
        row = [f"paper: {r['method']}", r["steps"], r["FID"], r["IS"], r["CLIP"], r["time_s"], div.get(r["method"])]
        lines.append("| " + " | ".join(_fmt(v, 3 if i == 6 else 2) for i, v in enumerate(row)) + " | – | – | – | – |")
    lines.append("\npaper: SDXL at 1024², COCO-30k, Table 2 (Table 4 for skip-first), Table 3 average diversity.")
    return "\n".join(lines) + "\n"


def write_tiny_reference(folder: str, n: int, seed: int = 0) -> str:
    """The tiny COCO analogue: n real scenes as PNGs in `folder` plus `folder`/prompts.csv of their captions."""
    from ..io import save_png
    from ..tiny.world import sample_scenes

    sc = sample_scenes(n, seed=seed)
    os.makedirs(folder, exist_ok=True)
    for i, img in enumerate(sc.images):
        save_png(img, os.path.join(folder, f"{i:06d}.png"))
    return _write_csv(os.path.join(folder, "prompts.csv"), [(i, p, 10_000 + i) for i, p in enumerate(sc.prompts)])


def write_diversity_csv(path: str, prompts, per_prompt: int) -> str:
    """A prompt CSV for Table 3: each prompt `per_prompt` times with seeds 0..per_prompt-1."""
    return _write_csv(path, [(i * per_prompt + j, p, j) for i, p in enumerate(prompts) for j in range(per_prompt)])


def _write_csv(path: str, rows) -> str:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_number", "prompt", "evaluation_seed"])
        w.writerows(rows)
    os.replace(tmp, path)
    return path


