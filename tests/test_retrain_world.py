"""The world-retraining driver (scripts/retrain_world.py) and the plateau table: argument handling, the jobs it
launches, and the plateau rule on constructed provenance."""
import json
import os
import sys

import pytest
from conftest import load_script

from divdistill.chapters.students.report import plateau_rows
from divdistill.distill.recipes import RECIPES


@pytest.fixture(scope="module")
def rw():
    return load_script("retrain_world")


def test_every_recipe_has_a_length_in_every_preset(rw):
    for preset, sets in rw.STUDENT_SETS.items():
        assert set(sets) == set(RECIPES), preset


def test_student_jobs_are_cli_calls_with_overrides(rw):
    jobs = rw.student_jobs("snr-matched", "gpu", ["dmd2", "pd"])
    assert list(jobs) == ["snr-matched-dmd2", "snr-matched-pd"]
    dmd2 = jobs["snr-matched-dmd2"]
    assert dmd2[:5] == [sys.executable, "-m", "divdistill.distill", "train", "dmd2"]
    assert dmd2[dmd2.index("--set") + 1:] == rw.STUDENT_SETS["gpu"]["dmd2"].split()
    assert "iters_per_stage=450" in jobs["snr-matched-pd"]


def test_teacher_job_uses_the_schedule_module_factor(rw):
    from divdistill.tiny.schedule import SNR_FACTOR

    (argv,) = rw.teacher_jobs("snr-matched", "gpu").values()
    assert float(argv[argv.index("--snr-factor") + 1]) == SNR_FACTOR
    (argv,) = rw.teacher_jobs("sd-schedule", "gpu").values()
    assert float(argv[argv.index("--snr-factor") + 1]) == 1.0


def test_evaluation_jobs_cover_every_chapter_json(rw):
    jobs = rw.eval_jobs("snr-matched", "micro")
    assert [k.split("-", 2)[-1] for k in jobs] == list(rw.EVAL_JOBS)


