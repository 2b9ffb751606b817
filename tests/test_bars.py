"""Issue 19's bars on constructed probes: teacher acceptance, quality ratio, stability, choice by FID alone."""
import pytest

from divdistill.distill.bars import (best_checkpoint, meets_quality_bar, probe_curve, stable, student_ratio,
                                     teacher_acceptance)


def test_teacher_acceptance_pass_and_fail():
    good = teacher_acceptance(40.0, 0.96, {"shape": 0.95, "background": 0.99}, 0.19, 0.187)
    assert good["all"] and good["factor:background"]
    bad = teacher_acceptance(125.1, 0.81, {"shape": 0.95, "background": 0.41}, 0.209, 0.187)
    assert not bad["all"] and not bad["fid"] and not bad["factor:background"] and not bad["diversity_ratio"]
    with pytest.raises(ValueError, match="data_diversity"):
        teacher_acceptance(40.0, 0.96, {}, 0.19, 0.0)


def test_student_quality_bar():
    assert student_ratio("dmd2") == 1.5 and student_ratio("lcm") == 2.0
    assert meets_quality_bar("dmd2", 15.52, 12.74)  # the paper's own pair
    assert not meets_quality_bar("dmd2", 216.0, 125.1)  # issue 19's collapsed student
    assert meets_quality_bar("pd", 240.0, 125.1) and not meets_quality_bar("pd", 260.0, 125.1)


def test_stability_rule():
    half = {"fid": 133.0, "fid_std": 8.0}
    assert stable(half, {"fid": 140.0, "fid_std": 6.0})  # rose by less than the spread
    assert stable(half, {"fid": 90.0, "fid_std": 6.0})  # fell
    assert not stable(half, {"fid": 216.0, "fid_std": 10.0})  # issue 19's DMD2: 133 → 216


def test_checkpoint_choice_by_fid_alone():
    m = {"probes": {"100": {"fid": 90.0, "fid_std": 3.0, "diversity": 0.3},
                                  "200": {"fid": 60.0, "fid_std": 3.0, "diversity": 0.1},
                                  "300": {"fid": 70.0, "fid_std": 3.0, "diversity": 0.2}},
         "final_probe": {"fid": 65.0, "fid_std": 2.0, "diversity": 0.25}}
    curve = probe_curve(m, 400)
    assert [p[0] for p in curve] == [100, 200, 300, 400]
    assert best_checkpoint(curve) == 200  # the lowest FID, though its diversity is the lowest
    with pytest.raises(ValueError, match="no probes"):
        best_checkpoint([])


def test_students_chapter_bar_rows_and_curves_from_provenance(tmp_path):
    import json
    import os

    from divdistill.chapters.students.report import quality_rows, training_curves

    def student(name, probes, final, steps):
        d = tmp_path / "students" / name
        os.makedirs(d)
        rec = {"steps": steps, "metrics": {"probes": probes, "final_probe": final}}
        (d / "provenance.json").write_text(json.dumps(rec))

    p = lambda f: {"fid": f, "fid_std": 2.0}  # noqa: E731
    student("dmd2", {"100": p(80.0), "200": p(60.0), "300": p(61.0)}, p(90.0), 400)  # rose: unstable
    student("lcm", {"50": p(70.0), "100": p(65.0), "150": p(64.0)}, p(64.5), 200)
    ev = [{"model": "teacher", "fid": 40.0}, {"model": "dmd2", "fid": 70.0}, {"model": "lcm", "fid": 79.0}]
    rows = {r["student"]: r for r in quality_rows(ev, {"v": str(tmp_path)}, "v")}
    assert rows["dmd2"]["meets bar"] is False and rows["dmd2"]["stable (half → final)"] is False  # 70 > 1.5 × 40
    assert rows["dmd2"]["best probed step (FID)"] == 200
    assert rows["lcm"]["meets bar"] is True and rows["lcm"]["stable (half → final)"] is True  # 79 ≤ 2 × 40
    curves = training_curves({"v": str(tmp_path)})["v"]
    assert [pt[0] for pt in curves["dmd2"]] == [100, 200, 300, 400] and len(curves["lcm"]) == 4


