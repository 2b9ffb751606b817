"""Running the hybrid chapter's plans on shared seeds and measuring every image (paper Sec. 5, Tables 2–3).

Each row's sample is generated cell by cell (replicate x prompt), every batch timed whole (prompt encoding, every
step, decoding), and only per-image measurements are kept; with a cache folder a killed run resumes per cell
(commandline.Partial).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from . import stats as S
from .plans import Row, rows, students_of
from ... import commandline as C
from ... import paper
from ...io import plan_weights
from ...metrics import factor_hits, feature_stats
from ...sampling import run_plan

# Table 3's prompts at sdxl (the paper names them "Sunset beach", "Cute puppy", ...; its exact wording is not given)
SDXL_DIVERSITY_PROMPTS = tuple(paper.TABLE3_PROMPTS.values())
COCO_CSV = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "..", "shared", "data", "coco_30k.csv")


@dataclass(frozen=True)
class Sizes:
    """Sample counts: replicates (seed blocks) x prompts x images per prompt, per tier of rows."""

    n_prompts: int = 10
    per_prompt: int = 100  # Table 2/3/4 rows
    replicates: int = 3
    base_per_prompt: int = 50  # the 50-step base costs 25x a student: its own counts
    base_replicates: int = 1
    sweep_per_prompt: int = 20  # Fig. 7 and frontier rows (1 replicate); every row is compared on these seeds there
    other_per_prompt: int = 10  # the other students' Table 3 rows (1 replicate)
    n_eval: int = 0  # sdxl only: COCO-30k rows (with their seeds) for FID/IS/CLIP
    n_ref: int = 3000  # real images for the FID reference (tiny: scenes drawn for the same prompts)
    batch_size: int = 100
    n_boot: int = 200

    def tier(self, family: str, key: str) -> tuple[int, int]:
        """(replicates, per prompt) for a row."""
        if family == "table":
            return (self.base_replicates, self.base_per_prompt) if key == "base50" else (self.replicates,
                                                                                         self.per_prompt)
        if family == "other":
            return 1, self.other_per_prompt
        return 1, self.sweep_per_prompt


def prompts_for(scale: str, n_prompts: int) -> list[str]:
    """Table 3's prompts: tiny = the evaluation prompts (each names some factors, leaves the rest free)."""
    if scale == "tiny":
        from ...tiny.quality import EVAL_PROMPTS

        pool = EVAL_PROMPTS
    else:
        pool = SDXL_DIVERSITY_PROMPTS
    if not 1 <= n_prompts <= len(pool):
        raise ValueError(f"n_prompts must be in 1..{len(pool)} at scale {scale!r}, got {n_prompts}")
    return list(pool[:n_prompts])


def seed_of(rep: int, group: int, j: int) -> int:
    """Image j of prompt `group` in replicate `rep`: the same noise whichever plan draws it (paired comparisons)."""
    return rep * 1_000_000 + group * 10_000 + j


class Measurer:
    """Per-image measurements of a chapter's scale: features, FID features, class posteriors, adherence."""

    def __init__(self, ch):
        self.ch, self._parsed = ch, {}

    def __call__(self, images: torch.Tensor, prompts: list[str]) -> dict:
        feats = self.ch.features(images).float().cpu().numpy()  # (B, D)
        if self.ch.scale == "tiny":
            return {"feats": feats, "fid_feats": feats, **self._tiny(images, prompts)}
        if self.ch.stand_in_metrics:
            return {"feats": feats, "fid_feats": None, "probs": None, "adherence": None}
        return {"feats": feats, **sdxl_quality(images, prompts, self.ch.extras)}

    @torch.no_grad()
    def _tiny(self, images, prompts) -> dict:
        """IS analogue: the evaluator's (shape, color) posterior; adherence: fraction of named factors read back."""
        from ...tiny.text import parse_prompt
        from ...tiny.world import SMALL_LARGE_SPLIT

        ev = self.ch.evaluator
        x = images.to(next(ev.parameters()).device).float().clamp(-1, 1)
        lg = ev.logits(x)
        probs = (lg["shape"].softmax(-1)[:, :, None] * lg["color"].softmax(-1)[:, None, :]).flatten(1)  # (B, 30)
        pred = {k: v.cpu() for k, v in ev.predict(x).items()}
        hits = factor_hits(pred, prompts, lambda p: self._parsed.setdefault(p, parse_prompt(p)), SMALL_LARGE_SPLIT)
        adh = [float(np.mean(list(h.values()))) if h else float("nan") for h in hits]
        return {"probs": probs.cpu().numpy(), "adherence": np.array(adh)}


