"""Resumable generation from a prompt CSV (e.g. COCO-30k with its per-row seeds): any plan, either scale."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from . import plan as P
from .provenance import atomic_write_json

REQUIRED = ("case_number", "prompt", "evaluation_seed")
PLAN_FORMS = "base | distilled:NAME | hybrid:NAME[:k] | skip_first:NAME[:k]"


def read_prompts(path: str, n: int | None = None) -> list[dict]:
    """Rows of a prompt CSV with columns case_number, prompt, evaluation_seed (first n rows)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; required {list(REQUIRED)}, "
                             f"found {reader.fieldnames}")
        rows = []
        for row in reader:
            if n is not None and len(rows) >= n:
                break
            rows.append({"case_number": int(row["case_number"]), "prompt": row["prompt"],
                         "seed": int(row["evaluation_seed"])})
    return rows


def parse_plan(world, spec: str):
    """Build a plan from its command-line form: base | distilled:NAME | hybrid:NAME[:k] | skip_first:NAME[:k]."""
    kind, *args = spec.split(":")
    try:
        if kind == "base" and not args:
            return P.base(world)
        if kind == "distilled" and len(args) == 1:
            return P.distilled(world, args[0])
        if kind in ("hybrid", "skip_first") and len(args) in (1, 2):
            k = int(args[1]) if len(args) == 2 else 1
            return (P.hybrid if kind == "hybrid" else P.skip_first)(world, args[0], k=k)
    except ValueError as e:
        raise ValueError(f"bad plan {spec!r}: {e}") from e
    raise ValueError(f"bad plan {spec!r}; valid forms: {PLAN_FORMS}")


def _save_png(img: torch.Tensor, path: str) -> None:
    from PIL import Image

    arr = ((img.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()  # (H, W, 3)
    tmp = path + ".tmp.png"
    Image.fromarray(np.ascontiguousarray(arr)).save(tmp)
    os.replace(tmp, path)


def generate_csv(world, plan, rows: list[dict], out: str, batch: int = 4, progress: bool = True) -> dict:
    """Generate every row's image into `out/`, skipping finished ones; the manifest records each finished image."""
    from .sampling import run_plan

    os.makedirs(out, exist_ok=True)
    man_path = os.path.join(out, "manifest.json")
    manifest = json.load(open(man_path)) if os.path.exists(man_path) else {"plan": plan.name, "images": {}}
    if manifest["plan"] != plan.name:
        raise ValueError(f"{out} holds images of plan {manifest['plan']!r}, not {plan.name!r}; use another folder")
    done = {int(k) for k, v in manifest["images"].items() if os.path.exists(os.path.join(out, v["file"]))}
    todo = [r for r in rows if r["case_number"] not in done]
    bar = tqdm(total=len(rows), initial=len(rows) - len(todo), disable=not progress, desc=plan.name)
    for i in range(0, len(todo), batch):
        chunk = todo[i:i + batch]
        t0 = time.time()
        res = run_plan(world, plan, [r["prompt"] for r in chunk], [r["seed"] for r in chunk], capture=False)
        for r, img in zip(chunk, res.images):
            fname = f"{r['case_number']:06d}.png"
            _save_png(img, os.path.join(out, fname))
            manifest["images"][str(r["case_number"])] = {"file": fname, "prompt": r["prompt"], "seed": r["seed"],
                                                         "nfe": res.nfe}
        manifest["seconds_per_image"] = (time.time() - t0) / len(chunk)
        atomic_write_json(man_path, manifest)  # after the images: a kill loses at most the unrecorded batch
        bar.update(len(chunk))
    bar.close()
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="divdistill-generate", description=__doc__)
    p.add_argument("--scale", default="tiny", choices=["tiny", "sdxl"])
    p.add_argument("--plan", required=True, help=PLAN_FORMS)
    p.add_argument("--csv", required=True, help="prompt CSV with case_number, prompt, evaluation_seed")
    p.add_argument("--n", type=int, default=None, help="first n rows (default all)")
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--device", default=None)
    p.add_argument("--models", default="dmd2", help="sdxl: comma-separated students to load")
    p.add_argument("--lora-mode", action="store_true", help="sdxl: one UNet, students as LoRA adapters")
    a = p.parse_args(argv)
    from .worlds import load_world

    kw = {} if a.scale == "tiny" else {"models": tuple(a.models.split(",")), "lora_mode": a.lora_mode}
    world = load_world(a.scale, device=a.device, **kw)
    plan = parse_plan(world, a.plan)
    man = generate_csv(world, plan, read_prompts(a.csv, a.n), a.out, a.batch)
    print(f"{len(man['images'])} images in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
