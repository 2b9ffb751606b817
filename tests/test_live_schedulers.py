"""The live page's JavaScript schedulers (web/src/schedulers.mjs) against diffusers' on the tiny world's configs."""
import json
import os
import shutil
import subprocess

import pytest
import torch
from diffusers.utils.torch_utils import randn_tensor

from divdistill import load_world
from divdistill.live.export import MODELS, scheduler_info
from divdistill.registry import accepts

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHAPE = (2, 3, 4, 4)  # the arithmetic is element-wise: a few values per image suffice


def _set(sched, ts):
    if accepts(sched.set_timesteps, "timesteps"):
        sched.set_timesteps(timesteps=list(ts))
    else:
        sched.set_timesteps(len(ts))
    assert [int(t) for t in sched.timesteps] == list(ts)


def _case(world, name, ts, seed):
    """One scheduler run on random ε, recording each step's input, its drawn noise and diffusers' outputs."""
    sched = world.spec(name).make_scheduler()
    _set(sched, ts)
    g = torch.Generator().manual_seed(seed)
    x, steps = torch.randn(SHAPE, generator=g) * sched.init_noise_sigma, []
    for i, t in enumerate(sched.timesteps):
        eps, scaled = torch.randn(SHAPE, generator=g), sched.scale_model_input(x, t)
        gens = [torch.Generator().manual_seed(seed * 10 + b) for b in range(SHAPE[0])]
        before = [q.get_state() for q in gens]
        out = sched.step(eps, t, x, generator=gens)
        drew = any(not torch.equal(q.get_state(), s) for q, s in zip(gens, before))
        again = [torch.Generator().set_state(s) for s in before]
        noise = randn_tensor(SHAPE, generator=again) if drew else None
        x0 = getattr(out, "denoised", None)
        x0 = out.pred_original_sample if x0 is None else x0
        flat = lambda a: a.flatten().tolist()  # noqa: E731
        steps.append({"x": flat(x), "scaled": flat(scaled), "eps": flat(eps),
                      "noise": None if noise is None else flat(noise), "prev": flat(out.prev_sample),
                      "x0": flat(x0), "draws": drew})
        x = out.prev_sample
    return {"name": f"{name}@{len(ts)}", "info": scheduler_info(world, name), "timesteps": list(ts),
            "init_sigma": float(sched.init_noise_sigma), "steps": steps}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    world = load_world("tiny", students=[m for m in MODELS if m != "base"])
    cases = [_case(world, m, world.spec(m).default_timesteps(), 3 + i) for i, m in enumerate(MODELS)]
    cases.append(_case(world, "base", world.spec("base").default_timesteps(4), 11))  # DDIM's stride on 4 steps
    g = torch.Generator().manual_seed(5)
    out = torch.randn((4, *SHAPE[1:]), generator=g)
    u, c = out.chunk(2)
    ref = {"cases": cases, "cfg": {"out": out.flatten().tolist(), "guidance": 4.0,
                                   "guided": (u + 4.0 * (c - u)).flatten().tolist()}}
    path = tmp_path_factory.mktemp("live_sched") / "ref.json"
    path.write_text(json.dumps(ref))
    return str(path)


def test_javascript_schedulers_match_diffusers(reference):
    node = shutil.which("node")
    assert node, "the live page's scheduler test needs Node.js (`node` on PATH; Debian: apt-get install -y nodejs)"
    run = subprocess.run([node, os.path.join(ROOT, "web", "test", "check_schedulers.mjs"), reference],
                         capture_output=True, text=True, check=True)
    report = json.loads(run.stdout)
    assert report.pop("cfg") < 1e-6
    assert set(report) == {f"{m}@4" for m in MODELS} | {"base@50"}
    for name, err in report.items():
        assert err["draws"] == 0, f"{name}: the page hands noise to different steps than diffusers draws it"
        for k in ("init_sigma", "scaled", "prev", "x0"):
            assert err[k] < 2e-5, f"{name}: {k} differs from diffusers by {err[k]:.2e}"