def sdxl_quality(images: torch.Tensor, prompts: list[str], cache: dict) -> dict:
    """Paper-scale Table 2 inputs through torchmetrics: Inception pool features (FID), Inception posteriors (IS) and
    per-image CLIP score (needs the sdxl extra and the weights' first-use download)."""
    from torchmetrics.functional.multimodal import clip_score
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore

    dev = images.device
    if "fid" not in cache:
        cache["fid"] = FrechetInceptionDistance(feature=2048).inception.to(dev)
        cache["is"] = InceptionScore().inception.to(dev)
    u8 = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (B, 3, H, W)
    with torch.no_grad():
        f = cache["fid"](u8).float().cpu().numpy()
        probs = cache["is"](u8).float().softmax(-1).cpu().numpy()
    clip = [float(clip_score(u8[i:i + 1], [p], model_name_or_path="openai/clip-vit-large-patch14"))
            for i, p in enumerate(prompts)]
    return {"fid_feats": f, "probs": probs, "adherence": np.array(clip)}


def coco_rows(n: int) -> list[dict]:
    """The first n COCO-30k rows with their evaluation seeds (sdxl's Table 2 prompt set)."""
    from ...generate import read_prompts

    return read_prompts(os.path.abspath(COCO_CSV), n)


def _jobs(scale, sizes: Sizes, reps: int, per_prompt: int) -> list[tuple]:
    """(cell key, resume key, prompts, seeds, diversity?, quality?) for every cell of a row's sample."""
    ps = prompts_for(scale, sizes.n_prompts)
    out = []
    for r in range(reps):
        for g, p in enumerate(ps):
            seeds = [seed_of(r, g, j) for j in range(per_prompt)]
            out.append(((r, g), f"{p!r} x {per_prompt}, seeds {seeds[0]}-{seeds[-1]}", [p] * per_prompt, seeds, True,
                        scale == "tiny"))
        if scale != "tiny" and sizes.n_eval:
            rows_ = coco_rows(sizes.n_eval)
            out.append(((r, -1), f"COCO-30k rows 0-{sizes.n_eval - 1}, seeds + {r}", [x["prompt"] for x in rows_],
                        [x["seed"] + r for x in rows_], False, True))
    return out


def run_sample(ch, row: Row, sizes: Sizes, measure: Measurer, cache_dir: str | None = None, log=None) -> S.Sample:
    """Generate a row's images cell by cell, timing every batch, and keep only the per-image measurements; with
    `cache_dir` each cell's are saved as it ends (commandline.Partial, one file per row), so a killed run resumes."""
    reps, per = sizes.tier(row.family, row.key)
    part = C.Partial(_cache_path(cache_dir, ch, row), _cache_settings(ch, row))
    cells, seconds, nfe = {}, [], None
    for key, name, prompts, seeds, div, qual in _jobs(ch.scale, sizes, reps, per):
        rec = _arrays(part.get(name, lambda: _tensors(_measure_cell(ch, row, prompts, seeds, sizes, measure))))
        nfe, seconds = rec["nfe"], seconds + list(rec["seconds"])
        cells[key] = S.Cell(rec["feats"], quality=qual, diversity=div, fid_feats=rec["fid_feats"],
                            probs=rec["probs"], adherence=rec["adherence"])
    if log:
        log(f"{row.key}: {sum(len(c) for c in cells.values())} images, NFE {nfe}, {np.mean(seconds):.4f} s/img")
    return S.Sample(cells, nfe, seconds, row.key)


