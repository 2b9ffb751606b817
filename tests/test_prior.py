"""The sampling prior (issue 19, grain): x_T ~ N(0, (1 − ᾱ_T) I), the noise part of q(x_T), declared with the schedule;
every plan (World.noise) and every rollout (DDIL's refresh_buffer) starts from it."""
import dataclasses
import json
import os
import shutil

import pytest
import torch

from divdistill.distill import DDILConfig, ReplayBuffer, refresh_buffer
from divdistill.tiny.loader import load_tiny_world, set_world_prior, variant_dir
from divdistill.prior import amplitude_spread, apply_prior
from divdistill.tiny.schedule import (PRIORS, SD_SCHEDULE, SDXL_SPREAD, alphas_cumprod, diffusers_config, prior_label,
                                      prior_of, prior_spread, prior_std, scheduler_config, shifted)
from divdistill.tiny.teacher import TeacherConfig


def test_prior_std_is_the_noise_part_of_the_terminal_marginal():
    for s in (1.0, 11.0):
        a_T = float(shifted(s)[-1])  # ᾱ(999), float64, computed apart from the diffusers round trip
        assert prior_std(scheduler_config(s, "marginal")) == pytest.approx((1 - a_T) ** 0.5, abs=1e-6)
        assert prior_std(scheduler_config(s)) == 1.0  # "unit" stays implicit: old schedule files read as N(0, I)
    assert prior_std(scheduler_config(1.0, "marginal")) == pytest.approx(0.99767, abs=1e-5)  # SD: 0.23 % off unit
    assert "prior" not in diffusers_config(scheduler_config(11.0, "marginal"))  # diffusers never sees it
    assert scheduler_config(1.0) == SD_SCHEDULE and prior_of(SD_SCHEDULE) == "unit"


def test_prior_excess_is_what_a_unit_prior_adds_at_the_pixel_scale():
    from divdistill.chapters.tiny_world.grain import prior_excess

    sd, ours = prior_excess(scheduler_config(1.0)), prior_excess(scheduler_config(11.377746413015004))
    assert sd["excess"] == pytest.approx(0.00234, abs=2e-5) and sd["in x0"] == pytest.approx(0.0342, abs=2e-4)
    assert ours["excess"] == pytest.approx(0.0263, abs=2e-4) and ours["in x0"] == pytest.approx(0.114, abs=1e-3)


@pytest.mark.parametrize("call", [lambda: scheduler_config(1.0, "zero-snr"),
                                  lambda: prior_of({**SD_SCHEDULE, "prior": "zero-snr"}),
                                  lambda: TeacherConfig(prior="zero-snr")])
def test_unknown_prior_is_a_clear_error(call):
    with pytest.raises(ValueError,
                       match=r"unknown sampling prior 'zero-snr'; valid: \['unit', 'marginal', 'marginal-sdxl-spread'\]"):
        call()


def test_world_noise_is_the_prior_and_unit_noise_is_unchanged(random_world):
    unit = random_world.noise([3, 4])
    half = dataclasses.replace(random_world, prior_std=0.5).noise([3, 4])
    assert torch.equal(half, 0.5 * unit)
    own = torch.stack([torch.randn(random_world.latent_shape, generator=torch.Generator().manual_seed(k))
                       for k in (3, 4)])  # (B, C, H, W): seed k's image is seed k's draw, whatever the batch
    assert torch.equal(unit, own.to(unit))


