"""Retrain the committed tiny world on one GPU through the project's own CLIs (issue 8), many runs side by side.

    python scripts/retrain_world.py teacher  --variant snr-matched            # teacher + its evaluation
    python scripts/retrain_world.py students --variant snr-matched [dmd2 ...] # student recipes in parallel
    python scripts/retrain_world.py evaluate --variant snr-matched            # every chapter's committed JSON

`--preset gpu` (default) is the committed world's recipe; `--preset micro` runs every stage at toy size (a dry run of
this script on a CPU); `--preset bench` runs a few iterations at the GPU batch sizes (timing, in a scratch copy).
Each run logs to logs/<variant>-<job>.log; a failed run is reported and the others go on.
The runs are ordinary CLI calls, so each resumes from its train_state.pt after a kill.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from divdistill.distill.recipes import RECIPES

PY = sys.executable
EVAL_JOBS = ("eval", "controls", "analogue", "dt_curves", "hybrid", "covariate", "control")
# The students' training length on one GPU (4-10x the samples of the CPU world's first students); iterations
# and batch are the recipe's --set overrides and land in each student's provenance.
STUDENT_SETS = {
    "gpu": {"dmd2": "iters=500 batch=32", "dmd2_ddil": "iters=500 batch=32",
            "lcm": "iters=1200 batch=64", "lcm_ddil": "iters=1200 batch=64", "lcm_reflected": "iters=1200 batch=64",
            "lcm_ddil_reflected": "iters=1200 batch=64",
            "pd": "iters_per_stage=450 batch=64", "pd_ddil": "iters_per_stage=450 batch=64",
            "turbo": "iters=1500 batch=32", "lightning": "iters=300 batch=32"},
    "micro": {r: ("iters_per_stage=2" if r.startswith("pd") else "iters=2") + " batch=4" for r in RECIPES},
}
STUDENT_SETS["bench"] = {r: ("iters_per_stage=10" if r.startswith("pd") else "iters=10" if r == "lightning" else
                             "iters=30") + " " + v.split(" ", 1)[1] for r, v in STUDENT_SETS["gpu"].items()}
TEACHER_ARGS = {"gpu": "--steps 6500 --batch 64 --offset-noise-start 5000 --ema 0.999 --ckpt-every 500 --probe-n 200",
                "micro": "--steps 4 --batch 4 --offset-noise-start 2 --ckpt-every 2 --probe-n 8",
                "bench": "--steps 100 --batch 64 --ckpt-every 500"}
PROBE_N = {"gpu": 200, "micro": 8, "bench": 0}
TEACHER_EVAL_N = {"gpu": 1000, "micro": 8}
EVAL_SIZES = {  # (job, args) of every committed evaluation JSON of one variant
    "gpu": {"eval": "--n 1000 --seeds 3", "controls": "--per-prompt 24 --seeds 3 --n-fid 1000", "analogue": "--n 64",
            "dt_curves": "--n-seeds 16", "hybrid": "--other-per-prompt 20", "covariate": "--n 96 --seeds 0 1 2",
            "control": ("--retrain", "")},
    "micro": {"eval": "--n 8 --seeds 2", "controls": "--per-prompt 2 --seeds 2 --n-fid 8", "analogue": "--n 2",
              "dt_curves": "--n-seeds 2", "covariate": "--n 4 --seeds 0 1 --n-shift 8 --k 2",
              "control": ("--retrain --steps 2", "--n-seeds 2"),
              "hybrid": "--n-prompts 2 --per-prompt 2 --replicates 2 --base-per-prompt 2 --base-replicates 1 "
                        "--sweep-per-prompt 2 --other-per-prompt 2 --n-eval 8 --n-ref 8 --n-boot 20"},
}


def launch(jobs: dict, logdir: str, timeout: float) -> dict:
    """Run {name: argv} side by side (one torch thread each); wait; return {name: (returncode, seconds)}."""
    os.makedirs(logdir, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "30"}
    procs, t0 = {}, time.time()
    for name, argv in jobs.items():
        log = open(os.path.join(logdir, f"{name}.log"), "w")
        procs[name] = (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env), log, time.time())
        print(f"[{time.time() - t0:6.0f}s] start {name}: {' '.join(argv[2:])}", flush=True)
    out = {}
    while procs:
        for name, (p, log, start) in list(procs.items()):
            if p.poll() is None and time.time() - t0 > timeout:
                p.kill()
            if p.poll() is not None:
                log.close()
                out[name] = (p.returncode, time.time() - start)
                print(f"[{time.time() - t0:6.0f}s] {'done' if p.returncode == 0 else 'FAILED'} {name} "
                      f"(rc {p.returncode}, {out[name][1]:.0f}s)", flush=True)
                if p.returncode:
                    print("".join(open(os.path.join(logdir, f"{name}.log")).readlines()[-15:]), flush=True)
                del procs[name]
        time.sleep(1)
    return out


def teacher_jobs(variant: str, preset: str) -> dict:
    from divdistill.tiny.loader import variant_snr_factor

    snr = variant_snr_factor(variant)  # 1, the value count 64/3, or the spectrum-aware derivation (tiny/spectrum.py)
    return {f"{variant}-teacher": [PY, "-m", "divdistill.tiny", "train-teacher", "--variant", variant,
                                   "--snr-factor", repr(snr), *TEACHER_ARGS[preset].split()]}


def student_jobs(variant: str, preset: str, names) -> dict:
    return {f"{variant}-{r}": [PY, "-m", "divdistill.distill", "train", r, "--variant", variant,
                               "--probe-n", str(PROBE_N[preset]), "--threads", "1", "--set",
                               *STUDENT_SETS[preset][r].split()] for r in names}


def eval_jobs(variant: str, preset: str) -> dict:
    s, v, root = EVAL_SIZES[preset], ["--variant", variant], os.path.join("data", "tiny", variant)
    m = lambda mod, *a: [PY, "-m", f"divdistill.{mod}", *a]  # noqa: E731
    return {
        f"{variant}-eval": m("chapters.ddil", *v, *s["eval"].split(), "--out",
                             os.path.join(root, "students", "eval.json")),
        f"{variant}-controls": m("chapters.students", *v, *s["controls"].split()),
        f"{variant}-analogue": m("chapters.tiny_world", *v, *s["analogue"].split()),
        f"{variant}-dt_curves": m("chapters.dt", *v, *s["dt_curves"].split()),
        f"{variant}-hybrid": m("chapters.hybrid", *v, *s["hybrid"].split()),
        f"{variant}-covariate": m("chapters.covariate", *v, *s["covariate"].split(), "--out",
                                  os.path.join(root, "covariate_shift.json")),
        f"{variant}-control": ["bash", "-c", f"{PY} -m divdistill.control train-all --variant {variant} "
                               f"{s['control'][0]} && {PY} -m divdistill.chapters.control --variant {variant} "
                               f"{s['control'][1]}"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=("teacher", "teacher-eval", "students", "evaluate"))
    p.add_argument("names", nargs="*", help="student recipes (students) or evaluations (evaluate); default: all")
    p.add_argument("--variant", action="append", default=None, help="repeatable; default snr-matched")
    p.add_argument("--preset", default="gpu", choices=sorted(TEACHER_ARGS))
    p.add_argument("--timeout", type=float, default=3600.0, help="kill what still runs after this many seconds")
    p.add_argument("--logs", default="logs")
    a = p.parse_intermixed_args(argv)  # names may follow the options
    variants = a.variant or ["snr-matched"]
    sizes = {"teacher-eval": TEACHER_EVAL_N, "evaluate": EVAL_SIZES}.get(a.stage)
    if sizes is not None and a.preset not in sizes:
        raise SystemExit(f"preset {a.preset!r} has no {a.stage} sizes; valid: {sorted(sizes)}")
    valid = EVAL_JOBS if a.stage == "evaluate" else RECIPES
    for r in a.names:
        if r not in valid:
            kind = "evaluation" if a.stage == "evaluate" else "recipe"
            raise SystemExit(f"unknown {kind} {r!r}; valid: {list(valid)}")
    jobs = {}
    for v in variants:
        if a.stage == "teacher":
            jobs.update(teacher_jobs(v, a.preset))
        elif a.stage == "teacher-eval":
            jobs[f"{v}-teacher-eval"] = [PY, "-m", "divdistill.tiny", "evaluate", "--variant", v,
                                         "--n", str(TEACHER_EVAL_N[a.preset])]
        elif a.stage == "students":
            jobs.update(student_jobs(v, a.preset, a.names or RECIPES))
        else:
            wanted = a.names or EVAL_JOBS
            jobs.update({k: j for k, j in eval_jobs(v, a.preset).items() if k.split("-", 2)[-1] in wanted})
    res = launch(jobs, a.logs, a.timeout)
    failed = [k for k, (rc, _) in res.items() if rc]
    print("failed:", failed or "none", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
