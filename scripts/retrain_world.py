"""Retrain the committed tiny world on one GPU through the project's own CLIs (issue 8), many runs side by side.

    python scripts/retrain_world.py teacher  --variant snr-matched            # teacher + its evaluation
    python scripts/retrain_world.py students --variant snr-matched [dmd2 ...] # student recipes in parallel
    python scripts/retrain_world.py evaluate --variant snr-matched            # every chapter's committed JSON
    python scripts/retrain_world.py session --variant spectrum-matched --budget 540 --out $OUT  # one lent GPU

`--preset gpu` (default) is the committed world's recipe; `--preset micro` runs every stage at toy size (a dry run of
this script on a CPU); `--preset bench` runs a few iterations at the GPU batch sizes (timing, in a scratch copy).
Each run logs to logs/<variant>-<job>.log; a failed run is reported and the others go on.
The runs are ordinary CLI calls, so each resumes from its train_state.pt after a kill.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from divdistill.distill.recipes import RECIPES, length_key
from divdistill.tiny.loader import DEFAULT_VARIANT

PY = sys.executable
EVAL_JOBS = ("eval", "controls", "analogue", "grain", "size", "leak", "dt_curves", "hybrid", "covariate", "control",
             "prior")
EVAL_NEEDS = {"covariate": ("pd",)}  # students an evaluation cannot run without (the covariate study distills PD)
# The students' training length on one GPU (4-10x the samples of the CPU world's first students); iterations
# and batch are the recipe's --set overrides and land in each student's provenance.
STUDENT_SETS = {
    "gpu": {"dmd2": "iters=500 batch=32", "dmd2_ddil": "iters=500 batch=32",
            "lcm": "iters=1200 batch=64", "lcm_ddil": "iters=1200 batch=64", "lcm_reflected": "iters=1200 batch=64",
            "lcm_ddil_reflected": "iters=1200 batch=64",
            "pd": "iters_per_stage=450 batch=64", "pd_ddil": "iters_per_stage=450 batch=64",
            "turbo": "iters=1500 batch=32", "lightning": "iters=300 batch=32"},
    "micro": {r: f"{length_key(r)}=2 batch=4" for r in RECIPES},
}
STUDENT_SETS["bench"] = {r: f"{length_key(r)}={10 if length_key(r) == 'iters_per_stage' or r == 'lightning' else 30} "
                             + v.split(" ", 1)[1] for r, v in STUDENT_SETS["gpu"].items()}
TEACHER_ARGS = {"gpu": "--steps 6500 --batch 64 --offset-noise-start 5000 --ema 0.999 --ckpt-every 500 --probe-n 200",
                "micro": "--steps 4 --batch 4 --offset-noise-start 2 --ckpt-every 2 --probe-n 8",
                "bench": "--steps 100 --batch 64 --ckpt-every 500"}
PROBE_N = {"gpu": 200, "micro": 8, "bench": 0}
TEACHER_EVAL_N = {"gpu": 1000, "micro": 8}
EVAL_SIZES = {  # (job, args) of every committed evaluation JSON of one variant
    "gpu": {"eval": "--n 1000 --seeds 3", "controls": "--per-prompt 24 --seeds 3 --n-fid 1000", "analogue": "--n 64",
            "grain": "--n 64 --n-fid 1000", "dt_curves": "--n-seeds 16", "hybrid": "--other-per-prompt 20",
            "covariate": "--n 96 --seeds 0 1 2", "control": ("--retrain", ""), "prior": "--n-fid 1000",
            "size": "--n 100", "leak": "--n 1000"},
    "micro": {"eval": "--n 8 --seeds 2", "controls": "--per-prompt 2 --seeds 2 --n-fid 8", "analogue": "--n 2",
              "grain": "--n 2 --n-fid 8", "dt_curves": "--n-seeds 2",
              "covariate": "--n 4 --seeds 0 1 --n-shift 8 --k 2",
              "control": ("--retrain --steps 2", "--n-seeds 2"), "prior": "--n-fid 8", "size": "--n 2", "leak": "--n 2",
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


def missing_students(variant: str, job: str) -> str | None:
    """Why `job` cannot run on the variant's committed world (a student it needs is absent), or None."""
    have = os.path.join("data", "tiny", variant, "students")
    gone = [s for s in EVAL_NEEDS.get(job, ()) if not os.path.isdir(os.path.join(have, s))]
    return f"{job} needs the student(s) {gone}, which {variant} does not have ({have})" if gone else None