def test_rollouts_start_from_the_prior():
    """A student that never moves (eps = 0 at no steps) leaves the buffer's grid-index-0 entries at x_T itself."""
    ac, shape = alphas_cumprod(SD_SCHEDULE), (3, 16, 16)
    eps = {"student": lambda p: (lambda x, t: torch.zeros_like(x))}
    cfg = DDILConfig(priors=(0.0, 0.0, 1.0), late_priors=None)
    stds = {}
    for s in (1.0, 0.5):
        buf = ReplayBuffer(1000)
        refresh_buffer(buf, cfg, eps, [999], ["a shape"] * 64, torch.Generator().manual_seed(0), ac, shape=shape,
                       prior_std=s)
        stds[s] = torch.stack([e[0] for e in buf.items]).std().item()
    assert stds[1.0] == pytest.approx(1.0, abs=0.03) and stds[0.5] == pytest.approx(stds[1.0] / 2, rel=1e-5)
    buf = ReplayBuffer(1000)  # the spread prior: each rollout's start is the same draw, its amplitude narrowed
    refresh_buffer(buf, cfg, eps, [999], ["a shape"] * 64, torch.Generator().manual_seed(0), ac, shape=shape,
                   prior_std=0.5, prior_spread=SDXL_SPREAD)
    r = torch.stack([e[0] for e in buf.items]).flatten(1).std(1) / 0.5
    assert r.std() < 0.5 * amplitude_spread(3 * 16 * 16)


