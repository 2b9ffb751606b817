"""The flat-background grain (issue 19's "no visible grain"): zero on the data, the high-pass share of added noise,
blind to noise inside the shape, NaN without a background; the acceptance check and the grain-only evaluation."""
import json
import math
import os
import shutil

import pytest
import torch

from divdistill.distill.bars import TEACHER_BAR, teacher_acceptance
from divdistill.tiny.loader import variant_dir
from divdistill.tiny.schedule import prior_of
from divdistill.tiny.quality import GRAIN_VISIBLE, background_grain, evaluate_grain, grain_stats
from divdistill.tiny.world import sample_scenes

LEVEL = 1 / 127.5  # one 8-bit level in [-1, 1] units


def test_data_has_no_grain():
    g = background_grain(sample_scenes(64, seed=5).images)
    assert g.isnan().float().mean() < 0.1  # nearly every scene has a flat background to measure
    assert g[~g.isnan()].max() < 0.1


def test_added_noise_reads_back_as_its_high_pass_share():
    """iid noise of σ levels: x − its 3×3 mean keeps a variance of σ²·(1 − 1/9), so the grain reads σ·√(8/9)."""
    sc = sample_scenes(64, seed=6).images
    sigma = 5.0
    noisy = sc + sigma * LEVEL * torch.randn(sc.shape, generator=torch.Generator().manual_seed(0))
    s = grain_stats(noisy)
    assert s["grain_median"] == pytest.approx(sigma * math.sqrt(8 / 9), rel=0.1)
    assert s["grain_visible_frac"] == 1.0 and s["grain_n"] >= 58


