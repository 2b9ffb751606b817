"""The DDIL chapter's teacher + students table (chapters/ddil/measure.py): each row's assembly, with the costly
per-seed evaluation stubbed (the metrics themselves are tested with tiny/quality.py)."""
import pytest

from divdistill.chapters.ddil import measure


def test_rows_carry_mean_std_nfe_and_the_run_sizes(tiny_world, monkeypatch):
    calls = []

    def fake_eval(world, plan, ev, n, seed):
        calls.append((plan.name, n, seed))
        return {c: float(seed) for c in measure.COLUMNS}  # seeds 0 and 1: mean 0.5, std 0.707
    monkeypatch.setattr(measure, "evaluate_plan", fake_eval)
    rows = measure.evaluate_students(tiny_world, ["dmd2"], n=8, seeds=(0, 1), write=False, progress=None)
    assert [r["model"] for r in rows] == ["teacher", "dmd2"]
    assert [(r["steps"], r["nfe"]) for r in rows] == [(50, 100), (4, 4)]  # 50 CFG steps; 4 guidance-free steps
    for r in rows:
        assert r["n"] == 8 and r["seeds"] == 2
        assert r["fid"] == pytest.approx(0.5) and r["fid_std"] == pytest.approx(2 ** -0.5)
    assert len(calls) == 4 and {c[1] for c in calls} == {8}
    assert "teacher" in measure.format_table(rows) and "dmd2" in measure.format_table(rows)


def test_a_retrained_student_is_merged_in_place(tiny_world, monkeypatch):
    """--merge: only the named student is measured (no teacher row) and its row replaces the old one in place."""
    monkeypatch.setattr(measure, "evaluate_plan", lambda world, plan, ev, n, seed: {c: 7.0 for c in measure.COLUMNS})
    new = measure.evaluate_students(tiny_world, ["dmd2"], n=8, seeds=(0, 1), write=False, progress=None,
                                    teacher=False)
    assert [r["model"] for r in new] == ["dmd2"]
    old = [{"model": m, "n": 8, "seeds": 2, "fid": 1.0} for m in ("teacher", "dmd2", "lcm")]
    rows = measure.merge_rows(old, new, n=8, seeds=2)
    assert [r["model"] for r in rows] == ["teacher", "dmd2", "lcm"] and rows[1]["fid"] == 7.0 and rows[2]["fid"] == 1.0
    with pytest.raises(ValueError, match="another n or seed count"):
        measure.merge_rows(old, new, n=1000, seeds=3)
