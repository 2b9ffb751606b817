"""`python -m divdistill.chapters.students`: the sampler control table (teacher 50 steps; per student its plan, the
teacher on its sampler, hybrid(k=1, CFG 0); diversity on EVAL_PROMPTS), resumable, into <root>/students/controls.json;
with `--what prior`, each student's FID_tiny against its start's std into <root>/students/prior_sensitivity.json."""
import os
import sys

from ... import commandline as C

PROG = "python -m divdistill.chapters.students"


def _main(argv) -> int:
    from ...tiny.loader import load_tiny_world, variant_dir
    from .measure import diversity_losses, evaluate_controls, loss_table_rows, prior_sensitivity

    p = C.add_common(C.parser(PROG, description=__doc__),
                     out="default: <root>/students/controls.json (--what prior: prior_sensitivity.json)")
    p.add_argument("--what", choices=("controls", "prior"), default="controls")
    p.add_argument("--per-prompt", type=int, default=10)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--n-fid", type=int, default=0, help="FID_tiny samples (--what prior: default 1000)")
    p.add_argument("--students", default=None, help="comma-separated (default: all found)")
    p.add_argument("--root", default=None, help="a world folder (default: data/tiny/<variant>)")
    p.add_argument("--redo", default="", help="comma-separated students whose rows are measured again (rows that record "
                   "their weights are re-measured on their own when those change)")
    a = C.setup(p.parse_args(argv))
    root = a.root or variant_dir(a.variant)
    names = a.students.split(",") if a.students else None
    world = load_tiny_world(root, device=a.device, students=names)
    if a.what == "prior":
        prior_sensitivity(world, names, a.n_fid or 1000, out=a.out or os.path.join(root, "students",
                                                                                  "prior_sensitivity.json"))
        return 0
    res = evaluate_controls(world, names, a.per_prompt, tuple(range(a.seeds)), a.n_fid,
                            out=a.out or os.path.join(root, "students", "controls.json"),
                            redo=tuple(x for x in a.redo.split(",") if x))
    for r in loss_table_rows(diversity_losses(res)):
        print(r)
    return 0


sys.exit(C.main_guard(PROG, _main))
