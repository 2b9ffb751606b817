"""`python -m divdistill.chapters.control`: Table 1 analogue, slider sweep and late start → <loras>/transfer.json."""
import sys

from ... import commandline as C

PROG = "python -m divdistill.chapters.control"


def _main(argv) -> int:
    from ...worlds import load_world
    from .measure import evaluate_all

    p = C.add_common(C.parser(PROG, description=__doc__), threads=1)
    p.add_argument("--n-seeds", type=int, default=5)
    args = C.setup(p.parse_args(argv))
    world = load_world("tiny", device=args.device, **C.world_kwargs(args))
    print(f"wrote {evaluate_all(world, n_seeds=args.n_seeds)}")
    return 0


sys.exit(C.main_guard(PROG, _main))
