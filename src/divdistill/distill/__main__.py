"""CLI: python -m divdistill.distill train RECIPE | train-all | evaluate."""
from __future__ import annotations

import argparse
import os
import sys

import torch


def _overrides(pairs, cfg) -> dict:
    """--set key=value pairs → typed config overrides (the type of the recipe's current value)."""
    out = {}
    for pair in pairs or []:
        key, sep, val = pair.partition("=")
        if not sep or not hasattr(cfg, key):
            raise SystemExit(f"--set expects key=value with key a field of {type(cfg).__name__}, got {pair!r}")
        cur = getattr(cfg, key)
        out[key] = type(cur)(val) if isinstance(cur, (int, float, str)) and not isinstance(cur, bool) else val
    return out


def main(argv=None) -> int:
    from ..tiny.loader import variant_dir
    from .recipes import RECIPES, recipe, train

    p = argparse.ArgumentParser(prog="python -m divdistill.distill", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) one student recipe into data/tiny/students/RECIPE")
    t.add_argument("recipe", help=f"one of {sorted(RECIPES)}")
    t.add_argument("--set", nargs="*", default=None, help="config overrides key=value (e.g. iters=200)")
    t.add_argument("--probe-n", type=int, default=0, help="probe FID/diversity half-way and at the end (n x 3 seeds)")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a_ = sub.add_parser("train-all", help="train (or resume) every recipe in turn")
    e = sub.add_parser("evaluate", help="teacher + students table (DDIL Tables 3/5 format)")
    e.add_argument("--n", type=int, default=1000)
    e.add_argument("--seeds", type=int, default=3)
    e.add_argument("--students", default=None, help="comma-separated (default: all found)")
    e.add_argument("--out", default=None, help="also write the rows as JSON here")
    c = sub.add_parser("controls", help="the sampler control table: teacher 50 steps; per student its plan, the "
                       "teacher on its sampler, hybrid(k=1, CFG 0); diversity on EVAL_PROMPTS (resumable)")
    c.add_argument("--per-prompt", type=int, default=10)
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--n-fid", type=int, default=0)
    c.add_argument("--students", default=None, help="comma-separated (default: all found)")
    c.add_argument("--out", default=None, help="default: <root>/students/controls.json")
    c.add_argument("--threads", type=int, default=0)
    for s in (t, a_, e, c):
        s.add_argument("--variant", default=None, help="world variant under data/tiny (default: the default one)")
        s.add_argument("--root", default=None, help="a world folder (default: data/tiny/<variant>)")
        s.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    a.root = a.root or variant_dir(a.variant)
    if getattr(a, "threads", 0):
        torch.set_num_threads(a.threads)
    if a.cmd in ("train", "train-all"):
        names = [a.recipe] if a.cmd == "train" else list(RECIPES)
        for name in names:
            if name not in RECIPES:
                raise SystemExit(f"unknown recipe {name!r}; valid: {sorted(RECIPES)}")
            extra = _overrides(getattr(a, "set", None), recipe(name)[1])
            res = train(name, a.root, os.path.join(a.root, "students", name), device=a.device,
                        probe_n=getattr(a, "probe_n", 0), **extra)
            print(f"{name}: {res['wall']:.0f} s, last losses {res['losses'][-1]}", flush=True)
        return 0
    from ..tiny.loader import load_tiny_world
    from .evaluate import evaluate_students, format_table

    if a.cmd == "controls":
        from .controls import diversity_losses, evaluate_controls, loss_table_rows

        names = a.students.split(",") if a.students else None
        world = load_tiny_world(a.root, device=a.device, students=names)
        res = evaluate_controls(world, names, a.per_prompt, tuple(range(a.seeds)), a.n_fid,
                                out=a.out or os.path.join(a.root, "students", "controls.json"))
        for r in loss_table_rows(diversity_losses(res)):
            print(r)
        return 0

    world = load_tiny_world(a.root, device=a.device)
    names = a.students.split(",") if a.students else None
    rows = evaluate_students(world, names, n=a.n, seeds=tuple(range(a.seeds)))
    print(format_table(rows))
    if a.out:
        from ..provenance import atomic_write_json

        atomic_write_json(a.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