def test_noise_inside_the_shape_is_not_grain_and_no_background_is_nan():
    img = torch.full((2, 3, 32, 32), -0.6)
    img[:, :, 12:20, 12:20] = 0.6  # a square
    img[:, :, 12:20, 12:20] += 0.2 * torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    img[1] = -0.6 + 1.2 * ((torch.arange(32)[:, None] // 4 + torch.arange(32)[None] // 4) % 2)  # 4-px checkerboard
    g = background_grain(img)
    assert g[0] < 0.05 and g[1].isnan()
    with pytest.raises(ValueError, match="no image has a flat background"):
        grain_stats(img[1:])


def test_acceptance_checks_grain_only_where_measured():
    args = (40.0, 0.96, {"shape": 0.95}, 0.19, 0.187)
    assert TEACHER_BAR["grain_p90"] == GRAIN_VISIBLE
    assert "grain" not in teacher_acceptance(*args) and teacher_acceptance(*args)["all"]
    assert teacher_acceptance(*args, grain_p90=1.5)["grain"]
    bad = teacher_acceptance(*args, grain_p90=4.5)
    assert not bad["grain"] and not bad["all"]


def test_grain_only_evaluation_adds_grain_and_keeps_the_rest(tmp_path):
    root = tmp_path / "world"
    shutil.copytree(os.path.join(variant_dir(), "teacher"), root / "teacher")
    before = json.load(open(root / "teacher" / "provenance.json"))["metrics"]
    res = evaluate_grain(str(root), n=4)
    after = json.load(open(root / "teacher" / "provenance.json"))["metrics"]
    assert after["data_grain_median"] < 0.1 and after["teacher_grain_n"] == res["teacher_grain_n"] <= 4
    assert {k: after[k] for k in before if not k.endswith(tuple(res))} == \
        {k: v for k, v in before.items() if not k.endswith(tuple(res))}


def test_grain_diagnosis_parts(tiny_world):
    """Each part of the teacher's grain diagnosis at smoke size: the sweep's samplers, every student, one-step x̂0."""
    from divdistill.chapters.tiny_world.grain import (one_step_grain, prior_grain, sampler_grain, scratch,
                                                      student_grain, teacher_plan)
    from divdistill.chapters.tiny_world.measure import main

    rows = sampler_grain(tiny_world, n=2, sweep=(("DDIM", 3, 4.0), ("Euler ancestral", 3, 4.0)))
    assert [r["sampler"] for r in rows] == ["DDIM", "Euler ancestral"] and all(r["grain_n"] <= 2 for r in rows)
    assert teacher_plan(scratch(tiny_world), "DDPM", 3, 4.0).timesteps == teacher_plan(tiny_world, "DDIM", 3, 4.0).timesteps
    one = one_step_grain(tiny_world, n=2, ts=(19, 899))
    assert [r["t"] for r in one] == [19, 899] and one[0]["noise (levels)"] < one[1]["noise (levels)"]
    assert [r["student"] for r in student_grain(tiny_world, n=2)] == tiny_world.students  # none registered by the above
    unit, marginal, spread = prior_grain(tiny_world, n=2)
    assert (unit["prior"], marginal["prior"], spread["prior"]) == ("unit", "marginal", "marginal-sdxl-spread")
    assert unit["x_T std"] == 1.0 > marginal["x_T std"] == spread["x_T std"]
    declared = prior_of(tiny_world.extras["schedule"])
    assert [r["world's"] for r in (unit, marginal, spread)] == [declared == r["prior"] for r in (unit, marginal, spread)]
    assert sum(r["world's"] for r in (unit, marginal, spread)) == 1
    with pytest.raises(ValueError, match="unknown sampler 'heun'"):
        teacher_plan(tiny_world, "heun", 50, 4.0)
    with pytest.raises(SystemExit):  # argparse names the valid choices
        main(["--what", "nope"])


@pytest.mark.slow
def test_grain_diagnosis_cli_writes_every_part(tmp_path):
    """`--what grain` at smoke size: each sampler of the sweep, every student, each one-step t, provenance."""
    from divdistill.chapters.tiny_world.grain import ONE_STEP_T, SWEEP, teacher_plan
    from divdistill.chapters.tiny_world.measure import main
    from divdistill.tiny.loader import load_tiny_world

    out = tmp_path / "g.json"
    assert main(["--what", "grain", "--n", "3", "--n-fid", "0", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [(r["sampler"], r["steps"], r["cfg"]) for r in res["sampler"]] == [tuple(s) for s in SWEEP]
    assert [r["t"] for r in res["one_step"]] == list(ONE_STEP_T) and res["fid"] == []
    assert {r["student"] for r in res["students"]} == set(load_tiny_world().students)
    assert res["provenance"]["config"]["kind"] == "teacher_grain"


def test_grain_summary_reads_every_number_from_the_diagnosis():
    from divdistill.chapters.tiny_world.report import grain_summary

    def s(sampler, steps, cfg, p90, med=1.0, vis=0.5):
        return {"sampler": sampler, "steps": steps, "cfg": cfg, "grain_p90": p90, "grain_median": med,
                "grain_visible_frac": vis}

    g = {"n": 64, "sampler": [s("DDIM", 50, 4.0, 10.8, 4.5, 0.7), s("DDIM", 50, 1.0, 9.9), s("DDIM", 200, 4.0, 10.2),
                              s("DDPM", 50, 4.0, 0.6), s("Euler ancestral", 50, 4.0, 0.59)],
         "students": [{"student": "pd", "sampler": "DDIM", "grain_p90": 15.8}, {"student": "dmd2", "sampler": "LCM",
                                                                                  "grain_p90": 1.5}],
         "one_step": [{"t": 19, "grain_median": 0.5}, {"t": 299, "grain_median": 1.2}, {"t": 499, "grain_median": 2.2}],
         "fid": [{"sampler": "DDIM", "fid": 41.8, "n": 1000}, {"sampler": "Euler ancestral", "fid": 30.1, "n": 1000}]}
    text = grain_summary(g)
    assert "on 70% of its samples" in text and "90th percentile 10.8" in text and "DDPM 0.6" in text
    assert "clean up to t = 299 and grainy from t = 499" in text and "pd (DDIM, 15.80)" in text and "dmd2" not in text
    assert "DDIM 41.8, Euler ancestral 30.1" in text
    runs = [{"run": "a", "grain p90": 1.5}, {"run": "b", "grain p90": None}, {"run": "c", "grain p90": 9.7},
            {"run": "d", "grain p90": 10.8}]
    text = grain_summary({**g, "sampler": [{**g["sampler"][0], "corr with x_T": 0.72, "levels per unit x_T": 4.7},
                                           *g["sampler"][1:]]}, runs)
    assert "went 1.5 → 9.7 → 10.8 levels" in text and "first run over the bar is “c”, and every run after" in text
    assert "correlates 0.72 with the starting noise's (4.7 levels" in text and "x_T's own fine scale" in text
    pr = {"prior": [{"prior": "unit", "grain_p90": 10.1, "corr with x_T": 0.72, "world's": False},
                    {"prior": "marginal", "grain_p90": 1.9, "corr with x_T": -0.12, "world's": True}],
          "prior_excess": {"world": {"alpha_T": 0.0506, "excess": 0.0263, "in x0": 0.114},
                           "SD": {"alpha_T": 0.0047, "excess": 0.00234, "in x0": 0.0342}}}
    text = grain_summary({**g, **pr})
    assert "N(0, I), the acceptance sampler leaves a 90th percentile of 10.1 levels" in text and "N(0, (1 − ᾱ_T) I), 1.9" in text
    assert "carries 2.6% more noise" in text and "11% of the noise's fine scale" in text and "0.23% and 3.4%" in text
    assert "samples from the marginal prior" in text and "starting noise" not in grain_summary(g)
    assert "raising the terminal SNR made it visible" in text  # a shifted schedule; SD's own is said to be SD's:
    sd = {**pr, "prior_excess": {**pr["prior_excess"], "world": pr["prior_excess"]["SD"]}}
    text = grain_summary({**g, **sd})
    assert "SD's own schedule, so these are SDXL's numbers too" in text and "raising" not in text
    g["sampler"][3]["grain_p90"] = 5.0  # a grainy stochastic sampler: no claim that the grain is DDIM's
    assert "deterministic path" not in grain_summary(g)
    assert grain_summary(None).startswith("No grain diagnosis")


def test_noise_carry_reads_how_much_of_x_T_survives():
    from divdistill.chapters.tiny_world.grain import noise_carry

    x_T = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    img = torch.full_like(x_T, -0.5) + 0.05 * x_T  # a flat background carrying 5% of the noise
    c = noise_carry(img, x_T)
    assert c["corr with x_T"] == pytest.approx(1.0, abs=1e-6) and c["levels per unit x_T"] == pytest.approx(0.05 * 127.5)
    other = noise_carry(torch.full_like(x_T, -0.5) + 0.05 * torch.randn(x_T.shape), x_T)
    assert abs(other["corr with x_T"]) < 0.05


def test_hybrid_chapter_notes_the_base_grain_from_the_committed_diagnosis(tmp_path):
    from divdistill.chapters.hybrid.report import base_grain_note

    assert base_grain_note("w", "dmd2", root=str(tmp_path)) is None  # nothing committed: no note
    (tmp_path / "w").mkdir()
    row = lambda s, fid, p90, frac: {"sampler": s, "fid": fid, "grain_p90": p90, "grain_visible_frac": frac, "n": 1000}
    (tmp_path / "w" / "teacher_grain.json").write_text(json.dumps({
        "fid": [row("DDIM", 41.8, 10.8, 0.7), row("Euler ancestral", 17.6, 0.66, 0.0)],
        "students": [{"student": "dmd2", "grain_p90": 1.5}]}))
    note = base_grain_note("w", "dmd2", root=str(tmp_path))
    assert "on 70% of its samples" in note and "41.8 on DDIM and 17.6 on Euler ancestral" in note
    assert "visible on 0%" in note and "dmd2 on its own sampler leaves 1.5 levels" in note
    assert note.startswith("**The base's FID carries its grain.**")
    (tmp_path / "w" / "teacher_grain.json").write_text(json.dumps({
        "fid": [row("DDIM", 37.9, 2.4, 0.12), row("Euler ancestral", 17.7, 0.67, 0.0)], "students": []}))
    note = base_grain_note("w", "dmd2", root=str(tmp_path))
    assert note.startswith("**The base's FID depends on its sampler.**") and "on 12% of its samples" in note


def test_grain_tables_put_what_the_row_is_first():
    from divdistill.chapters.tiny_world.report import grain_table_rows

    rows = grain_table_rows([{"grain_median": 1.0, "grain_n": 61, "grain_p90": 2.0, "grain_visible_frac": 0.5,
                              "noise (levels)": 5.1, "t": 19}])
    assert list(rows[0]) == ["t", "noise (levels)", "n", "grain median", "grain p90", "visible"] and rows[0]["n"] == 61


def test_start_amplitude_splits_grain_by_each_starts_own_std():
    """Starts louder than the prior carry visible grain, the rest none: the split, counts, correlation and spread."""
    from divdistill.chapters.tiny_world.grain import start_amplitude

    eps = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    eps = eps / eps.flatten(1).std(1)[:, None, None, None]  # each start's std exactly 1, then 4 louder, 4 quieter
    x_T = eps * torch.tensor([1.03] * 4 + [0.97] * 4)[:, None, None, None]
    img = torch.full_like(x_T, -0.5)
    img[:4] += 5 * LEVEL * eps[:4]  # the louder starts leave 5 levels of their noise on the background
    r = start_amplitude(img, x_T, prior_std=1.0)
    assert (r["n above"], r["n at or below"]) == (4, 4)
    assert r["visible, start above prior"] == 1.0 and r["visible, start at or below"] == 0.0
    assert r["corr grain, start std"] > 0.9 and r["values per start"] == 3072
    assert r["start std spread"] == pytest.approx((2 * 3072) ** -0.5)


def test_grain_summary_splits_the_ddim_fid_set_by_start_amplitude():
    from divdistill.chapters.tiny_world.report import (grain_summary, grain_table_rows, start_amplitude_rows,
                                                       start_amplitude_summary)

    amp = {"values per start": 3072, "start std spread": 0.01276, "corr grain, start std": 0.51,
           "visible, start above prior": 0.18, "visible, start at or below": 0.0, "n above": 480, "n at or below": 520}
    text = start_amplitude_summary(amp)
    assert "±1.28% around the prior's" in text and "65,536 values: ±0.28%, 4.6 times less" in text
    assert "on 18% of the 480 samples" in text and "on 0% of the other 520" in text and "is 0.51" in text
    assert "fail the grain bar are the louder starts" in text
    assert "louder starts" not in start_amplitude_summary({**amp, "visible, start at or below": 0.3})
    g = {"n": 64, "sampler": [{"sampler": "DDIM", "steps": s, "cfg": c, "grain_p90": 2.4, "grain_median": 1.1,
                               "grain_visible_frac": 0.12} for s, c in ((50, 4.0), (50, 1.0), (200, 4.0))],
         "students": [], "one_step": [],
         "fid": [{"sampler": "DDIM", "fid": 37.9, "n": 1000, **amp}, {"sampler": "Euler ancestral", "fid": 17.7,
                                                                      "n": 1000}]}
    assert text in grain_summary(g)
    assert list(grain_table_rows(g["fid"])[0]) == ["sampler", "n", "FID_tiny"]  # the split has its own table
    split = start_amplitude_rows(g["fid"])
    assert len(split) == 1 and split[0]["sampler"] == "DDIM" and split[0]["visible (louder)"] == 0.18
    assert split[0]["n others"] == 520 and split[0]["corr grain, x_T std"] == 0.51
