"""Retrain an ablation world on the default world's recipes (issue 19, items 2 and 4: one recipe, two schedules).

    python scripts/ablation_world.py teacher  --variant sd-schedule           # the teacher's stages not yet done
    python scripts/ablation_world.py evaluate --variant sd-schedule           # its n = 1,000 acceptance evaluation
    python scripts/ablation_world.py students --variant sd-schedule [dmd2 ...] # at the default world's lengths
    python scripts/ablation_world.py install  --variant sd-schedule           # the new world replaces the old one

Everything is built in data/tiny/<variant>/next/, a world folder of its own (teacher/, students/), so that each
finished stage and student can be committed at once and a later session goes on from it; unfinished runs resume
from their train_state.pt. The teacher's stages are the lineage of the default world's committed teacher
(teacher_attempts.json and the teacher's provenance; tests/test_ablation_world.py checks them against it), with its
offset noise derived by the same rule on the ablation's own schedule. The students take the default world's
iterations and batch from its students' provenance. `--preset micro` runs every stage at toy size (a CPU dry run).

After install, for sd-schedule: `python scripts/retrain_world.py evaluate --variant sd-schedule` (its chapter JSON);
re-record the two regression references that pin this world (tests/test_trainer.py BEFORE trains on its teacher,
tests/test_run_plan_callback.py BEFORE samples its dmd2/lcm/turbo) with the code unchanged in the same commit; reread
the chapters' sentences about the ablation.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

from divdistill.distill.recipes import length_key
from divdistill.io import atomic_write_json
from divdistill.tiny.loader import DEFAULT_VARIANT

PY = sys.executable
COMMON = "--offset-noise derived --offset-noise-start 0 --ema 0.999"
STAGES = {  # the default teacher's lineage: 7,500 x 64 from scratch, 5,000 more, 668 x 512; each ends in a decay
    "cpu": ["--steps 7500 --batch 64 --seed 0 --decay-steps 1000",
            "--steps 5000 --batch 64 --seed 1 --decay-steps 1000",
            "--steps 668 --batch 512 --seed 3 --decay-steps 334 --probe-n 200"],
    "micro": ["--steps 4 --batch 4 --seed 0 --decay-steps 2 --ckpt-every 2",
              "--steps 2 --batch 4 --seed 1 --decay-steps 1 --ckpt-every 2",
              "--steps 2 --batch 8 --seed 3 --decay-steps 1 --ckpt-every 2"],
}
EVAL_N = {"cpu": 1000, "micro": 8}
PROBE_N = {"cpu": 200, "micro": 0}
WEIGHTS = ("unet", "text_encoder")
# What the old students' world computed; install removes them so nothing stale is read (retrain_world.py evaluate
# writes them again).
CHAPTER_JSONS = ("analogue.json", "covariate_shift.json", "dt_curves.json", "hybrid_eval.json", "teacher_grain.json",
                 "teacher_size.json", "teacher_leak.json", os.path.join("students", "eval.json"),
                 os.path.join("students", "controls.json"), os.path.join("students", "prior_sensitivity.json"))


def stage_dirs(next_root: str, preset: str) -> list[str]:
    """Stage k's output folder: next/stages/stage<k>, the last one next/teacher."""
    n = len(STAGES[preset])
    return [os.path.join(next_root, "stages", f"stage{k + 1}") for k in range(n - 1)] + [
        os.path.join(next_root, "teacher")]


def done(folder: str) -> bool:
    return os.path.exists(os.path.join(folder, "provenance.json"))


def teacher_argvs(variant: str, next_root: str, preset: str, threads: int) -> list[tuple[str, list]]:
    """(out, argv) of every stage not yet done, each initialised from the stage before it."""
    dirs, out = stage_dirs(next_root, preset), []
    for k, (folder, args) in enumerate(zip(dirs, STAGES[preset])):
        if done(folder):
            continue
        init = ["--init-from", dirs[k - 1]] if k else []
        out.append((folder, [PY, "-m", "divdistill.tiny", "train-teacher", "--variant", variant, "--out", folder,
                             "--threads", str(threads), *init, *COMMON.split(), *args.split()]))
    return out


def default_lengths(names, variant: str = DEFAULT_VARIANT) -> dict:
    """{recipe: ['iters=…', 'batch=…']} from the default world's students' provenance (their trained lengths)."""
    out = {}
    for r in names:
        path = os.path.join("data", "tiny", variant, "students", r, "provenance.json")
        if not os.path.exists(path):
            raise SystemExit(f"no committed {variant} student {r!r} to take a length from ({path})")
        with open(path) as f:
            c = json.load(f)["config"]
        out[r] = [f"{length_key(r)}={c[length_key(r)]}", f"batch={c['batch']}"]
    return out


