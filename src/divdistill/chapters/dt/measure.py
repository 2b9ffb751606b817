"""`python -m divdistill.chapters.dt`: the tiny world's committed Fig. 5 curves (all plans, 10 prompts × 16 seeds)."""
from __future__ import annotations

import os
import time

from . import store as S
from . import trajectory as T
from ... import commandline as C
from ...book.chapter import open_chapter
from ...io import provenance
from ...tiny.quality import EVAL_PROMPTS

N_SEEDS = 16
FILENAME = "dt_curves.json"


def curves_path(world) -> str:
    """Where a tiny world's committed curves live: next to its teacher/ and students/."""
    return os.path.join(world.extras["root"], FILENAME)


def tiny_pairs(n_seeds: int = N_SEEDS) -> tuple[list[str], list[int]]:
    """The chapters' (prompt, seed) pairs: every evaluation prompt with seeds 0..n_seeds-1."""
    return T.pairs(EVAL_PROMPTS, n_seeds, seed=0)


PROG = "python -m divdistill.chapters.dt"


def main(argv=None):
    """The CLI of the committed dt_curves.json (module docstring): returns its path; bad input: one line, exit 2."""
    return C.main_guard(PROG, _main, argv)


def _main(argv) -> str:
    ap = C.add_common(C.parser(PROG, description=__doc__), out=f"default: <world root>/{FILENAME}")
    ap.add_argument("--n-seeds", type=int, default=N_SEEDS, help="seeds per evaluation prompt (10 prompts)")
    args = C.setup(ap.parse_args(argv))
    ch = open_chapter("early_steps", "tiny", args.device, seed=0, **C.world_kwargs(args))
    t0 = time.time()
    prompts, seeds = tiny_pairs(args.n_seeds)
    curves, meta = S.compute_all(ch.world, T.curve_plans(ch.world), prompts, seeds, ch.features,
                                 T.evaluator_layout(ch.evaluator))
    meta.update(world_fingerprint=S.world_fingerprint(ch.world), world_root=os.path.relpath(ch.world.extras["root"]),
                provenance=provenance({"kind": "dt_curves", "n_seeds": args.n_seeds, "prompts": len(EVAL_PROMPTS)},
                                      0, 0, time.time() - t0))
    out = args.out or curves_path(ch.world)
    S.save_curves(out, curves, prompts, seeds, meta)
    print(f"wrote {out}: {len(curves)} plans × {len(seeds)} pairs in {time.time() - t0:.0f} s")
    return out
