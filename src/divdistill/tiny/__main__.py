"""CLI: python -m divdistill.tiny train-teacher | train-evaluator | evaluate | record-attempt | set-prior."""
from __future__ import annotations

import json
import os
import sys

from .. import commandline as C
from .schedule import PRIORS

PROG = "python -m divdistill.tiny"


def _parser():
    p = C.parser(PROG, description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = C.add_common(sub.add_parser("train-teacher", help="train (or resume) the tiny teacher + text encoder"),
                     out="default: data/tiny/<variant>/teacher")
    for name, typ, default in (("--steps", int, 6500), ("--batch", int, 64), ("--seed", int, 0), ("--lr", float, 1e-3),
                               ("--warmup", int, 200), ("--offset-noise-start", int, 5000),
                               ("--ckpt-every", int, 250), ("--decay-steps", int, 0)):
        t.add_argument(name, type=typ, default=default)
    t.add_argument("--ema", default="0.999",
                   help="EMA decay per step, or 'scaled': 0.999 at batch 64 carried to --batch by its horizon in "
                        "samples")
    t.add_argument("--offset-noise", default="0.1",
                   help="offset-noise std, or 'derived' for spectrum.derive_offset on this run's SNR factor")
    t.add_argument("--snr-factor", type=float, default=None,
                   help="SNR(t) x this of SD's schedule (default: the variant's own factor, tiny/loader.py)")
    t.add_argument("--prior", choices=PRIORS, default="marginal",
                   help="the sampling prior x_T of its probes and world (tiny/schedule.py): 'marginal' = "
                        "N(0, (1 - ᾱ_T) I), the noise part of q(x_T); 'unit' = N(0, I); 'marginal-sdxl-spread' = the "
                        "marginal draws with each one's amplitude spread narrowed to an SDXL latent's")
    t.add_argument("--width", type=int, default=16,
                   help="the UNet's base channels (blocks: width, 2x, 4x; a multiple of 8); issue 19's untried remedy")
    t.add_argument("--init-from", default=None, help="fine-tune from this teacher folder (e.g. the sd-schedule one)")
    t.add_argument("--probe-n", type=int, default=0, help="samples per seed (x3 seeds) of the half-way/final probe")
    e = C.add_common(sub.add_parser("train-evaluator", help="train (or resume) the tiny evaluator CNN"), variant=False,
                     out="default: data/tiny/evaluator")
    e.add_argument("--steps", type=int, default=3000)
    e.add_argument("--seed", type=int, default=1)
    v = C.add_common(sub.add_parser("evaluate", help="measure the evaluator and the teacher; metrics → provenance"))
    v.add_argument("--root", default=None, help="a world folder (default: data/tiny/<variant>)")
    v.add_argument("--n", type=int, default=1000)
    v.add_argument("--seed", type=int, default=1234)
    v.add_argument("--only", choices=("all", "grain"), default="all",
                   help="grain: only the flat-background grain, on the same samples (keeps the other metrics)")
    r = C.add_common(sub.add_parser("record-attempt", help="add an evaluated teacher run to the variant's "
                                    "teacher_attempts.json (the tiny-world chapter's remedies table)"),
                     device=False, threads=None, out=None)
    r.add_argument("--teacher", required=True, help="the evaluated teacher folder (with provenance.json)")
    r.add_argument("--label", required=True, help="what this run tried, e.g. 'derived offset noise from step 0'")
    sp = C.add_common(sub.add_parser("set-prior", help="declare a trained world's sampling prior in its teacher's and "
                                     "students' scheduler.json (weights untouched)"), device=False, threads=None,
                      out=None)
    sp.add_argument("prior", choices=PRIORS)
    sp.add_argument("--root", default=None, help="a world folder (default: data/tiny/<variant>)")
    for s in (t, e, v, r, sp):
        s.add_argument("--debug", action="store_true", help="on an error, show the traceback")
    return p


def _number_or(value: str, flag: str, keyword: str, valid: str, ok, derive) -> float:
    """A number option that also takes a keyword: `derive()` for the keyword, else the number when ok(number)."""
    if value == keyword:
        return derive()
    bad = f"{flag} must be {valid} or {keyword!r}, got {value!r}"
    try:
        x = float(value)
    except ValueError:
        raise ValueError(bad) from None
    if not ok(x):
        raise ValueError(bad)
    return x


def _offset_noise(value: str, snr_factor: float) -> float:
    """--offset-noise: a number >= 0, or 'derived' (SDXL's 0.05 carried over by the count, tiny/spectrum.py)."""
    from .spectrum import derive_offset

    return _number_or(value, "--offset-noise", "derived", "a number >= 0", lambda x: x >= 0,
                      lambda: derive_offset(s=snr_factor)["offset_noise"])


def _ema(value: str, batch: int) -> float:
    """--ema: a decay in [0, 1), or 'scaled' (TeacherConfig's decay at its batch, same horizon in samples)."""
    from ..training import ema_decay_for_batch
    from .teacher import TeacherConfig

    return _number_or(value, "--ema", "scaled", "a number in [0, 1)", lambda x: 0 <= x < 1,
                      lambda: ema_decay_for_batch(TeacherConfig.ema, TeacherConfig.batch, batch))


def _train_teacher(a) -> dict:
    from .loader import variant_dir, variant_snr_factor
    from .teacher import TeacherConfig, train_teacher

    snr = variant_snr_factor(a.variant) if a.snr_factor is None else a.snr_factor
    cfg = TeacherConfig(steps=a.steps, batch=a.batch, seed=a.seed, lr=a.lr, warmup=a.warmup, snr_factor=snr,
                        offset_noise=_offset_noise(a.offset_noise, snr), init_from=a.init_from,
                        offset_noise_start=a.offset_noise_start, ema=_ema(a.ema, a.batch), ckpt_every=a.ckpt_every,
                        decay_steps=a.decay_steps, prior=a.prior, width=a.width)
    probe = None
    if a.probe_n:
        from .quality import teacher_probe

        probe = teacher_probe(a.probe_n, n_div=5)  # 50-step plans are costly on a CPU: 5 per EVAL_PROMPT
    return train_teacher(a.out or os.path.join(variant_dir(a.variant), "teacher"), cfg, device=a.device, probe=probe,
                         probe_at=(a.steps // 2,))


def _main(argv) -> int:
    a = C.setup(_parser().parse_args(argv))
    if a.cmd == "train-teacher":
        res = _train_teacher(a)
    elif a.cmd == "train-evaluator":
        from .evaluator import EvaluatorConfig, train_evaluator
        from .loader import evaluator_dir

        res = train_evaluator(a.out or evaluator_dir(), EvaluatorConfig(steps=a.steps, seed=a.seed), device=a.device)
    elif a.cmd == "set-prior":
        from .loader import set_world_prior, variant_dir

        res = set_world_prior(a.root or variant_dir(a.variant), a.prior)
    elif a.cmd == "record-attempt":
        from .loader import variant_dir
        from .quality import record_attempt

        res = record_attempt(variant_dir(a.variant), a.teacher, a.label)
    else:
        from .loader import variant_dir
        from .quality import evaluate_grain, evaluate_world

        run = evaluate_grain if a.only == "grain" else evaluate_world
        res = run(a.root or variant_dir(a.variant), n=a.n, seed=a.seed, device=a.device)
    print(json.dumps(res, indent=2, default=float))
    return 0


def main(argv=None) -> int:
    return C.main_guard(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
