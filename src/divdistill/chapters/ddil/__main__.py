"""`python -m divdistill.chapters.ddil`: the teacher + students table (DDIL Tables 3/5 format), ≥ 1,000 samples × 3
seeds; --out also writes the rows as JSON (the committed <root>/students/eval.json)."""
import json
import os
import sys

from ... import commandline as C

PROG = "python -m divdistill.chapters.ddil"


def _main(argv) -> int:
    from ...io import atomic_write_json
    from ...tiny.loader import load_tiny_world, variant_dir
    from .measure import evaluate_students, format_table, merge_rows

    p = C.add_common(C.parser(PROG, description=__doc__), out="also write the rows as JSON here")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--students", default=None, help="comma-separated (default: all found)")
    p.add_argument("--root", default=None, help="a world folder (default: data/tiny/<variant>)")
    p.add_argument("--merge", action="store_true",
                   help="re-measure only --students (a retrained student) and put their rows in place in --out")
    a = C.setup(p.parse_args(argv))
    if a.merge and not (a.out and a.students and os.path.exists(a.out)):
        raise ValueError("--merge needs --students and an existing --out JSON whose rows it updates")
    world = load_tiny_world(a.root or variant_dir(a.variant), device=a.device)
    rows = evaluate_students(world, a.students.split(",") if a.students else None, n=a.n, seeds=tuple(range(a.seeds)),
                             teacher=not a.merge)
    if a.merge:
        rows = merge_rows(json.load(open(a.out)), rows, n=a.n, seeds=a.seeds)
    print(format_table(rows))
    if a.out:
        atomic_write_json(a.out, rows)
    return 0


sys.exit(C.main_guard(PROG, _main))