def test_apply_prior_narrows_each_draws_amplitude_and_keeps_its_direction():
    eps = torch.randn(4000, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(apply_prior(eps, 0.97), eps * 0.97)  # no spread: the Gaussian prior, bit for bit
    x, y = 0.97 * eps, apply_prior(eps, 0.97, SDXL_SPREAD)
    r = lambda z: (z.flatten(1).std(1) / 0.97).double()  # noqa: E731
    assert abs(r(x).std() / amplitude_spread(3072) - 1) < 0.05 and abs(r(y).std() / SDXL_SPREAD - 1) < 0.05
    assert SDXL_SPREAD == amplitude_spread(128 * 128 * 4)  # ±0.28 %: 4.6 times less than the tiny world's ±1.28 %
    torch.testing.assert_close(y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-6, rtol=0)  # each draw's mean kept
    centred = lambda z: (z - z.mean((1, 2, 3), True)).flatten(1)  # noqa: E731
    assert torch.nn.functional.cosine_similarity(centred(x), centred(y)).min() > 1 - 1e-6  # same directions
    with pytest.raises(ValueError, match="values must be >= 1"):
        amplitude_spread(0)
    with pytest.raises(ValueError, match="spread must be > 0"):
        apply_prior(eps[:2], 1.0, 0.0)


def test_the_spread_prior_is_the_marginal_std_with_sdxls_spread(tiny_world):
    cfg = scheduler_config(11.0, "marginal-sdxl-spread")
    assert prior_std(cfg) == prior_std(scheduler_config(11.0, "marginal")) and prior_spread(cfg) == SDXL_SPREAD
    assert prior_spread(scheduler_config(11.0, "marginal")) is None and prior_spread(SD_SCHEDULE) is None
    assert prior_label(cfg).startswith("N(0, (1 − ᾱ_T) I) draws with SDXL's amplitude spread")
    w = dataclasses.replace(tiny_world, prior_spread=SDXL_SPREAD)
    torch.testing.assert_close(w.noise([3, 4]), apply_prior(tiny_world.unit_noise([3, 4]), w.prior_std, SDXL_SPREAD))
    plain = dataclasses.replace(tiny_world, prior_spread=None)
    assert torch.equal(plain.noise([3]), plain.unit_noise([3]) * plain.prior_std)


def test_set_prior_rewrites_every_schedule_and_the_world_follows(tmp_path):
    root = tmp_path / "w"
    src = variant_dir("sd-schedule")
    shutil.copytree(os.path.join(src, "teacher"), root / "teacher")
    shutil.copytree(os.path.join(src, "students", "dmd2"), root / "students" / "dmd2")
    set_world_prior(str(root), "unit")  # whatever prior the committed world declares, start from the unit one
    before = load_tiny_world(str(root), students=["dmd2"])
    out = set_world_prior(str(root), "marginal")
    assert out["prior_std"] == pytest.approx(prior_std(scheduler_config(1.0, "marginal")))
    assert "teacher" in out["changed"] and os.path.join("students", "dmd2") in out["changed"]
    with open(root / "teacher" / "scheduler.json") as f:
        assert json.load(f)["prior"] == "marginal"
    after = load_tiny_world(str(root), students=["dmd2"])
    assert after.prior_std == out["prior_std"] and before.prior_std == 1.0
    assert torch.equal(after.noise([7]), out["prior_std"] * before.noise([7]))
    assert set_world_prior(str(root), "marginal")["changed"] == {}  # idempotent
    assert set_world_prior(str(root), "unit")["changed"]["teacher"] == ["marginal", "unit"]
    with pytest.raises(ValueError, match="valid: \\['unit', 'marginal', 'marginal-sdxl-spread'\\]"):
        set_world_prior(str(root), "nope")
    assert PRIORS == ("unit", "marginal", "marginal-sdxl-spread")


def test_prior_sensitivity_scans_the_start_std_and_resumes(tiny_world, tmp_path, monkeypatch):
    """The students' prior scan: every std of scan_stds (both priors' stds among them), the world's own flagged; each
    (student, weights, std) measured once, so a rerun reads the file; a retrained student is measured again."""
    from divdistill.chapters.students import measure as SM
    from divdistill.tiny import quality

    stds = SM.scan_stds(tiny_world)
    assert tiny_world.prior_std in stds and 1.0 in stds and stds == sorted(stds)
    assert all(b - a > 0.005 for a, b in zip(stds, stds[1:]))  # grid points near a prior's std are dropped
    seen = []

    def fake_eval(world, plan, ev, n, seed):
        seen.append(world.prior_std)  # World.noise scales by it (test_world_noise_is_the_prior_…)
        return {"fid": 100 * world.prior_std, "adherence": 1.0, "diversity": 0.2}

    monkeypatch.setattr(quality, "evaluate_plan", fake_eval)
    out, name = str(tmp_path / "prior_sensitivity.json"), tiny_world.students[0]
    res = SM.prior_sensitivity(tiny_world, [name], n=4, out=out, progress=None)
    assert [r["x_T std"] for r in res["rows"]] == stds == seen and tiny_world.prior_std == seen[stds.index(
        tiny_world.prior_std)]
    assert [r["world's"] for r in res["rows"]] == [s == tiny_world.prior_std for s in stds]
    assert [r["fid"] for r in res["rows"]] == pytest.approx([100 * s for s in stds])
    SM.prior_sensitivity(tiny_world, [name], n=4, out=out, progress=None)
    assert len(seen) == len(stds)  # resumed: nothing measured twice
    with open(out) as f:
        assert json.load(f)["rows"] == json.loads(json.dumps(res["rows"]))
    w = next(tiny_world.spec(name).unet.parameters())
    kept = w.detach().clone()
    with torch.no_grad():  # retrained in place: new weights
        w.add_(1e-3)
    try:
        SM.prior_sensitivity(tiny_world, [name], n=4, out=out, progress=None)
    finally:
        with torch.no_grad():
            w.copy_(kept)
    assert len(seen) == 2 * len(stds)  # new weights: measured again
    with open(out) as f:
        assert len(json.load(f)["results"]) == len(stds)  # the old weights' results dropped


def test_scan_spread_note_says_when_the_scan_predates_the_worlds_spread():
    from divdistill.chapters.students.report import scan_spread_note

    spread_world, plain_world = scheduler_config(11.0, "marginal-sdxl-spread"), scheduler_config(11.0, "marginal")
    old, new = {"settings": {"n": 1000}}, {"settings": {"prior_spread": SDXL_SPREAD}}
    assert scan_spread_note(new, spread_world) == "" and scan_spread_note(old, plain_world) == ""
    assert scan_spread_note(old, spread_world).startswith("This scan was measured with each draw's own amplitude "
                                                          "spread, before the world's prior narrowed")
    assert "±0.28%" in scan_spread_note(new, plain_world) and "changed its spread" in scan_spread_note(new, plain_world)
