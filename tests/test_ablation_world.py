"""The ablation-world driver (scripts/ablation_world.py): its teacher stages are the default teacher's committed
lineage, stages chain and resume, the students take the default world's lengths, and install swaps the world."""
import json
import os
import sys

import pytest
from conftest import load_script

from divdistill.tiny.loader import DEFAULT_VARIANT, variant_dir


@pytest.fixture(scope="module")
def aw():
    return load_script("ablation_world")


def _opts(args: str) -> dict:
    a = args.split()
    return {a[i].lstrip("-").replace("-", "_"): a[i + 1] for i in range(0, len(a), 2)}


def test_teacher_stages_are_the_default_teachers_lineage(aw):
    """Stages 1-2 are recorded attempts of the default world's teacher, stage 3 its committed teacher; every stage
    uses the derived offset noise from step 0, as the default teacher did."""
    from divdistill.tiny.spectrum import derive_offset

    root = variant_dir(DEFAULT_VARIANT)
    with open(os.path.join(root, "teacher_attempts.json")) as f:
        attempts = [a["recipe"] for a in json.load(f)]
    with open(os.path.join(root, "teacher", "provenance.json")) as f:
        committed = json.load(f)["config"]
    keys = ("steps", "batch", "seed", "decay_steps")
    stages = [{**_opts(aw.COMMON), **_opts(s)} for s in aw.STAGES["cpu"]]
    for k, st in enumerate(stages):
        want = {key: int(st[key]) for key in keys}
        rows = attempts if k < len(stages) - 1 else [committed]
        assert any({key: r.get(key) for key in keys} == want and r["offset_noise_start"] == 0
                   and (r.get("init_from") is None) == (k == 0) for r in rows), st
        assert st["offset_noise"] == "derived"
    assert committed["offset_noise"] == pytest.approx(derive_offset(s=committed["snr_factor"])["offset_noise"])
    assert float(stages[-1]["ema"]) == committed["ema"]


def test_stages_chain_and_skip_what_is_done(aw, tmp_path):
    nxt = str(tmp_path / "next")
    first = aw.teacher_argvs("sd-schedule", nxt, "cpu", 2)
    assert [out for out, _ in first] == aw.stage_dirs(nxt, "cpu") and "--init-from" not in first[0][1]
    os.makedirs(first[0][0])
    open(os.path.join(first[0][0], "provenance.json"), "w").write("{}")
    rest = aw.teacher_argvs("sd-schedule", nxt, "cpu", 2)
    assert [out for out, _ in rest] == aw.stage_dirs(nxt, "cpu")[1:]
    argv = rest[0][1]
    assert argv[argv.index("--init-from") + 1] == first[0][0] and argv[argv.index("--variant") + 1] == "sd-schedule"
    assert rest[-1][0] == os.path.join(nxt, "teacher")


def test_students_take_the_default_worlds_lengths(aw):
    jobs = aw.student_argvs("next", ["dmd2", "lcm"], "cpu")
    for r, argv in jobs.items():
        with open(os.path.join(variant_dir(DEFAULT_VARIANT), "students", r, "provenance.json")) as f:
            c = json.load(f)["config"]
        assert argv[argv.index("--set") + 1:] == [f"iters={c['iters']}", f"batch={c['batch']}"]
        assert argv[argv.index("--root") + 1] == "next" and argv[4] == r
    with pytest.raises(SystemExit, match="no committed .* student 'nope'"):
        aw.default_lengths(["nope"])


def test_install_swaps_teacher_and_students_and_drops_stale_json(aw, tmp_path):
    root = tmp_path / "w"
    for d in ("teacher", "students/dmd2", "students/pd", "next/teacher", "next/students/dmd2",
              "next/students/turbo_unfinished"):
        (root / d).mkdir(parents=True)
    for d, tag in (("teacher", "old"), ("students/dmd2", "old"), ("next/teacher", "new"),
                   ("next/students/dmd2", "new")):
        (root / d / "provenance.json").write_text(tag)
    (root / "next" / "stages" / "stage1").mkdir(parents=True)
    (root / "next" / "stages" / "stage1" / "provenance.json").write_text(json.dumps({"config": {"init_from": None}}))
    (root / "next" / "teacher" / "provenance.json").write_text(json.dumps(
        {"config": {"init_from": str(root / "next" / "stages" / "stage1"), "seed": 3}}))
    (root / "next" / "students" / "dmd2" / "provenance.json").write_text(json.dumps(
        {"config": {"root": str(root / "next")}, "metrics": {"probes": [{"step": 1}]}}))
    (root / "hybrid_eval.json").write_text("{}")
    (root / "students" / "eval.json").write_text("{}")
    removed = aw.install(str(root), str(root / "next"))
    assert sorted(removed) == sorted(["hybrid_eval.json", os.path.join("students", "eval.json"),
                                      os.path.join("students", "dmd2"), os.path.join("students", "pd")])
    teacher = json.loads((root / "teacher" / "provenance.json").read_text())
    assert teacher["config"] == {"init_from": str(root / "teacher_stages" / "stage1"), "seed": 3}  # where it now is
    student = json.loads((root / "students" / "dmd2" / "provenance.json").read_text())
    assert student["config"]["root"] == str(root) and student["metrics"] == {"probes": [{"step": 1}]}
    assert student["relocated"][-1] == [str(root / "next"), str(root)]
    assert json.loads((root / "teacher_stages" / "stage1" / "provenance.json").read_text())["config"] == {
        "init_from": None}
    assert sorted(os.listdir(root / "students")) == ["dmd2"] and not (root / "next").exists()
    with pytest.raises(SystemExit, match="not finished"):
        aw.install(str(root), str(root / "next"))


def test_the_default_world_is_refused(aw):
    with pytest.raises(SystemExit, match="is the default world"):
        aw.main(["teacher", "--variant", DEFAULT_VARIANT])


@pytest.mark.slow
def test_micro_teacher_stages_run_and_keep_only_the_last_weights(aw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("data/tiny")
    assert aw.main(["teacher", "--preset", "micro", "--threads", "1"]) == 0
    nxt = os.path.join("data", "tiny", "sd-schedule", "next")
    dirs = aw.stage_dirs(nxt, "micro")
    assert all(aw.done(d) for d in dirs) and os.path.isdir(os.path.join(dirs[-1], "unet"))
    assert not any(os.path.isdir(os.path.join(d, "unet")) for d in dirs[:-1])
    assert sys.executable == aw.PY
