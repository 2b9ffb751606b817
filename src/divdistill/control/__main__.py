"""`python -m divdistill.control train-all`: re-train every control LoRA (resumable); Table 1 is measured by
`python -m divdistill.chapters.control`."""
from __future__ import annotations

import os
import sys
import time

from .. import commandline as C

PROG = "python -m divdistill.control"


def _main(argv) -> int:
    from ..worlds import load_world
    from .registry import ALL, DEFAULT_STEPS, lora_dir
    from .train import ControlConfig, remove, train_control

    p = C.parser(PROG, description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train-all", help="train every control LoRA not yet trained (a killed run resumes)")
    tr.add_argument("--only", nargs="*", default=None, help="subset as source/control, e.g. base/style dmd2/slider")
    tr.add_argument("--retrain", action="store_true", help="train again even when a LoRA exists")
    tr.add_argument("--steps", type=int, default=None, help="override every LoRA's steps (default: registry's)")
    C.add_common(tr, threads=1)
    args = C.setup(p.parse_args(argv))
    world = load_world("tiny", device=args.device, **C.world_kwargs(args))
    todo = [(s, c) for s, c in ALL if args.only is None or f"{s}/{c}" in args.only]
    t0 = time.time()
    for source, control in todo:
        out = lora_dir(world, source, control)
        if args.retrain:
            remove(out)
        if os.path.exists(os.path.join(out, "provenance.json")):
            print(f"{source}/{control}: already trained ({out})")
            continue
        rec = train_control(world, ControlConfig(control, source, steps=args.steps or DEFAULT_STEPS[control]), out)
        print(f"{source}/{control}: {rec['wall_time_s']} s, loss {rec['metrics']['loss_last20']:.4f} → {out}")
    print(f"train-all: {time.time() - t0:.0f} s")
    return 0


def main(argv=None) -> int:
    return C.main_guard(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
