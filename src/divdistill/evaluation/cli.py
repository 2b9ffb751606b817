"""`divdistill-evaluate`: Table 2 (FID, IS, CLIP score, time), Table 3 (per-prompt diversity) and PRDC of run folders.

Every metric streams over the images and caches per-image features (`<run>/.evalcache/`), so a killed evaluation
continues where it stopped. `--scale tiny` scores with the tiny world's evaluator; `--scale sdxl` with Inception
(torch-fidelity), CLIP (torchmetrics) and DreamSim (`pip install -e ".[sdxl]"`).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from .. import commandline as C
from ..io import atomic_write_json, atomic_write_text, provenance
from . import scores as S
from .extractors import MissingExtraError
from .core import (TABLE3_PROMPTS, evaluate_run, reference, sdxl_suite, table2_markdown, tiny_suite,
                   write_diversity_csv, write_tiny_reference)


def _parser() -> argparse.ArgumentParser:
    p = C.parser("divdistill-evaluate", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", help="generate run folders, each RUN or RUN=LABEL (the table's method name)")
    p.add_argument("--scale", default="tiny", choices=["tiny", "sdxl"])
    p.add_argument("--ref", help="real images: a folder (e.g. COCO-2014 val) or reference statistics .npz (mu, sigma)")
    p.add_argument("--out", default="eval", help="folder for metrics.json, table2.md and the reference cache")
    p.add_argument("--write-ref-stats", metavar="NPZ", help="write the --ref folder's FID statistics to NPZ")
    p.add_argument("--clip-model", default="openai/clip-vit-large-patch14", help="sdxl: CLIP hub id or folder")
    p.add_argument("--no-diversity", action="store_true", help="sdxl: skip DreamSim")
    p.add_argument("--prdc-max", type=int, default=10_000, help="PRDC on at most this many images per side")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=4, help="threads decoding images")
    C.add_common(p, variant=False, threads=0)
    p.add_argument("--write-tiny-reference", metavar="DIR", help="tiny: write N real scenes + prompts.csv to DIR")
    p.add_argument("--write-diversity-csv", metavar="CSV", help="write a Table 3 prompt CSV (--prompts × --per-prompt)")
    p.add_argument("--prompts", nargs="+", default=None, help="prompts for --write-diversity-csv")
    p.add_argument("--per-prompt", type=int, default=100)
    p.add_argument("--n", type=int, default=1000, help="images for --write-tiny-reference")
    return p


def main(argv=None) -> int:
    """`divdistill-evaluate`: bad input is one line `divdistill-evaluate: error: …` and exit 2 (--debug: traceback)."""
    return C.main_guard("divdistill-evaluate", _main, argv)


def _main(argv) -> int:
    a = C.setup(_parser().parse_args(argv))
    if a.write_tiny_reference:
        print(write_tiny_reference(a.write_tiny_reference, a.n))
        return 0
    if a.write_diversity_csv:
        if a.prompts is None:
            from ..tiny.quality import EVAL_PROMPTS

            a.prompts = list(EVAL_PROMPTS if a.scale == "tiny" else TABLE3_PROMPTS)
        print(write_diversity_csv(a.write_diversity_csv, a.prompts, a.per_prompt))
        return 0
    if not a.runs and not a.write_ref_stats:
        _parser().error("give run folders to evaluate (or --write-ref-stats NPZ with --ref FOLDER)")
    device = a.device
    t0 = time.time()
    try:
        suite = tiny_suite(device) if a.scale == "tiny" else sdxl_suite(device, a.clip_model, not a.no_diversity)
    except MissingExtraError as e:
        raise SystemExit(f"divdistill-evaluate: {e}") from e
    real = stats = None
    if a.ref:
        real, stats = reference(a.ref, suite, os.path.join(a.out, "cache"), a.batch)
    if a.write_ref_stats:
        if real is None:
            raise SystemExit("--write-ref-stats needs --ref pointing at a folder of real images")
        S.write_stats(a.write_ref_stats, real, scale=a.scale, features=suite.fid.name, ref=os.path.abspath(a.ref))
        print(f"wrote {a.write_ref_stats} ({len(real)} images)")
    results = {}
    for spec in a.runs:
        run, _, label = spec.partition("=")
        results[label or os.path.basename(run.rstrip("/"))] = evaluate_run(run, suite, real, stats, a.batch,
                                                                           a.workers, a.prdc_max)
    if results:
        ref_note = a.ref or "none (no FID)"
        rec = {"scale": a.scale, "reference": ref_note, "features": {"fid": suite.fid.name, "clip": suite.clip.name},
               "runs": results, "provenance": provenance(vars(a), 0, 0, time.time() - t0)}
        atomic_write_json(os.path.join(a.out, "metrics.json"), rec)
        md = table2_markdown(results, a.scale, ref_note)
        atomic_write_text(os.path.join(a.out, "table2.md"), md)
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