def test_stability_reasons_name_the_rise_and_the_kept_probe(tmp_path):
    """A run over the stability rule gets a sentence with its half-way and last FID and the seed spread, and the kept
    probe when it is not the last; stable runs get none."""
    import json
    import os

    from divdistill.chapters.students.report import quality_rows, stability_reasons

    def student(name, probes, final, steps, **m):
        d = tmp_path / "students" / name
        os.makedirs(d)
        (d / "provenance.json").write_text(json.dumps({"steps": steps, "metrics": {
            "probes": probes, "final_probe": final, **m}}))

    p = lambda f, sd=2.0: {"fid": f, "fid_std": sd}  # noqa: E731
    student("turbo", {"100": p(50.0), "200": p(55.0, 3.0)}, p(70.0, 4.0), 400, chosen_step=100)  # +15 > 4
    student("pd", {"100": p(50.0), "200": p(55.0)}, p(60.0, 5.5), 400)  # +5 ≤ 5.5: stable
    student("lcm", {"100": p(50.0), "200": p(40.0)}, p(49.0), 400)  # +9 > 2, kept the last
    ev = [{"model": m, "fid": 40.0} for m in ("teacher", "turbo", "pd", "lcm")]
    got = stability_reasons(quality_rows(ev, {"v": str(tmp_path)}, "v"), str(tmp_path))
    assert len(got) == 2 and got[1].startswith("lcm's run is not stable") and "shipped" not in got[1]
    assert got[0].startswith("turbo's") and "rose from 55.0 at the half-way probe to 70.0 at the last, step 400" in got[0]
    assert "seed spread (4.0)" in got[0] and "lowest-FID probe, step 100" in got[0]


def test_teacher_attempts_are_recorded_from_provenance_and_judged(tmp_path):
    """record-attempt keeps one row per label, taken from the run's provenance; the chapter's table judges each."""
    import json

    from divdistill.chapters.tiny_world.report import attempt_rows
    from divdistill.tiny.quality import ATTEMPT_METRICS, record_attempt
    from divdistill.tiny.schedule import save_schedule, scheduler_config

    def run(name, fid, bg, **config):
        d = tmp_path / name
        d.mkdir()
        metrics = {k: 0.97 for k in ATTEMPT_METRICS}
        metrics.update(n_samples=1000, fid_tiny_teacher_vs_data=fid, adherence_bg=bg, diversity_teacher_mean=0.19,
                       diversity_data_mean=0.187)
        (d / "provenance.json").write_text(json.dumps({
            "created": "now", "git_commit": "abc", "device": "cpu x1", "wall_time_s": 10.0, "metrics": metrics,
            "config": {"steps": 6500, "lr": 1e-3, "offset_noise": 0.61, "offset_noise_start": 0, "snr_factor": 11.4,
                       **config}}))
        save_schedule(str(d), scheduler_config(11.4, "marginal" if name == "c" else "unit"))
        return str(d)

    record_attempt(str(tmp_path), run("a", 70.0, 0.47), "first")
    record_attempt(str(tmp_path), run("b", 30.0, 0.99), "second")
    rows = record_attempt(str(tmp_path), run("c", 31.0, 0.99), "second")  # the same label replaces its row
    assert [r["label"] for r in rows] == ["first", "second"] and rows[1]["metrics"]["fid_tiny_teacher_vs_data"] == 31.0
    table = attempt_rows(str(tmp_path))
    assert table[0]["passes"] == "no: fid, bg" and table[1]["passes"] == "yes"
    assert "constant lr" in table[0]["recipe"] and "from step 0" in table[0]["recipe"]
    assert [r["recipe"]["prior"] for r in rows] == ["unit", "marginal"]  # read from each run's own schedule
    assert "marginal prior" in table[1]["recipe"] and "prior" not in table[0]["recipe"]
    assert not table[0]["recipe"].startswith("continues")
    record_attempt(str(tmp_path), run("e", 40.0, 1.0, init_from="data/t", seed=1, decay_steps=1000), "longer")
    assert attempt_rows(str(tmp_path))[2]["recipe"].startswith("continues data/t (seed 1): 6,500 steps")
    grainy = run("f", 30.0, 0.99)  # the same run measured again, now with its grain: replaced in place, judged on it
    prov = json.loads((tmp_path / "f" / "provenance.json").read_text())
    prov["metrics"].update(teacher_grain_p90=10.8, teacher_grain_median=4.5, teacher_grain_visible_frac=0.7)
    (tmp_path / "f" / "provenance.json").write_text(json.dumps(prov))
    rows = record_attempt(str(tmp_path), grainy, "second")
    assert [r["label"] for r in rows] == ["first", "second", "longer"]
    assert rows[1]["metrics"]["teacher_grain_p90"] == 10.8 and "teacher_grain_p90" not in rows[0]["metrics"]
    table = attempt_rows(str(tmp_path))
    assert table[1]["passes"] == "no: grain" and table[1]["grain p90"] == 10.8 and table[0]["grain p90"] is None
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "provenance.json").write_text(json.dumps({"metrics": {}, "config": {}}))
    with pytest.raises(ValueError, match="not evaluated yet"):
        record_attempt(str(tmp_path), str(tmp_path / "d"), "third")