def test_an_evaluation_without_the_students_it_needs_is_skipped_or_refused(rw, tmp_path, monkeypatch, capsys):
    """The covariate study distills PD: on a world without pd it is skipped (all evaluations) or refused (named)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "tiny" / "w" / "students" / "dmd2").mkdir(parents=True)
    jobs = rw.wanted_eval_jobs("w", "micro", [])
    assert "w-covariate" not in jobs and "w-eval" in jobs and "skip w-covariate: covariate needs" in capsys.readouterr().out
    assert list(rw.wanted_eval_jobs("w", "micro", ["eval"])) == ["w-eval"]
    with pytest.raises(SystemExit, match=r"covariate needs the student\(s\) \['pd'\], which w does not have"):
        rw.wanted_eval_jobs("w", "micro", ["covariate"])
    (tmp_path / "data" / "tiny" / "w" / "students" / "pd").mkdir()
    assert "w-covariate" in rw.wanted_eval_jobs("w", "micro", [])


def test_unknown_names_get_clear_errors(rw):
    with pytest.raises(SystemExit, match="unknown recipe 'nope'; valid: .*dmd2"):
        rw.main(["students", "nope"])
    with pytest.raises(SystemExit, match="unknown evaluation 'nope'; valid: .*controls"):
        rw.main(["evaluate", "nope"])
    with pytest.raises(SystemExit, match="preset 'bench' has no evaluate sizes; valid: \\['gpu', 'micro'\\]"):
        rw.main(["evaluate", "--preset", "bench"])


def test_launch_reports_failures_and_keeps_going(rw, tmp_path):
    res = rw.launch({"ok": [sys.executable, "-c", "print('hi')"], "bad": [sys.executable, "-c", "raise SystemExit(3)"]},
                    str(tmp_path), timeout=60)
    assert res["ok"][0] == 0 and res["bad"][0] == 3
    assert open(tmp_path / "ok.log").read().strip() == "hi"


def _student(root, name, half, final, steps=100):
    d = os.path.join(root, "students", name)
    os.makedirs(d)
    rec = {"steps": steps, "wall_time_s": 1.0, "device": "cpu", "config": {"batch": 8},
           "metrics": {"probes": {str(steps // 2): half}, "final_probe": final}}
    json.dump(rec, open(os.path.join(d, "provenance.json"), "w"))


def test_plateau_rule_on_constructed_probes(tmp_path):
    flat = {"fid": 50.0, "fid_std": 2.0, "diversity": 0.2, "diversity_std": 0.01}
    _student(str(tmp_path), "a", flat, {**flat, "fid": 51.0, "diversity": 0.205})  # both inside the seed spread
    _student(str(tmp_path), "b", flat, {**flat, "fid": 60.0})  # FID moved by 5 spreads
    _student(str(tmp_path), "c", flat, {**flat, "diversity": 0.1})  # diversity moved
    os.makedirs(tmp_path / "students" / "no_probe")
    rows = {r["student"]: r for r in plateau_rows({"v": str(tmp_path)})}
    assert set(rows) == {"a", "b", "c"}
    assert [rows[s]["plateau (|Δ| < seed std)"] for s in "abc"] == [True, False, False]
    assert rows["a"]["FID half-way"] == "50.0 ± 2.0" and rows["a"]["variant"] == "v"


def test_session_iters_fit_the_window_with_margin_and_cap(rw):
    # 0.5 s per step, 1 step per iteration, 100 s: 75% of the window fits 150 iterations
    assert rw.session_iters("lcm", 0.5, 1.0, 100.0) == 150
    # PD: 3 steps per iteration (one per stage) → a third as many iters_per_stage
    assert rw.session_iters("pd", 0.5, 3.0, 100.0) == 50
    # a fast GPU is capped at SESSION_CAP × the gpu preset's length; a slow one still trains a few iterations
    assert rw.session_iters("dmd2", 1e-4, 1.0, 600.0) == int(rw.SESSION_CAP * 500)
    assert rw.session_iters("dmd2", 100.0, 1.0, 10.0) == 8


def test_session_presets_name_every_phase(rw):
    for preset, s in rw.SESSION.items():
        for key in ("bench", "teacher", "teacher_probes", "pack", "probes", "timing_steps", "probe_n", "eval_n",
                    "teacher_args", "batch", "timing_iters"):
            assert key in s, (preset, key)
        assert set(s["batch"]) <= set(RECIPES), preset


def test_pack_splits_the_world_into_parts_and_writes_the_record(rw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    teacher = tmp_path / "data" / "tiny" / "v" / "teacher"
    done, running = (tmp_path / "data" / "tiny" / "v" / "students" / n for n in ("a", "b"))
    for d in (teacher, done, running, tmp_path / "data" / "tiny" / "evaluator", tmp_path / "work" / "logs"):
        d.mkdir(parents=True)
    (teacher / "w.bin").write_bytes(os.urandom(3000))
    (done / "provenance.json").write_text("{}")
    (done / "train_state.pt").write_bytes(b"x" * 100)  # a finished run's state stays behind
    (running / "train_state.pt").write_bytes(b"y" * 100)  # an unfinished one's comes back, to resume
    (tmp_path / "data" / "tiny" / "evaluator" / "provenance.json").write_text("{}")
    (tmp_path / "work" / "logs" / "x.log").write_text("log")
    rw.pack("v", str(tmp_path / "out"), str(tmp_path / "work"), {"phases": {}}, part_mb=0.002)
    out = sorted(os.listdir(tmp_path / "out"))
    parts = [f for f in out if f.startswith("world.tar.gz.part")]
    assert {"session.json", "logs.tar.gz"} <= set(out) and len(parts) >= 2
    import io
    import tarfile
    data = b"".join((tmp_path / "out" / f"world.tar.gz.part{i}").read_bytes() for i in range(len(parts)))
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert "data/tiny/v/students/b/train_state.pt" in names and "data/tiny/v/students/a/provenance.json" in names
    assert "data/tiny/v/students/a/train_state.pt" not in names and "data/tiny/v/teacher/w.bin" in names