def wanted_eval_jobs(variant: str, preset: str, names) -> dict:
    """The named evaluations (default: all) of one variant; one that lacks a student it needs is an error when named,
    skipped with a line saying why when not."""
    out = {}
    for k, job in eval_jobs(variant, preset).items():
        name = k.split("-", 2)[-1]
        if names and name not in names:
            continue
        why = missing_students(variant, name)
        if why and names:
            raise SystemExit(why)
        if why:
            print(f"skip {k}: {why}", flush=True)
            continue
        out[k] = job
    return out


def eval_jobs(variant: str, preset: str) -> dict:
    s, v, root = EVAL_SIZES[preset], ["--variant", variant], os.path.join("data", "tiny", variant)
    m = lambda mod, *a: [PY, "-m", f"divdistill.{mod}", *a]  # noqa: E731
    return {
        f"{variant}-eval": m("chapters.ddil", *v, *s["eval"].split(), "--out",
                             os.path.join(root, "students", "eval.json")),
        f"{variant}-controls": m("chapters.students", *v, *s["controls"].split()),
        f"{variant}-analogue": m("chapters.tiny_world", *v, *s["analogue"].split()),
        f"{variant}-grain": m("chapters.tiny_world", *v, "--what", "grain", *s["grain"].split()),
        f"{variant}-size": m("chapters.tiny_world", *v, "--what", "size", *s["size"].split()),
        f"{variant}-leak": m("chapters.tiny_world", *v, "--what", "leak", *s["leak"].split()),
        f"{variant}-dt_curves": m("chapters.dt", *v, *s["dt_curves"].split()),
        f"{variant}-hybrid": m("chapters.hybrid", *v, *s["hybrid"].split()),
        f"{variant}-covariate": m("chapters.covariate", *v, *s["covariate"].split(), "--out",
                                  os.path.join(root, "covariate_shift.json")),
        f"{variant}-control": ["bash", "-c", f"{PY} -m divdistill.control train-all --variant {variant} "
                               f"{s['control'][0]} && {PY} -m divdistill.chapters.control --variant {variant} "
                               f"{s['control'][1]}"],
        f"{variant}-prior": m("chapters.students", *v, "--what", "prior", *s["prior"].split()),
    }


# One lent GPU session (issue 19: 15 device-minutes in all): the SDXL timing on a clean GPU, then the teacher continued
# at a GPU batch for as many steps as its share of the budget allows, then every student side by side (the teacher's
# n = 1,000 evaluation beside them) for as many iterations as the rest allows. Lengths are set by measured speed and
# the budget alone, never by a result; each run's provenance records them.
SESSION = {  # seconds per phase, the teacher's arguments, student batch (default 128), timed iterations, probes
    "gpu": dict(bench=60, teacher=150, teacher_probes=25, pack=35, probes=45, timing_steps=30, probe_n=200,
                eval_n=1000,
                teacher_args="--batch 512 --seed 3 --offset-noise derived --offset-noise-start 0 --ema scaled "
                             "--ckpt-every 250 --probe-n 200",
                batch={"dmd2": 64, "dmd2_ddil": 64, "turbo": 64, "lightning": 64}, timing_iters=(12, 4)),
    "micro": dict(bench=0, teacher=30, teacher_probes=10, pack=5, probes=2, timing_steps=2, probe_n=8, eval_n=8,
                  teacher_args="--batch 4 --seed 3 --offset-noise derived --offset-noise-start 0 --ckpt-every 2 "
                               "--probe-n 0", batch={r: 4 for r in RECIPES}, timing_iters=(2, 1), max_iters=2),
}
SESSION_CAP = 2.0  # at most 2x the gpu preset's iterations


def _preset_iters(recipe: str) -> int:
    return int(dict(kv.split("=") for kv in STUDENT_SETS["gpu"][recipe].split())[length_key(recipe)])


def session_iters(recipe: str, sec_per_step: float, steps_per_iter: float, window: float) -> int:
    """Iterations (the recipe's iters/iters_per_stage) that fit `window` seconds at the measured speed, with a 25%
    margin, at most SESSION_CAP x the gpu preset's and at least 8."""
    fit = int(0.75 * window / max(sec_per_step, 1e-6) / steps_per_iter)
    return max(8, min(fit, int(SESSION_CAP * _preset_iters(recipe))))