def test_teacher_table_and_acceptance_rows_from_provenance():
    """The chapter's teachers table names a continued run's start and its added steps; acceptance skips an unevaluated
    teacher and judges every adherence factor of an evaluated one."""
    from divdistill.chapters.tiny_world.report import acceptance_rows, teacher_rows

    good = {"n_samples": 1000, "fid_tiny_teacher_vs_data": 40.0, "adherence": 0.96, "adherence_bg": 0.99,
            "adherence_shape": 0.85, "diversity_teacher_mean": 0.19, "diversity_data_mean": 0.187}
    prov = {"a": {"steps": 6500, "wall_time_s": 1.0, "config": {}, "metrics": {"final": {"fid": 90.0}}},
            "b": {"steps": 5000, "wall_time_s": 2.0, "config": {"init_from": "data/tiny/b/teacher/"}, "metrics": good},
            "c": {"steps": 100, "wall_time_s": 3.0, "config": {"init_from": "data/tiny/a/teacher"}, "metrics": {}},
            "d": {"steps": 668, "wall_time_s": 4.0, "config": {"init_from": "data/tiny/d/teacher_stages/stage2"},
                  "metrics": {}}}
    rows = {r["variant"]: r for r in teacher_rows(prov)}
    assert rows["a"]["train steps"] == 6500 and rows["a"]["init from"] == "scratch"
    assert rows["a"]["FID_tiny vs data"] == 90.0  # the training probe's, before an evaluation
    assert rows["b"]["train steps"] == "+5,000" and rows["b"]["init from"] == "its previous version (git history)"
    assert rows["c"]["init from"] == "data/tiny/a/teacher"
    assert rows["d"]["init from"] == "its stage 2 (teacher_stages/stage2/provenance.json)"
    acc = acceptance_rows(prov)
    assert [r["variant"] for r in acc] == ["b"] and acc[0]["n"] == 1000
    assert acc[0]["factor:bg"] and not acc[0]["factor:shape"] and not acc[0]["all"]