def student_argvs(next_root: str, names, preset: str) -> dict:
    lengths = default_lengths(names) if preset == "cpu" else {r: [f"{length_key(r)}=2", "batch=4"] for r in names}
    return {r: [PY, "-m", "divdistill.distill", "train", r, "--root", next_root, "--probe-n", str(PROBE_N[preset]),
                "--threads", "1", "--set", *lengths[r]] for r in names}


def install(root: str, next_root: str) -> list[str]:
    """The finished next/ world replaces root's teacher and students (next/stages, the earlier teacher stages'
    provenance, becomes teacher_stages/); returns what was removed."""
    if not done(os.path.join(next_root, "teacher")):
        raise SystemExit(f"{next_root}/teacher is not finished (no provenance.json)")
    new = sorted(d for d in os.listdir(os.path.join(next_root, "students")) if done(os.path.join(next_root,
                                                                                                "students", d)))
    removed = [p for p in CHAPTER_JSONS if os.path.exists(os.path.join(root, p))]
    old = os.path.join(root, "students")
    removed += [os.path.join("students", d) for d in sorted(os.listdir(old)) if os.path.isdir(os.path.join(old, d))]
    for p in removed:
        full = os.path.join(root, p)
        shutil.rmtree(full) if os.path.isdir(full) else os.remove(full)
    shutil.rmtree(os.path.join(root, "teacher"))
    shutil.rmtree(os.path.join(root, "teacher_stages"), ignore_errors=True)
    moves = [("teacher", "teacher")] + [(os.path.join("students", d), os.path.join("students", d)) for d in new]
    if os.path.isdir(os.path.join(next_root, "stages")):  # the earlier stages' provenance (weights already dropped)
        moves.append(("stages", "teacher_stages"))
    paths = [(os.path.join(next_root, "stages"), os.path.join(root, "teacher_stages")), (next_root, root)]
    for src, dst in moves:
        shutil.move(os.path.join(next_root, src), os.path.join(root, dst))
        for top, _, files in os.walk(os.path.join(root, dst)):
            if "provenance.json" in files:
                relocate(os.path.join(top, "provenance.json"), paths)
    shutil.rmtree(next_root)
    return removed


def relocate(path: str, paths) -> None:
    """Rewrite a moved checkpoint's provenance so the folders it names (init_from, root) are where they now are;
    "relocated" records each (old, new) prefix. Written atomically."""
    def fix(v):
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, str):
            for a, b in paths:
                if v == a or v.startswith(a + os.sep):
                    return b + v[len(a):]
        return v
    with open(path) as f:
        prov = json.load(f)
    atomic_write_json(path, {**fix(prov), "relocated": [list(p) for p in paths]})


def _run(argv: list) -> int:
    print("$", " ".join(argv[1:]), flush=True)
    return subprocess.call(argv)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=("teacher", "evaluate", "students", "install"))
    p.add_argument("names", nargs="*", help="students: recipes (default: dmd2 turbo lcm, the ablation's four)")
    p.add_argument("--variant", default="sd-schedule")
    p.add_argument("--preset", default="cpu", choices=sorted(STAGES))
    p.add_argument("--threads", type=int, default=2, help="teacher and evaluate: torch threads")
    a = p.parse_args(argv)
    if a.variant == DEFAULT_VARIANT:
        raise SystemExit(f"{a.variant!r} is the default world, whose recipes this copies; name an ablation")
    root = os.path.join("data", "tiny", a.variant)
    next_root = os.path.join(root, "next")
    if a.stage == "teacher":
        for folder, argv_ in teacher_argvs(a.variant, next_root, a.preset, a.threads):
            if _run(argv_):
                return 1
            prev = stage_dirs(next_root, a.preset)
            for d in prev[:prev.index(folder)]:  # keep earlier stages' provenance, drop their weights
                for w in WEIGHTS:
                    shutil.rmtree(os.path.join(d, w), ignore_errors=True)
        return 0
    if a.stage == "evaluate":
        return _run([PY, "-m", "divdistill.tiny", "evaluate", "--root", next_root, "--n", str(EVAL_N[a.preset]),
                     "--threads", str(a.threads)])
    if a.stage == "students":
        procs = [subprocess.Popen(v, env={**os.environ, "OMP_NUM_THREADS": "1"})
                 for v in student_argvs(next_root, a.names or ["dmd2", "turbo", "lcm"], a.preset).values()]
        return max(pr.wait() for pr in procs)
    print("removed:", *install(root, next_root), sep="\n  ")
    print(f"now recompute its chapter JSON: python scripts/retrain_world.py evaluate --variant {a.variant}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
