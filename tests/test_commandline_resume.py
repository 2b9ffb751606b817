"""Every study runner resumes through commandline.Partial / load_partial: the covariate study per seed, the sampler
control table per row, the control readouts per plan (and afresh when a LoRA is retrained). The expensive parts are
stubbed: what is tested is which results are reused and which are computed. (The hybrid's cells: test_hybrid_eval.)"""
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from divdistill import commandline as C


class _Killed(Exception):
    pass


def _covariate_stubs(monkeypatch, calls, kill_at=None):
    from divdistill.book import chapter
    from divdistill.chapters.covariate import measure as CM

    spec = SimpleNamespace(guidance=4.0)
    world = SimpleNamespace(base_name="base", specs={"base": spec, "pd": spec}, extras={"variant": "v"},
                            prior_settings={"prior_std": 1.0, "prior_spread": None},
                            spec=lambda name: spec)
    monkeypatch.setattr(chapter, "open_chapter", lambda *a, **kw: SimpleNamespace(world=world, evaluator=None,
                                                                                   features=None))

    def seed_record(world, ev, teacher, student, n, s, *rest):
        if s == kill_at:
            raise _Killed(s)
        calls.append(("seed", s))
        return {"seed": s, "fid": 1.0 + s}

    def shift_profile(world, features, models, n_shift, s, batch_size):
        calls.append(("shift", s))
        return [{"model": "pd", "seed": s}]

    monkeypatch.setattr(CM, "seed_record", seed_record)
    monkeypatch.setattr(CM, "shift_profile", shift_profile)
    return CM


def test_killed_covariate_study_resumes_per_seed(tmp_path, monkeypatch):
    out, calls = str(tmp_path / "covariate_shift.json"), []
    CM = _covariate_stubs(monkeypatch, calls, kill_at=2)
    with pytest.raises(_Killed):
        CM.run(out, n=4, seeds=(0, 1, 2), progress=None)
    assert calls == [("seed", 0), ("shift", 0), ("seed", 1), ("shift", 1)] and os.path.exists(out + ".partial")
    CM = _covariate_stubs(monkeypatch, calls)
    res = CM.run(out, n=4, seeds=(0, 1, 2), progress=None)
    assert calls[4:] == [("seed", 2), ("shift", 2)]  # seeds 0 and 1 came from the partial file
    assert [r["seed"] for r in res["per_seed"]] == [0, 1, 2] and not os.path.exists(out + ".partial")
    with open(out) as f:
        assert json.load(f)["shift"]["1"] == [{"model": "pd", "seed": 1}]


def test_covariate_study_with_other_settings_starts_afresh(tmp_path, monkeypatch):
    out, calls = str(tmp_path / "covariate_shift.json"), []
    CM = _covariate_stubs(monkeypatch, calls, kill_at=1)
    with pytest.raises(_Killed):
        CM.run(out, n=4, seeds=(0, 1), progress=None)
    CM = _covariate_stubs(monkeypatch, calls)
    CM.run(out, n=8, seeds=(0, 1), progress=None)  # another n: seed 0 is measured again
    assert calls == [("seed", 0), ("shift", 0), ("seed", 0), ("shift", 0), ("seed", 1), ("shift", 1)]


def _students_run(monkeypatch, world, out, calls, kill_after=None, redo=()):
    from divdistill.chapters.students import measure as SM

    def measure(world, plan, *a, **kw):
        if kill_after is not None and len(calls) == kill_after:
            raise _Killed(plan.name)
        calls.append(plan.name)
        return {"diversity": 0.5, "diversity_std": 0.0, "per_prompt": {}, "steps": len(plan), "nfe": len(plan)}

    monkeypatch.setattr(SM, "measure", measure)
    return SM.evaluate_controls(world, per_prompt=2, seeds=(0,), out=out, progress=None,
                                features=lambda imgs: imgs.flatten(1), redo=redo)


def test_killed_control_table_resumes_per_row(random_world, tmp_path, monkeypatch):
    out, calls = str(tmp_path / "controls.json"), []
    with pytest.raises(_Killed):
        _students_run(monkeypatch, random_world, out, calls, kill_after=2)
    assert len(calls) == 2
    res = _students_run(monkeypatch, random_world, out, calls)
    assert len(calls) == 4 and len(set(calls)) == 4  # teacher + the student's three plans, each measured once
    with open(out) as f:
        assert json.load(f) == json.loads(json.dumps(res))  # the committed layout: {"settings", "rows"}
    assert sorted(res) == ["rows", "settings"] and len(res["rows"]) == 4
    labels = [r["label"] for r in res["rows"]]
    res = _students_run(monkeypatch, random_world, out, calls, redo=("student",))  # a retrained student
    assert len(calls) == 7 and calls[4:] == calls[1:4]  # its three rows measured again, the teacher's kept
    assert [r["label"] for r in res["rows"]] == labels  # in place
    unet = random_world.spec("student").unet
    kept = {k: v.clone() for k, v in unet.state_dict().items()}
    with torch.no_grad():  # retrained in place, no --redo: its rows' weights no longer match
        next(unet.parameters()).add_(1e-3)
    try:
        res = _students_run(monkeypatch, random_world, out, calls)
    finally:
        unet.load_state_dict(kept)
    # the rows that run the student (its own plan, the hybrid) again; the control runs only the base: kept
    assert calls[7:] == [calls[1], calls[3]] and [r["label"] for r in res["rows"]] == labels
    _students_run(monkeypatch, random_world, out, calls)  # the original weights again: those two rows once more
    assert len(calls) == 11


def _control_world(tmp_path):
    return SimpleNamespace(extras={"root": str(tmp_path / "world"), "evaluator_root": str(tmp_path / "ev")},
                           prior_settings={"prior_std": 1.0, "prior_spread": None})


class _Plan(list):
    name, models = "stub plan", ["base"]


def test_control_readouts_resume_and_a_retrained_lora_starts_afresh(tmp_path, monkeypatch):
    from divdistill.chapters.control import measure as CT

    loras = tmp_path / "loras"
    monkeypatch.setattr(CT, "loras_root", lambda world: str(loras))
    calls = []
    monkeypatch.setattr(CT, "generate", lambda world, plan, prompts, seeds: calls.append(len(prompts)) or
                        SimpleNamespace(images=np.arange(len(prompts), dtype=np.float32)))
    monkeypatch.setattr(CT, "attribute", lambda ev, images, control: images * 0.5)
    world, path = _control_world(tmp_path), str(tmp_path / "transfer_cache.json")
    (loras / "base" / "style").mkdir(parents=True)
    (loras / "base" / "style" / "pytorch_lora_weights.safetensors").write_bytes(b"lora v1")
    first = CT.readout(world, None, "style", _Plan(), 2, cache=CT.readout_cache(world, path))
    again = CT.readout(world, None, "style", _Plan(), 2, cache=CT.readout_cache(world, path))
    assert len(calls) == 1 and np.array_equal(first, again) and again.dtype == np.float64
    (loras / "base" / "style" / "pytorch_lora_weights.safetensors").write_bytes(b"lora v2")  # retrained
    CT.readout(world, None, "style", _Plan(), 2, cache=CT.readout_cache(world, path))
    assert len(calls) == 2
    assert isinstance(CT.readout_cache(world, path), C.Partial)