def test_a_chapter_on_a_teacher_below_its_bar_marks_every_verdict_provisional(tmp_path):
    """Chapter.summarize puts the teacher's failed checks first in every note; a passing teacher adds nothing."""
    import json
    from types import SimpleNamespace

    from divdistill.book import claims
    from divdistill.book.chapter import Chapter

    (tmp_path / "w" / "teacher").mkdir(parents=True)
    metrics = {"fid_tiny_teacher_vs_data": 41.8, "adherence": 0.939, "adherence_size": 0.86, "adherence_bg": 1.0,
               "diversity_teacher_mean": 0.199, "diversity_data_mean": 0.187, "teacher_grain_p90": 10.8}
    prov = tmp_path / "w" / "teacher" / "provenance.json"
    ch = Chapter("x", "tiny", SimpleNamespace(extras={"root": str(tmp_path / "w")}), summary_dir=str(tmp_path / "s"))
    e = claims.entry("C4", "paper", "ours", True, "tiny", 10, note="n per seed")
    for m, want in ((metrics, "provisional: this world's teacher fails its acceptance bar on adherence, size, grain; "
                                "n per seed"),
                    ({**metrics, "adherence": 0.96, "adherence_size": 0.95, "teacher_grain_p90": 1.5}, "n per seed"),
                    ({}, "provisional: this world's teacher has not been evaluated against its acceptance bar; "
                         "n per seed")):
        prov.write_text(json.dumps({"metrics": m}))
        out = json.loads(open(ch.summarize([e])).read())
        assert out[0]["note"] == want and out[0]["holds"] is True
    for name, ddil in (("dmd2", {"priors": [0.0, 0.0, 1.0], "late_priors": None}),  # backward simulation: rollouts
                       ("lcm", {"enabled": False, "priors": [1.0, 0.0, 0.0]})):  # forward-diffused data only
        (tmp_path / "w" / "students" / name).mkdir(parents=True)
        (tmp_path / "w" / "students" / name / "provenance.json").write_text(json.dumps({"config": {"ddil": ddil}}))
    prov.write_text(json.dumps({"metrics": {**metrics, "adherence": 0.96, "adherence_size": 0.95,
                                            "teacher_grain_p90": 1.5}}))
    for schedule, want in (({"prior": "marginal"}, "provisional: its student dmd2 was distilled on rollouts from "
                                                   "another sampling prior than the world's; n per seed"),
                           ({}, "n per seed")):  # trained from N(0, I), sampled from N(0, I): nothing to say
        ch.world.extras["schedule"] = schedule
        assert json.loads(open(ch.summarize([e])).read())[0]["note"] == want
    (tmp_path / "w" / "students" / "dmd2" / "provenance.json").write_text(json.dumps(
        {"config": {"ddil": {"priors": [0.0, 0.0, 1.0]}, "prior": "marginal"}}))
    for schedule, want in (({"prior": "marginal-sdxl-spread"}, "n per seed"),  # the same draws, narrowed: covered
                           ({}, "provisional: its student dmd2 was distilled on rollouts from another sampling prior "
                                "than the world's; n per seed")):
        ch.world.extras["schedule"] = schedule
        assert json.loads(open(ch.summarize([e])).read())[0]["note"] == want
    (tmp_path / "w" / "students" / "dmd2" / "provenance.json").write_text(json.dumps(
        {"config": {"ddil": {"priors": [0.0, 0.0, 1.0]}}}))
    leak = {"rows": [{"fails": ["adherence", "size"]}, {"fails": []}]}  # teacher_leak.json: prior, q(x_T | c)
    (tmp_path / "w" / "teacher_leak.json").write_text(json.dumps(leak))
    prov.write_text(json.dumps({"metrics": {**metrics, "adherence_size": 0.85, "teacher_grain_p90": 1.5}}))
    ch.world.extras["schedule"] = {}
    assert json.loads(open(ch.summarize([e])).read())[0]["note"] == (
        "provisional: this world's teacher fails its acceptance bar on adherence, size (only from its start, the signal "
        "leak at t = 999 that SDXL shares: from the prompt's Gaussian q(x_T | c) it passes, teacher_leak.json); "
        "n per seed")
    prov.write_text(json.dumps({"metrics": metrics}))  # grain fails too, and not from the start: no such remark
    assert "only from its start" not in json.loads(open(ch.summarize([e])).read())[0]["note"]
    (tmp_path / "w" / "teacher_leak.json").unlink()
    prov.write_text(json.dumps({"metrics": {**metrics, "adherence": 0.96, "adherence_size": 0.95,
                                            "teacher_grain_p90": 1.5}}))
    (tmp_path / "w" / "students" / "eval.json").write_text(json.dumps([
        {"model": "teacher", "fid": 40.0}, {"model": "dmd2", "fid": 61.0}, {"model": "lcm", "fid": 79.0}]))
    ch.world.extras["schedule"] = {}  # dmd2 over 1.5 × 40, lcm under 2 × 40
    assert json.loads(open(ch.summarize([e])).read())[0]["note"] == \
        "provisional: its student dmd2 misses its FID_tiny bar; n per seed"


def test_below_bar_reads_each_students_method_bar():
    from divdistill.distill.bars import below_bar, method_of

    assert [method_of(n) for n in ("dmd2_ddil", "lcm_ddil_reflected", "pd", "turbo")] == ["dmd2", "lcm", "pd", "turbo"]
    rows = [{"model": "teacher", "fid": 38.1}, {"model": "dmd2_ddil", "fid": 57.2}, {"model": "turbo", "fid": 81.8},
            {"model": "pd_ddil", "fid": 70.5}]
    assert below_bar(rows) == ["dmd2_ddil", "turbo"] and below_bar(rows[1:]) == []


def test_the_committed_attempt_is_its_weights_on_its_worlds_prior():
    from divdistill.chapters.tiny_world.report import committed_attempt

    rows = [{"run": "r4", "created": "a", "prior": "unit"}, {"run": "r5", "created": "b", "prior": "unit"},
            {"run": "r5 marginal", "created": "b", "prior": "marginal"}]
    assert committed_attempt(rows, "b", "unit")["run"] == "r5"
    assert committed_attempt(rows, "b", "marginal")["run"] == "r5 marginal"
    assert committed_attempt(rows, "c", "unit") is None


