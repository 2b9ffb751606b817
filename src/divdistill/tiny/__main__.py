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
    t.add_argument("--variant", default=None, help="world variant folder under data/tiny (default: the default one)")
    t.add_argument("--out", default=None, help="default: data/tiny/<variant>/teacher")
    t.add_argument("--steps", type=int, default=6500)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--warmup", type=int, default=200)
    t.add_argument("--snr-factor", type=float, default=1.0, help="SNR(t) x this of SD's schedule (tiny/schedule.py)")
    t.add_argument("--init-from", default=None, help="fine-tune from this teacher folder (e.g. the sd-schedule one)")
    t.add_argument("--offset-noise-start", type=int, default=5000)
    t.add_argument("--ema", type=float, default=0.999)
    t.add_argument("--ckpt-every", type=int, default=250)
    t.add_argument("--probe-n", type=int, default=0, help="samples per seed (x3 seeds) of the half-way/final probe")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    e = sub.add_parser("train-evaluator", help="train (or resume) the tiny evaluator CNN")
    e.add_argument("--out", default=os.path.join(DATA, "evaluator"))
    e.add_argument("--steps", type=int, default=3000)
    e.add_argument("--seed", type=int, default=1)
    v = sub.add_parser("evaluate", help="measure the evaluator and the teacher; write metrics into provenance")
    v.add_argument("--variant", default=None)
    v.add_argument("--root", default=None, help="a world folder (default: data/tiny/<variant>)")
    v.add_argument("--n", type=int, default=1000)
    v.add_argument("--seed", type=int, default=1234)
    for s in (t, e, v):
        s.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    dev = _device(a.device)
    if a.cmd == "train-teacher":
        from .loader import variant_dir
        from .teacher import TeacherConfig, train_teacher

        if a.threads:
            torch.set_num_threads(a.threads)
        cfg = TeacherConfig(steps=a.steps, batch=a.batch, seed=a.seed, lr=a.lr, warmup=a.warmup,
                            snr_factor=a.snr_factor, init_from=a.init_from, offset_noise_start=a.offset_noise_start,
                            ema=a.ema, ckpt_every=a.ckpt_every)
        probe = None
        if a.probe_n:
            from .quality import teacher_probe

            probe = teacher_probe(a.probe_n, n_div=5)  # 50-step plans are costly on a CPU: 5 per EVAL_PROMPT
        res = train_teacher(a.out or os.path.join(variant_dir(a.variant), "teacher"), cfg, device=dev, probe=probe,
                            probe_at=(a.steps // 2,))
    elif a.cmd == "train-evaluator":
        from .evaluator import EvaluatorConfig, train_evaluator

        res = train_evaluator(a.out, EvaluatorConfig(steps=a.steps, seed=a.seed), device=dev)
    else:
        from .quality import evaluate_world

        from .loader import variant_dir

        res = evaluate_world(a.root or variant_dir(a.variant), n=a.n, seed=a.seed, device=dev)
    print(json.dumps(res, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
