"""Resumable generation from a prompt CSV (e.g. COCO-30k with its per-row seeds): any plan, either scale, N processes.

Multi-process: `accelerate launch --num_processes N -m divdistill.generate ...` (or torchrun) shards the CSV by row
(process r takes rows r, r+N, ...); each shard keeps its own manifest and the last shard to finish merges them
into manifest.json (`--merge` does it by hand). Images depend only on (prompt, seed), so the output equals a
single-process run's.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import statistics
import sys
import time

import torch
from tqdm.auto import tqdm

from . import commandline as C
from . import plan as P
from .io import atomic_write_json, save_png

REQUIRED = ("case_number", "prompt", "evaluation_seed")
PLAN_FORMS = "base | distilled:NAME | hybrid:NAME[:k] | skip_first:NAME[:k]"
TIMING_NOTE = ("seconds per image of the whole plan: prompt encoding, every step (the base step included) and the VAE "
               "decode, CUDA-synchronised; PNG writing excluded; batch seconds / batch size, median over batches")


def read_prompts(path: str, n: int | None = None) -> list[dict]:
    """Rows of a prompt CSV with columns case_number, prompt, evaluation_seed (first n rows)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"prompt CSV {path!r} not found (columns: {', '.join(REQUIRED)})")
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
            try:
                rows.append({"case_number": int(row["case_number"]), "prompt": row["prompt"],
                             "seed": int(row["evaluation_seed"])})
            except ValueError:
                raise ValueError(f"{path}, row {reader.line_num}: case_number and evaluation_seed must be integers, "
                                 f"got {row['case_number']!r} and {row['evaluation_seed']!r}") from None
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


def _plan_student(spec: str) -> str | None:
    kind, *args = spec.split(":")
    return args[0] if kind in ("distilled", "hybrid", "skip_first") and args else None


def shard_from_env() -> tuple[int, int]:
    """(index, count) of this process under accelerate/torchrun (RANK, WORLD_SIZE); (0, 1) when run alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def shard_rows(rows: list[dict], index: int, count: int) -> list[dict]:
    """Rows index, index + count, ... of the CSV selection (round-robin, so shards get alike prompts)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"bad shard {index} of {count}: need count >= 1 and 0 <= index < count")
    return rows[index::count]


def manifest_path(out: str, index: int = 0, count: int = 1) -> str:
    """manifest.json for a single process; manifest.shard-IIIII-of-NNNNN.json for shard `index` of `count`.

    Resumption here is the manifests, not commandline.Partial: they are the run folder's on-disk format that
    `divdistill-evaluate` and existing paper-scale folders read, and they resume per image across N processes."""
    return os.path.join(out, "manifest.json" if count == 1 else f"manifest.shard-{index:05d}-of-{count:05d}.json")


def _finished(out: str, plan_name: str) -> dict:
    """Every image recorded by any manifest in `out` (merged or any shard) whose file exists."""
    images = {}
    for path in sorted(glob.glob(os.path.join(out, "manifest*.json"))):
        with open(path) as f:
            man = json.load(f)
        if man["plan"] != plan_name:
            raise ValueError(f"{out} holds images of plan {man['plan']!r}, not {plan_name!r}; use another folder")
        images.update({k: v for k, v in man["images"].items() if os.path.exists(os.path.join(out, v["file"]))})
    return images


def _drop_orphans(out: str) -> None:
    """Remove half-written PNGs (`*.png.tmp.png`) a kill left behind; call only when no process writes to `out`."""
    for path in glob.glob(os.path.join(out, "*.png.tmp.png")):
        os.remove(path)


def _summary(manifest: dict) -> dict:
    """Top-level timing of a manifest from its per-image records."""
    secs = [v["seconds"] for v in manifest["images"].values() if "seconds" in v]
    if secs:
        manifest["seconds_per_image"] = statistics.median(secs)
        manifest["timing_note"] = TIMING_NOTE
    return manifest


def _run_batch(world, plan, chunk: list[dict]):
    """run_plan on one batch, timed end to end (prompt encoding included); returns (result, seconds)."""
    from .sampling import run_plan

    cuda = world.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(world.device)
    t0 = time.perf_counter()
    res = run_plan(world, plan, [r["prompt"] for r in chunk], [r["seed"] for r in chunk], capture=False)
    if cuda:
        torch.cuda.synchronize(world.device)
    return res, time.perf_counter() - t0


