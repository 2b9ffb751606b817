"""Diagnostic student runs (distill/attempts.py): a record's recipe changes against the shipped student, its probe
curve and FID-chosen step, replacing by (student, label), clear errors, the CLI, and the students chapter's rows."""
import json
import os

import pytest

from divdistill.chapters.students.attempts import attempt_rows, attempt_summary
from divdistill.distill.__main__ import main as distill_main
from divdistill.distill.attempts import attempt_record, load_attempts, record_attempt, recipe_changes


def _write(folder, config, probes, final, steps, teacher_final=None):
    os.makedirs(folder, exist_ok=True)
    metrics = {"probes": {str(k): {"fid": f, "fid_std": 1.0} for k, f in probes.items()},
               "final_probe": {"fid": final, "fid_std": 1.0}} if probes else {}
    if teacher_final is not None:
        metrics = {"final": {"fid": teacher_final, "fid_std": 1.0, "n": 200}}
    with open(os.path.join(folder, "provenance.json"), "w") as f:
        json.dump({"config": config, "metrics": metrics, "steps": steps, "created": "2026-12-06T00:00:00Z",
                   "git_commit": "abc", "device": "cpu x1", "wall_time_s": 12.0}, f)


@pytest.fixture
def world(tmp_path):
    root = tmp_path / "w"
    base = {"method": "dmd2", "iters": 40, "real_guidance": 4.0, "seed": 0}
    _write(root / "teacher", {}, None, None, 0, teacher_final=30.0)
    _write(root / "students" / "dmd2", base, {10: 60.0, 20: 78.0, 30: 82.0}, 86.0, 40)
    _write(tmp_path / "run" / "students" / "dmd2", {**base, "real_guidance": 2.0}, {10: 50.0, 20: 40.0, 30: 45.0},
           47.0, 40)
    return str(root), str(tmp_path / "run" / "students" / "dmd2")


def test_changes_and_record(world):
    root, run = world
    assert recipe_changes({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 0}) == {"b": [3, 2], "c": [0, None]}
    rec = attempt_record(run, os.path.join(root, "students", "dmd2"), "guidance 2")
    assert rec["changes"] == {"real_guidance": [4.0, 2.0]}
    assert rec["curve"][-1][:2] == (40, 47.0) and rec["chosen_step"] == 20  # the lowest FID probe
    assert rec["student"] == "dmd2" and rec["wall_time_s"] == 12.0


def test_record_replaces_by_label_and_rows(world):
    root, run = world
    assert load_attempts(root) == []
    record_attempt(root, run, "dmd2", "guidance 2")
    record_attempt(root, run, "dmd2", "guidance 2")  # the same label again replaces in place
    rows = record_attempt(root, run, "dmd2", "guidance 2, again")
    assert [r["label"] for r in rows] == ["guidance 2", "guidance 2, again"]
    out = attempt_rows(root)
    assert [r["run"] for r in out] == ["dmd2: real_guidance 4.0 (shipped)", "dmd2: real_guidance 2.0",
                                       "dmd2: real_guidance 2.0"]
    assert out[0]["FID_tiny probes"] == "60.0→78.0→82.0→86.0" and out[0]["lowest ÷ teacher's"] == "2.00"
    assert out[1]["FID_tiny probes"] == "50.0→40.0→45.0→47.0" and out[1]["lowest ÷ teacher's"] == "1.33"
    text = attempt_summary(root)
    assert "lowest probe 40.0 at step 20, 1.33× the teacher's probe; clearly lower than the shipped student's lowest, " \
           "60.0" in text
    assert "It rose from 40.0 half-way to 47.0 at its end" in text  # +7 against a seed spread of 1
    assert out[1]["FID_tiny (table; ÷ teacher's)"] == "–" and "measured as the table" not in text  # no eval row recorded