def _measure_cell(ch, row: Row, prompts, seeds, sizes: Sizes, measure: Measurer) -> dict:
    """One cell's per-image measurements, its NFE and the seconds per image of each timed batch."""
    parts, secs, nfe = [], [], None
    for i in range(0, len(prompts), sizes.batch_size):
        t0 = time.perf_counter()
        res = run_plan(ch.world, row.plan, prompts[i:i + sizes.batch_size], seeds[i:i + sizes.batch_size],
                       capture=False)
        if res.images.is_cuda:
            torch.cuda.synchronize()
        secs.append((time.perf_counter() - t0) / len(res.images))  # encoding + every step + decoding
        parts.append(measure(res.images, prompts[i:i + sizes.batch_size]))
        nfe = res.nfe
    return {"nfe": nfe, "seconds": secs, **{k: _cat([p[k] for p in parts]) for k in parts[0]}}


def _cat(parts):
    return None if any(p is None for p in parts) else np.concatenate(parts)


def _tensors(rec: dict) -> dict:
    """numpy arrays → tensors (a .pt partial loads weights_only); `_arrays` turns them back, bit for bit."""
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in rec.items()}


def _arrays(rec: dict) -> dict:
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in rec.items()}


def _cache_path(cache_dir, ch, row: Row) -> str | None:
    """<cache_dir>/<scale>-<variant>/<row key>--<plan name>.pt: one partial file per row (the plan name carries the
    student, the key the sweep's value)."""
    if not cache_dir:
        return None
    slug = re.sub(r"[^A-Za-z0-9.=,+-]+", "_", f"{row.key}--{row.plan.name}").strip("_")[:150]
    return os.path.join(cache_dir, f"{ch.scale}-{ch.world.extras.get('variant') or 'default'}", f"{slug}.pt")


def _cache_settings(ch, row: Row) -> dict:
    """What a cell's measurements depend on besides its prompts and seeds (those are in its key)."""
    return {"scale": ch.scale, "variant": ch.world.extras.get("variant"), "root": ch.world.extras.get("root"),
            "plan": repr(row.plan.steps), "stand_in_metrics": bool(ch.stand_in_metrics),
            **ch.world.prior_settings, "weights": plan_weights(ch.world, row.plan)}  # retrained: measured again


def fid_reference(ch, sizes: Sizes, reference_images: torch.Tensor | None = None):
    """FID's real statistics. tiny: data scenes drawn for the same prompts; sdxl: given real images, else None."""
    if ch.scale == "tiny":
        from ...tiny.world import scenes_for_prompt

        ps = prompts_for("tiny", sizes.n_prompts)
        per = max(2, sizes.n_ref // len(ps))
        feats = [ch.features(scenes_for_prompt(p, per, 777 + g).images).numpy() for g, p in enumerate(ps)]
        return feature_stats(np.concatenate(feats))
    if reference_images is None or ch.stand_in_metrics:
        return None
    return feature_stats(sdxl_quality(reference_images, [""] * len(reference_images), ch.extras)["fid_feats"])


def restrict(s: S.Sample, reps=(0,), per_prompt: int | None = None) -> S.Sample:
    """The sample on a common footing (replicate 0, first `per_prompt` seeds): frontier points compare like with like."""
    cells = {k: c for k, c in s.cells.items() if k[0] in reps}
    if per_prompt is not None:
        cells = {k: S.Cell(c.feats[:per_prompt], c.quality, c.diversity,
                           None if c.fid_feats is None else c.fid_feats[:per_prompt],
                           None if c.probs is None else c.probs[:per_prompt],
                           None if c.adherence is None else c.adherence[:per_prompt]) if k[1] >= 0 else c
                 for k, c in cells.items()}
    return S.Sample(cells, s.nfe, s.seconds, s.name)
