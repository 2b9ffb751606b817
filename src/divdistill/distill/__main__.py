"""CLI: python -m divdistill.distill train RECIPE | train-all | record-attempt (the students' tables:
divdistill.chapters.ddil, .students)."""
from __future__ import annotations

import os
import sys

from .. import commandline as C

PROG = "python -m divdistill.distill"


def _overrides(pairs, cfg) -> dict:
    """--set key=value pairs → typed config overrides (the type of the recipe's current value)."""
    out = {}
    for pair in pairs or []:
        key, sep, val = pair.partition("=")
        if not sep or not hasattr(cfg, key):
            raise ValueError(f"--set expects key=value with key a field of {type(cfg).__name__}, got {pair!r}")
        cur = getattr(cfg, key)
        out[key] = type(cur)(val) if isinstance(cur, (int, float, str)) and not isinstance(cur, bool) else val
    return out


def _main(argv) -> int:
    from ..tiny.loader import variant_dir
    from .recipes import RECIPES, recipe, train

    p = C.parser(PROG, description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) one student recipe into data/tiny/<variant>/students/RECIPE")
    t.add_argument("recipe", help=f"one of {sorted(RECIPES)}")
    t.add_argument("--set", nargs="*", default=None, help="config overrides key=value (e.g. iters=200)")
    t.add_argument("--probe-n", type=int, default=0, help="probe FID/diversity half-way and at the end (n x 3 seeds)")
    a_ = sub.add_parser("train-all", help="train (or resume) every recipe in turn")
    r = sub.add_parser("record-attempt", help="record a diagnostic run of a recipe beside the world's shipped student "
                       "(<world>/students/attempts.json, the students chapter's table)")
    r.add_argument("recipe", help=f"the shipped student the run is compared with, one of {sorted(RECIPES)}")
    r.add_argument("--student", required=True, help="the run's folder (a --root's students/RECIPE, with provenance)")
    r.add_argument("--label", required=True, help="what the run tried, e.g. 'real-score guidance 2 instead of 4'")
    r.add_argument("--eval", default=None, help="an eval.json holding the run's row, measured as the shipped students' "
                   "(python -m divdistill.chapters.ddil --root <its world> --students RECIPE --merge --out PATH)")
    for s in (t, a_):
        C.add_common(s)
    C.add_common(r, device=False, threads=None, out=None)
    for s in (t, a_, r):
        s.add_argument("--root", default=None, help="a world folder (default: data/tiny/<variant>)")
    a = C.setup(p.parse_args(argv))
    a.root = a.root or variant_dir(a.variant)
    if a.cmd == "record-attempt":
        return _record(a)
    names = [a.recipe] if a.cmd == "train" else list(RECIPES)
    for name in names:
        if name not in RECIPES:
            raise ValueError(f"unknown recipe {name!r}; valid: {sorted(RECIPES)}")
        extra = _overrides(getattr(a, "set", None), recipe(name)[1])
        res = train(name, a.root, os.path.join(a.root, "students", name), device=a.device,
                    probe_n=getattr(a, "probe_n", 0), **extra)
        print(f"{name}: {res['wall']:.0f} s, last losses {res['losses'][-1]}", flush=True)
    return 0


def _record(a) -> int:
    from .attempts import ATTEMPTS_FILE, record_attempt
    from .recipes import RECIPES

    if a.recipe not in RECIPES:
        raise ValueError(f"unknown recipe {a.recipe!r}; valid: {sorted(RECIPES)}")
    rows = record_attempt(a.root, a.student, a.recipe, a.label, a.eval)
    last = next(x for x in rows if (x["student"], x["label"]) == (a.recipe, a.label))
    print(f"{os.path.join(a.root, 'students', ATTEMPTS_FILE)}: {len(rows)} records; this one changed "
          f"{sorted(last['changes'])}, lowest probe at step {last['chosen_step']}")
    return 0


def main(argv=None) -> int:
    return C.main_guard(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