def _prov(path: str) -> dict:
    with open(os.path.join(path, "provenance.json")) as f:
        return json.load(f)


def _student_argv(root: str, r: str, iters: int, probe_n: int, batch: int) -> list:
    return [PY, "-m", "divdistill.distill", "train", r, "--root", root, "--probe-n", str(probe_n), "--threads", "1",
            "--set", f"{length_key(r)}={iters}", f"batch={batch}"]


def session(variant: str, budget: float, out: str, preset: str = "gpu", work: str = os.path.join("runs", "session"),
            skip_teacher: bool = False) -> dict:
    """The whole lent-GPU session; returns its record (also written to out/session.json). skip_teacher: the
    students (and the teacher's evaluation) only, from the teacher already in data/tiny/<variant>/teacher."""
    S, t0, root = SESSION[preset], time.time(), os.path.join("data", "tiny", variant)
    left = lambda: budget - (time.time() - t0)  # noqa: E731
    logs, rec = os.path.join(work, "logs"), {"variant": variant, "budget_s": budget, "phases": {}}
    os.makedirs(out, exist_ok=True)
    bench = os.path.abspath(os.path.join(out, "hybrid_overhead_sdxl.json"))
    if skip_teacher:
        return students_phase(variant, S, root, out, work, rec, left, t0)
    if S["bench"]:
        rec["phases"]["sdxl_bench"] = launch({"sdxl-bench": ["bash", "-c", f"{PY} benchmarks/hybrid_overhead.py "
                                                             f"--sdxl --repeats 3 > {bench}.tmp && mv {bench}.tmp "
                                                             f"{bench}"]}, logs, S["bench"])
    # the teacher: 30 timed steps in scratch, then the run
    tdir, targs = os.path.join(work, "teacher"), ["--variant", variant, "--init-from", os.path.join(root, "teacher")]
    base = [PY, "-m", "divdistill.tiny", "train-teacher", *targs, *S["teacher_args"].split()]
    n = S["timing_steps"]
    launch({"teacher-timing": [*base, "--steps", str(n), "--probe-n", "0", "--out", os.path.join(work, "t-timing")]},
           logs, 90)
    rate = _prov(os.path.join(work, "t-timing"))["wall_time_s"] / n
    steps = max(4, int((S["teacher"] - S["teacher_probes"]) / rate) // 2 * 2)
    rec["teacher"] = {"sec_per_step_timed": rate, "steps": steps, "decay_steps": steps // 2}
    rec["phases"]["teacher"] = launch({"teacher": [*base, "--steps", str(steps), "--decay-steps", str(steps // 2),
                                                   "--out", tdir]}, logs, S["teacher"] + 90)
    if any(rc for rc, _ in rec["phases"]["teacher"].values()):  # never train students from the old teacher
        pack(variant, out, work, rec)
        return rec
    shutil.copytree(tdir, os.path.join(root, "teacher"), dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("train_state.pt"))
    return students_phase(variant, S, root, out, work, rec, left, t0)


def students_phase(variant, S, root, out, work, rec, left, t0) -> dict:
    """Every student side by side (a timed handful of iterations first), the teacher's evaluation beside them."""
    logs = os.path.join(work, "logs")
    # the students: a timed handful of iterations each, side by side in a scratch world, then the runs
    scratch = os.path.join(work, "timing-root")
    shutil.copytree(os.path.join(root, "teacher"), os.path.join(scratch, "teacher"), dirs_exist_ok=True)
    n_t = {r: S["timing_iters"][r.startswith("pd") or r == "lightning"] for r in RECIPES}
    batch = {r: S["batch"].get(r, 128) for r in RECIPES}
    launch({f"timing-{r}": _student_argv(scratch, r, n_t[r], 0, batch[r]) for r in RECIPES}, logs, 120)
    window = left() - S["pack"] - S["probes"]
    plan = {}
    for r in RECIPES:
        if not os.path.exists(os.path.join(scratch, "students", r, "provenance.json")):
            rec.setdefault("timing_failed", []).append(r)  # its log says why; it is not trained this session
            continue
        p = _prov(os.path.join(scratch, "students", r))
        sps, spi = p["wall_time_s"] / p["steps"], p["steps"] / n_t[r]
        iters = min(session_iters(r, sps, spi, window), S.get("max_iters") or 10**9)
        plan[r] = {"sec_per_step_timed": sps, "steps_per_iter": spi, "batch": batch[r], length_key(r): iters}
    rec["students"] = {"window_s": window, "plan": plan}
    jobs = {r: _student_argv(root, r, plan[r][length_key(r)], S["probe_n"], batch[r]) for r in plan}
    jobs["teacher-eval"] = [PY, "-m", "divdistill.tiny", "evaluate", "--variant", variant, "--n", str(S["eval_n"])]
    rec["phases"]["students"] = launch(jobs, logs, left() - S["pack"])
    rec["wall_s"] = time.time() - t0
    pack(variant, out, work, rec)
    return rec


def pack(variant: str, out: str, work: str, rec: dict, part_mb: float = 15, max_parts: int = 4) -> None:
    """What comes back: session.json, the logs, and the world (teacher, finished students; unfinished ones' states
    while they fit) as a tar.gz split into <= part_mb MiB parts; a copy stays in `work`."""
    import glob
    import tarfile

    os.makedirs(out, exist_ok=True)
    root = os.path.join("data", "tiny", variant)
    files = [os.path.join(root, "teacher"), os.path.join("data", "tiny", "evaluator", "provenance.json")]
    for d in sorted(glob.glob(os.path.join(root, "students", "*"))):
        done = os.path.exists(os.path.join(d, "provenance.json"))
        files += [f for f in glob.glob(os.path.join(d, "**"), recursive=True) if os.path.isfile(f)
                  and (not done or not f.endswith("train_state.pt"))]
    tgz, part = os.path.join(work, "world.tar.gz"), int(part_mb * 2**20)
    budget = part * max_parts
    with tarfile.open(tgz, "w:gz") as tf:
        for f in files:
            if os.path.getsize(tgz) < budget - (os.path.getsize(f) if os.path.isfile(f) else 0):
                tf.add(f)
            else:
                rec.setdefault("left_out", []).append(f)
    with tarfile.open(os.path.join(out, "logs.tar.gz"), "w:gz") as tf:
        tf.add(os.path.join(work, "logs"), arcname="logs")
    data = open(tgz, "rb").read()
    for i in range(0, len(data), part):
        with open(os.path.join(out, f"world.tar.gz.part{i // part}"), "wb") as f:
            f.write(data[i:i + part])
    with open(os.path.join(out, "session.json"), "w") as f:
        json.dump(rec, f, indent=1, default=str)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=("teacher", "teacher-eval", "students", "evaluate", "session"))
    p.add_argument("names", nargs="*", help="student recipes (students) or evaluations (evaluate); default: all")
    p.add_argument("--variant", action="append", default=None,
                   help="repeatable; default: the default variant (tiny/loader.py)")
    p.add_argument("--preset", default="gpu", choices=sorted(TEACHER_ARGS))
    p.add_argument("--timeout", type=float, default=3600.0, help="kill what still runs after this many seconds")
    p.add_argument("--logs", default="logs")
    p.add_argument("--budget", type=float, default=540.0, help="session: seconds for the whole call")
    p.add_argument("--skip-teacher", action="store_true",
                   help="session: students only, from the committed teacher")
    p.add_argument("--out", default=os.environ.get("OUT", os.path.join("runs", "session-out")),
                   help="session: where session.json, the logs and the world's tar parts go")
    a = p.parse_intermixed_args(argv)  # names may follow the options
    variants = a.variant or [DEFAULT_VARIANT]
    if a.stage == "session":
        if len(variants) != 1:
            raise SystemExit(f"session trains one variant, got {variants}")
        rec = session(variants[0], a.budget, a.out, a.preset, skip_teacher=a.skip_teacher)
        return 0 if all(rc == 0 for ph in rec["phases"].values() for rc, _ in ph.values()) else 1
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
            jobs.update(wanted_eval_jobs(v, a.preset, a.names))
    res = launch(jobs, a.logs, a.timeout)
    failed = [k for k, (rc, _) in res.items() if rc]
    print("failed:", failed or "none", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