def generate_csv(world, plan, rows: list[dict], out: str, batch: int = 4, progress: bool = True,
                 shard: tuple[int, int] = (0, 1)) -> dict:
    """Generate every row's image of shard (index, count) into `out/`, skipping finished ones; merge when all done.

    Args:
        world, plan: what generates (see `load_world`, `parse_plan`).
        rows: the whole CSV selection (every shard passes the same rows).
        out: the run folder (PNGs named by case number, manifests).
        batch: images per `run_plan` call.
        shard: (index, count) of this process; (0, 1) for a single process.
    Returns:
        The merged manifest once every row is done, else this shard's manifest.
    """
    index, count = shard
    mine = shard_rows(rows, index, count)
    os.makedirs(out, exist_ok=True)
    done = _finished(out, plan.name)
    path = manifest_path(out, index, count)
    manifest = _read(path)
    manifest.update(plan=plan.name, steps=len(plan), shard=[index, count], batch=batch, images=done)
    todo = [r for r in mine if str(r["case_number"]) not in done]
    cuda = world.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(world.device)
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), disable=not progress, desc=f"{plan.name} [{index}]")
    for i in range(0, len(todo), batch):
        chunk = todo[i:i + batch]
        res, secs = _run_batch(world, plan, chunk)
        for r, img in zip(chunk, res.images):
            fname = f"{r['case_number']:06d}.png"
            save_png(img, os.path.join(out, fname))
            manifest["images"][str(r["case_number"])] = {"file": fname, "prompt": r["prompt"], "seed": r["seed"],
                                                         "nfe": res.nfe, "seconds": secs / len(chunk)}
        manifest["nfe"] = res.nfe
        manifest["device"] = torch.cuda.get_device_name(world.device) if cuda else str(world.device)
        if cuda:
            manifest["peak_gpu_memory_gib"] = max(manifest.get("peak_gpu_memory_gib", 0.0),
                                                  torch.cuda.max_memory_allocated(world.device) / 2**30)
        atomic_write_json(path, _summary(manifest))  # after the images: a kill loses at most the unrecorded batch
        bar.update(len(chunk))
    bar.close()
    if count == 1:
        atomic_write_json(path, _summary(manifest))  # also folds in any shard manifests left in the folder
        _drop_orphans(out)
        return manifest
    return merge(out, plan.name, rows) or manifest


def _read(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def merge(out: str, plan_name: str | None = None, rows: list[dict] | None = None) -> dict | None:
    """Merge every shard manifest in `out` into manifest.json once the rows (default: all recorded) are done.

    Returns the merged manifest, or None while some of `rows` are still missing (another shard is running).
    """
    shards = []
    for path in sorted(glob.glob(os.path.join(out, "manifest.shard-*.json"))):
        with open(path) as f:
            shards.append(json.load(f))
    if not shards:
        raise FileNotFoundError(f"no shard manifests (manifest.shard-*.json) in {out}")
    plan_name = plan_name or shards[0]["plan"]
    images = _finished(out, plan_name)
    if rows is not None and any(str(r["case_number"]) not in images for r in rows):
        return None
    peaks = [s["peak_gpu_memory_gib"] for s in shards if "peak_gpu_memory_gib" in s]
    merged = {"plan": plan_name, "steps": shards[0].get("steps"), "nfe": shards[0].get("nfe"),
              "batch": shards[0].get("batch"), "shards": [s.get("shard") for s in shards],
              "device": sorted({s.get("device", "?") for s in shards}),
              "images": dict(sorted(images.items(), key=lambda kv: int(kv[0])))}
    if peaks:
        merged["peak_gpu_memory_gib"] = max(peaks)  # per GPU: each shard runs on its own
    atomic_write_json(manifest_path(out), _summary(merged))
    _drop_orphans(out)  # every row is done: no shard is writing images any more
    return merged


def main(argv=None) -> int:
    """`divdistill-generate`: bad input is one line `divdistill-generate: error: …` and exit 2 (--debug: traceback)."""
    return C.main_guard("divdistill-generate", _main, argv)


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {n}")
    return n


def _main(argv) -> int:
    p = C.parser("divdistill-generate", description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="tiny", choices=["tiny", "sdxl"])
    p.add_argument("--plan", help=PLAN_FORMS)
    p.add_argument("--csv", help="prompt CSV with case_number, prompt, evaluation_seed")
    p.add_argument("--n", type=_positive, default=None, help="first n rows (default all)")
    p.add_argument("--out", required=True, help="the run folder (PNGs + manifest; a re-run resumes)")
    p.add_argument("--batch", type=_positive, default=4)
    C.add_common(p, variant=False, threads=0)
    p.add_argument("--models", default=None, help="sdxl: comma-separated students to load (default: the plan's)")
    p.add_argument("--lora-mode", action="store_true", help="sdxl: one UNet, students as LoRA adapters")
    p.add_argument("--shard", default=None, help="INDEX/COUNT by hand (default: RANK/WORLD_SIZE of accelerate "
                                                  "or torchrun, else 0/1)")
    p.add_argument("--merge", action="store_true", help="only merge the shard manifests in --out")
    a = p.parse_args(argv)
    a.device_was_auto = a.device in (None, "auto")
    if a.merge:
        man = merge(a.out)
        print(f"{len(man['images'])} images in {a.out}/manifest.json")
        return 0
    if not (a.plan and a.csv):
        p.error("--plan and --csv are required (unless --merge)")
    try:
        index, count = shard_from_env() if a.shard is None else map(int, a.shard.split("/"))
    except ValueError:
        p.error(f"--shard wants INDEX/COUNT such as 0/4, got {a.shard!r}")
    from .worlds import load_world

    device = C.setup(a).device
    if a.device_was_auto and count > 1 and torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', index)) % torch.cuda.device_count()}"
    student = _plan_student(a.plan)  # load only the student the plan runs
    if a.scale == "tiny":
        kw = {"students": [student] if student else []}
    else:
        models = tuple(a.models.split(",")) if a.models else ((student,) if student else ())
        kw = {"models": models, "lora_mode": a.lora_mode}
    world = load_world(a.scale, device=device, **kw)
    plan = parse_plan(world, a.plan)
    man = generate_csv(world, plan, read_prompts(a.csv, a.n), a.out, a.batch, shard=(index, count))
    print(f"shard {index}/{count}: {len(man['images'])} images recorded in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
