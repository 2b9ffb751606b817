"""`python -m divdistill.control train-all | evaluate`: re-train every control LoRA (resumable); measure Table 1."""
from __future__ import annotations

import argparse
import os
import time

import torch


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m divdistill.control", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train-all", help="train every control LoRA not yet trained (a killed run resumes)")
    tr.add_argument("--only", nargs="*", default=None, help="subset as source/control, e.g. base/style dmd2/slider")
    tr.add_argument("--retrain", action="store_true", help="train again even when a LoRA exists")
    tr.add_argument("--steps", type=int, default=None, help="override every LoRA's steps (default: registry's)")
    ev = sub.add_parser("evaluate", help="Table 1 analogue, slider sweep and late start → <loras>/transfer.json")
    ev.add_argument("--n-seeds", type=int, default=5)
    for a in (tr, ev):
        a.add_argument("--variant", default=None, help="tiny-world variant (default: load_world('tiny')'s)")
        a.add_argument("--device", default=None)
        a.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from ..worlds import load_world
    from .registry import ALL, DEFAULT_STEPS, lora_dir, loras_root

    kw = {"variant": args.variant} if args.variant else {}
    world = load_world("tiny", device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"), **kw)
    if args.cmd == "train-all":
        from .train import ControlConfig, remove, train_control

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
            stale = os.path.join(loras_root(world), "transfer_cache.json")  # readouts of the old LoRAs
            if os.path.exists(stale):
                os.remove(stale)
            print(f"{source}/{control}: {rec['wall_time_s']} s, loss {rec['metrics']['loss_last20']:.4f} → {out}")
        print(f"train-all: {time.time() - t0:.0f} s")
    else:
        from .transfer import evaluate_all

        path = evaluate_all(world, n_seeds=args.n_seeds)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