def test_factor_trend_reads_the_runs_whose_background_passes():
    from divdistill.chapters.tiny_world.report import factor_trend

    def row(run, fid, bg, shape, size):
        return {"run": run, "FID_tiny": fid, "background": bg, "shape": shape, "size": size}

    rows = [row("shared", 70.0, 0.47, 0.90, 0.94), row("offset", 53.0, 1.0, 0.85, 0.83),
            row("longer", 41.0, 1.0, 0.96, 0.81), row("decayed", 37.0, 1.0, 0.93, 0.86)]
    text = factor_trend(rows)
    assert text.startswith("Across the 3 recorded runs whose background passes, from the first (“offset”)")
    assert "FID_tiny went 53.0 → 37.0, shape adherence 0.850 → 0.930 (highest 0.960)" in text
    assert "size 0.830 → 0.860; size stayed between 0.810 and 0.860 in every run, against its bar of 0.90." in text
    assert factor_trend(rows[:2]) == ""  # one passing run: nothing to compare


def test_newest_run_against_the_committed_teacher():
    from divdistill.chapters.tiny_world.report import newest_against_committed

    def row(run, created, fid, size, passes="no: size"):
        return {"run": run, "created": created, "FID_tiny": fid, "adherence": 0.94, "shape": 0.93, "size": size,
                "grain p90": 2.4, "passes": passes}

    best, worse, better = row("r5", "b", 37.9, 0.85), row("r6", "c", 38.7, 0.81), row("r7", "d", 30.0, 0.95, "yes")
    text = newest_against_committed([best, worse], best)
    assert "“r6”" in text and "FID_tiny +0.8" in text and "size -0.040" in text and "fails on size" in text
    assert "has the lower FID_tiny of the two and stays" in text
    assert "should replace the committed teacher" in newest_against_committed([best, worse, better], best)
    assert "it passes" in newest_against_committed([best, better], best)
    assert newest_against_committed([best], best) == "" and newest_against_committed([worse], None) == ""
    assert newest_against_committed([row("r4", "a", 40.0, 0.8), best], best) == ""  # older runs say nothing
    # the committed weights recorded under two priors: the newest run is compared with them from its own prior
    spread, marginal = {**best, "prior": "spread", "FID_tiny": 36.0}, {**best, "run": "r5 marginal", "prior": "marginal"}
    text = newest_against_committed([marginal, {**worse, "prior": "marginal"}, spread], spread)
    assert "from the same prior (“r5 marginal”)" in text and "FID_tiny +0.8" in text


def test_bar_reasons_read_where_along_the_run_fid_was_lowest():
    """A student over its bar gets a reason from its probe curve: lowest at the first probe (degrades), at the last
    (still improving) or between; a student within its bar gets none."""
    from divdistill.chapters.students.report import bar_reasons

    def row(s, ok, fid=40.0):
        return {"student": s, "meets bar": ok, "FID_tiny": fid, "÷ teacher's": fid / 10, "bar": "≤ 1.5×"}

    curves = {"a": [(73, 59.8, 9.0), (146, 78.2, 9.0), (293, 86.3, 9.0)], "b": [(10, 50.0, 1.0), (20, 45.0, 1.0)],
              "c": [(10, 50.0, 1.0), (20, 30.0, 1.0), (30, 40.0, 1.0)], "ok": [(1, 1.0, 0.0), (2, 2.0, 0.0)]}
    got = bar_reasons([row("a", False), row("b", False), row("c", False), row("ok", True), row("d", False)], curves)
    assert len(got) == 4 and got[0].startswith("a misses its bar: FID_tiny 40.0, 4.00× the teacher's against 1.5×.")
    assert "59.8 → 78.2 → 86.3" in got[0] and "lowest at the first, step 73" in got[0]
    assert "still falling" in got[1] and "lowest at step 20 of 30" in got[2] and got[3].endswith("against 1.5×.")


def test_starts_covered_by_a_wider_spread_of_the_same_std():
    from divdistill.tiny.schedule import starts_covered

    assert starts_covered("marginal", "marginal-sdxl-spread") and starts_covered("unit", "unit")
    assert not starts_covered("marginal-sdxl-spread", "marginal")  # narrow draws do not cover the wide ones
    assert not starts_covered("unit", "marginal") and not starts_covered("marginal", "unit")
    with pytest.raises(ValueError, match="unknown sampling prior 'pyramid'"):
        starts_covered("pyramid", "unit")


def test_start_caused_reads_the_first_two_leak_rows():
    from divdistill.distill.bars import start_caused

    leak = {"rows": [{"fails": ["adherence", "size", "grain"]}, {"fails": ["grain"]}]}
    assert start_caused(leak) == ["adherence", "size"]
    assert start_caused(None) == [] and start_caused({"rows": []}) == []
