"""The world-retraining driver (scripts/retrain_world.py) and the plateau table: argument handling, the jobs it
launches, and the plateau rule on constructed provenance."""
import importlib.util
import json
import os
import sys

import pytest

from divdistill.chapters.students.report import plateau_rows
from divdistill.distill.recipes import RECIPES

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


@pytest.fixture(scope="module")
def rw():
    spec = importlib.util.spec_from_file_location("retrain_world", os.path.join(ROOT, "scripts", "retrain_world.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
