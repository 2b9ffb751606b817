"""Streaming, resumable per-image feature extraction for the evaluate CLI: images in, cached features out."""
from __future__ import annotations

import glob
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..io import atomic_torch_save

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class Item:
    """One image to score: a cache key (changes when the file does), its path, its prompt (None for real images)."""

    key: str
    path: str
    prompt: str | None = None


def _key(name: str, path: str) -> str:
    return f"{name}@{os.stat(path).st_mtime_ns}"


def run_items(run: str) -> tuple[dict, list[Item]]:
    """The generate manifest of a run folder and its images (in case-number order) as Items with prompts."""
    path = os.path.join(run, "manifest.json")
    if not os.path.exists(path):
        shards = glob.glob(os.path.join(run, "manifest.shard-*.json"))
        hint = (" (shard manifests found: merge them with `divdistill-generate --merge --out "
                f"{run}`)") if shards else ""
        raise FileNotFoundError(f"{run}: no manifest.json; evaluate a folder written by divdistill-generate{hint}")
    with open(path) as f:
        man = json.load(f)
    items = []
    for case, rec in sorted(man["images"].items(), key=lambda kv: int(kv[0])):
        p = os.path.join(run, rec["file"])
        if not os.path.exists(p):
            raise FileNotFoundError(f"{run}: manifest lists {rec['file']} but the file is missing; rerun "
                                    "divdistill-generate on this folder to regenerate it")
        items.append(Item(_key(case, p), p, rec["prompt"]))
    return man, items


def folder_items(folder: str) -> list[Item]:
    """Every image under `folder` (recursive, sorted): the reference set (e.g. COCO-2014 val)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"reference {folder!r} is neither a folder of images nor a .npz with mu, sigma")
    paths = sorted(p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
                   if p.lower().endswith(IMAGE_EXTS) and "/.evalcache/" not in p)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTS)}) under {folder!r}")
    return [Item(_key(os.path.relpath(p, folder), p), p) for p in paths]


def load_rgb(path: str):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def to_uint8(images, size: int) -> torch.Tensor:
    """PIL images → (B, 3, size, size) uint8: centre crop to a square, then PIL bicubic resize (clean-fid's choice)."""
    from PIL import Image

    out = []
    for im in images:
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        if s != size:
            im = im.resize((size, size), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1))
    return torch.stack(out)


class FeatureCache:
    """Per-image outputs of one extractor in one folder: chunk files written atomically, read back on resume.

    Not commandline.Partial: at paper scale (30k images × 2048 features) one file rewritten per batch is too slow,
    and each image is keyed by its file's mtime, so a changed image is re-extracted without any settings record."""

    def __init__(self, root: str):
        self.root = root
        self.data: dict[str, dict[str, torch.Tensor]] = {}
        for path in sorted(glob.glob(os.path.join(root, "chunk-*.pt"))):
            chunk = torch.load(path, weights_only=True)
            for i, k in enumerate(chunk["keys"]):
                self.data[k] = {n: v[i] for n, v in chunk["values"].items()}

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def add(self, keys: list[str], values: dict[str, torch.Tensor]) -> None:
        """Record outputs (each (B, ...)) of `keys`; one atomic file per call, so a kill loses at most this batch."""
        values = {n: v.detach().float().cpu().contiguous() for n, v in values.items()}
        name = f"chunk-{time.time_ns()}-{os.getpid()}.pt"
        atomic_torch_save({"keys": list(keys), "values": values}, os.path.join(self.root, name))
        for i, k in enumerate(keys):
            self.data[k] = {n: v[i] for n, v in values.items()}

    def stack(self, items: list[Item], name: str) -> torch.Tensor:
        """One output of every item, in the items' order → (N, ...)."""
        missing = [it.path for it in items if it.key not in self.data]
        if missing:
            raise KeyError(f"{len(missing)} image(s) not extracted yet in {self.root}, e.g. {missing[0]}")
        return torch.stack([self.data[it.key][name] for it in items])


def extract(items: list[Item], extractors: list, caches: list[FeatureCache], batch: int = 32, workers: int = 4,
            desc: str = "features", progress: bool = True) -> None:
    """Run every extractor on every item not yet in its cache, streaming batches of decoded images."""
    todo = [it for it in items if any(it.key not in c for c in caches)]
    bar = tqdm(total=len(items), initial=len(items) - len(todo), disable=not progress, desc=desc)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for i in range(0, len(todo), batch):
            chunk = todo[i:i + batch]
            images = list(pool.map(load_rgb, [it.path for it in chunk]))
            for ex, cache in zip(extractors, caches):
                need = [j for j, it in enumerate(chunk) if it.key not in cache]
                if need:
                    x = to_uint8([images[j] for j in need], ex.size)  # (b, 3, S, S) uint8
                    prompts = [chunk[j].prompt for j in need] if ex.needs_prompt else None
                    cache.add([chunk[j].key for j in need], ex(x, prompts))
            bar.update(len(chunk))
    bar.close()