def test_eval_row_against_the_table(world, tmp_path):
    root, run = world
    with open(os.path.join(root, "students", "eval.json"), "w") as f:
        json.dump([{"model": "teacher", "fid": 10.0, "fid_std": 0.2, "adherence": 0.99, "diversity": 0.17, "n": 1000,
                    "seeds": 3}, {"model": "dmd2", "fid": 40.0, "fid_std": 2.0, "adherence": 0.99, "diversity": 0.14,
                                  "n": 1000, "seeds": 3}], f)
    measured = tmp_path / "run_eval.json"
    measured.write_text(json.dumps([{"model": "dmd2", "fid": 14.0, "fid_std": 1.0, "adherence": 0.99,
                                     "diversity": 0.15, "n": 1000, "seeds": 3, "eval_s": 5.0}]))
    rec = record_attempt(root, run, "dmd2", "guidance 2", str(measured))[0]
    assert rec["eval"] == {"fid": 14.0, "fid_std": 1.0, "adherence": 0.99, "diversity": 0.15, "n": 1000, "seeds": 3}
    shipped, row = attempt_rows(root)
    assert row["FID_tiny (table; ÷ teacher's)"] == "14.0 ± 1.0 (1.40×)"
    assert row["bar"] == "✓ (1.5×)"
    assert shipped["FID_tiny (table; ÷ teacher's)"] == "40.0 ± 2.0 (4.00×)" and shipped["bar"] == "✗ (1.5×)"
    assert "FID_tiny 14.0 ± 1.0, 1.40× the teacher's: meets its 1.5× bar" in attempt_summary(root)
    measured.write_text(json.dumps([{"model": "dmd2", "fid": 16.0, "fid_std": 1.0, "adherence": 0.99,
                                     "diversity": 0.15, "n": 1000, "seeds": 3}]))
    record_attempt(root, run, "dmd2", "guidance 2", str(measured))
    assert "1.60× the teacher's: misses its 1.5× bar" in attempt_summary(root)
    assert "Across" not in attempt_summary(root)  # two points (shipped 4.0, run 2.0): no trend read
    _write(tmp_path / "g1", {"method": "dmd2", "iters": 40, "real_guidance": 1.0, "seed": 0}, {10: 45.0}, 46.0, 40)
    measured.write_text(json.dumps([{"model": "dmd2", "fid": 12.0, "fid_std": 1.0, "adherence": 0.99,
                                     "diversity": 0.15, "n": 1000, "seeds": 3}]))
    record_attempt(root, str(tmp_path / "g1"), "dmd2", "guidance 1", str(measured))
    assert "FID_tiny rises with real_guidance (1: 12.0, 2: 16.0, 4: 40.0)" in attempt_summary(root)
    with pytest.raises(ValueError, match="has no row for 'lcm'"):
        record_attempt(root, run, "lcm", "x", str(measured))
    measured.write_text(json.dumps([{"model": "dmd2", "fid": 16.0}]))
    with pytest.raises(ValueError, match="the eval row lacks"):
        record_attempt(root, run, "dmd2", "x", str(measured))


def test_summary_within_spread_and_stable(world):
    root, run = world
    _write(run, {"method": "dmd2", "iters": 40, "real_guidance": 1.0, "seed": 0}, {10: 61.0, 20: 60.5, 30: 60.2},
           60.0, 40)
    record_attempt(root, run, "dmd2", "guidance 1")
    text = attempt_summary(root)
    assert "within the seed spread of the shipped student's lowest" in text and "stayed stable" in text


def test_summary_without_records(world):
    root, _ = world
    assert attempt_summary(root) == "No diagnostic runs are recorded for this world." and attempt_rows(root) == []


def test_a_pd_run_ends_at_its_provenance_steps(tmp_path):
    """PD counts its length per halving stage (no `iters` in its config): the final probe sits at provenance steps."""
    base = {"method": "pd", "iters_per_stage": 10, "seed": 0}
    _write(tmp_path / "shipped", base, {10: 60.0}, 50.0, 30)
    _write(tmp_path / "run", {**base, "seed": 1}, {10: 55.0, 20: 45.0}, 48.0, 30)
    rec = attempt_record(str(tmp_path / "run"), str(tmp_path / "shipped"), "another seed")
    assert rec["curve"][-1][:2] == (30, 48.0) and rec["chosen_step"] == 20 and rec["changes"] == {"seed": [0, 1]}


def test_clear_errors(world, tmp_path):
    root, run = world
    with pytest.raises(ValueError, match="label must say"):
        attempt_record(run, os.path.join(root, "students", "dmd2"), " ")
    with pytest.raises(FileNotFoundError, match="no provenance.json"):
        attempt_record(str(tmp_path / "nowhere"), os.path.join(root, "students", "dmd2"), "x")
    _write(tmp_path / "lcm", {"method": "lcm", "iters": 40}, {10: 1.0}, 2.0, 40)
    with pytest.raises(ValueError, match="compare a run with the student of its own recipe"):
        attempt_record(str(tmp_path / "lcm"), os.path.join(root, "students", "dmd2"), "x")
    _write(tmp_path / "noprobe", {"method": "dmd2", "iters": 40}, None, None, 40)
    with pytest.raises(ValueError, match="--probe-n"):
        attempt_record(str(tmp_path / "noprobe"), os.path.join(root, "students", "dmd2"), "x")


def test_cli_records(world, capsys):
    root, run = world
    assert distill_main(["record-attempt", "dmd2", "--student", run, "--label", "guidance 2", "--root", root]) == 0
    assert "changed ['real_guidance']" in capsys.readouterr().out
    assert len(load_attempts(root)) == 1
    assert distill_main(["record-attempt", "nope", "--student", run, "--label", "x", "--root", root]) != 0
    assert "unknown recipe 'nope'" in capsys.readouterr().err
