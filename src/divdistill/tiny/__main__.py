"""CLI: python -m divdistill.tiny train-teacher | train-evaluator | evaluate."""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "data", "tiny")


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise SystemExit(f"--device must be auto, cpu or cuda, got {name!r}")
    return name


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m divdistill.tiny", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train-teacher", help="train (or resume) the tiny teacher + text encoder")
    t.add_argument("--out", default=os.path.join(DATA, "teacher"))
    t.add_argument("--steps", type=int, default=6500)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("train-evaluator", help="train (or resume) the tiny evaluator CNN")
    e.add_argument("--out", default=os.path.join(DATA, "evaluator"))
    e.add_argument("--steps", type=int, default=3000)
    e.add_argument("--seed", type=int, default=1)
    v = sub.add_parser("evaluate", help="measure the evaluator and the teacher; write metrics into provenance")
    v.add_argument("--root", default=DATA)
    v.add_argument("--n", type=int, default=1000)
    v.add_argument("--seed", type=int, default=1234)
    for s in (t, e, v):
        s.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    dev = _device(a.device)
    if a.cmd == "train-teacher":
        from .teacher import TeacherConfig, train_teacher

        res = train_teacher(a.out, TeacherConfig(steps=a.steps, batch=a.batch, seed=a.seed), device=dev)
    elif a.cmd == "train-evaluator":
        from .evaluator import EvaluatorConfig, train_evaluator

        res = train_evaluator(a.out, EvaluatorConfig(steps=a.steps, seed=a.seed), device=dev)
    else:
        from .report import evaluate_world

        res = evaluate_world(a.root, n=a.n, seed=a.seed, device=dev)
    print(json.dumps(res, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
