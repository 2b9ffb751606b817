"""run_plan(..., x_T=None, callback=None): outputs bitwise-identical to the loop before the callback (sha256 of images
and DT recorded at git 33afda3, one thread), the callback's arguments, DT capture as a callback, x_T, SDEdit."""
import hashlib

import pytest
import torch

import divdistill as dd
from divdistill.sampling import CaptureDT, CaptureStates

PROMPTS, SEEDS = ["a red circle", "a large blue square on a dark background", "a shape"], [0, 7, 123]
BEFORE = {
     "base8": [
      "976d62732b848045",
      "0735fa322dc38d1a",
      16
     ],
     "dmd2": [
      "47b7c63d64142fc9",
      "53a824a4966c158c",
      4
     ],
     "lcm": [
      "4f54a8a69bf729b0",
      "1a0dee684a61dc4e",
      4
     ],
     "turbo": [
      "3ff1eec3f5c5bcfe",
      "a3bdc5ae6771db34",
      4
     ],
     "pd": [
      "7158b18aca0209de",
      "ef97556092a2b681",
      4
     ],
     "hybrid": [
      "4590be400392d570",
      "790f9bf77f0f2690",
      4
     ],
     "on_sampler": [
      "5cd69c07dce6bc56",
      "a34fadb4189501a3",
      8
     ],
     "pattern": [
      "27a9b2c8cd0fa121",
      "57cc265f50991489",
      10
     ]
    }
RUN_WITH_XT_BEFORE = {"base": ("a491e197009b777c", "9e47de509456e8c1"),
                      "hybrid(dmd2, k=1)": ("d155dd46143c9ebb", "c1e99950a62f0101"),
                      "turbo": ("2b5a93f7c5bb0e4f", "ebe95a6d65abd1ae")}


def _h(t):
    return hashlib.sha256(t.contiguous().cpu().numpy().tobytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def world():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield dd.load_world("tiny", device="cpu", variant="sd-schedule", students=["dmd2", "lcm", "turbo", "pd"])
    torch.set_num_threads(threads)


def _plans(w):
    return {"base8": dd.base(w, n=8), "dmd2": dd.distilled(w, "dmd2"), "lcm": dd.distilled(w, "lcm"),
            "turbo": dd.distilled(w, "turbo"), "pd": dd.distilled(w, "pd"), "hybrid": dd.hybrid(w, "dmd2", k=1),
            "on_sampler": dd.on_sampler(w, "lcm"), "pattern": dd.pattern_plan(w, "TSTS", "base", "dmd2", k=2)}


def test_outputs_bitwise_as_before(world):
    got = {}
    for k, p in _plans(world).items():
        r = dd.run_plan(world, p, PROMPTS, SEEDS)
        got[k] = [_h(r.images), _h(r.dt), r.nfe]
    assert got == BEFORE


def test_run_with_xt_bitwise_as_before(world):
    from divdistill.preview import run_with_xt

    for p in (dd.base(world, n=6, guidance=4.0), dd.hybrid(world, "dmd2", k=1), dd.distilled(world, "turbo")):
        r, xt = run_with_xt(world, p, ["a red circle", "a shape"], [3, 4])
        assert (_h(r.images), _h(xt)) == RUN_WITH_XT_BEFORE[p.name]


def test_callback_sees_every_step(world):
    plan = dd.hybrid(world, "dmd2", k=1)
    seen, cap = [], CaptureStates()

    def cb(i, t, model, x_t, x0):
        seen.append((i, t, model, tuple(x_t.shape), tuple(x0.shape)))
        cap(i, t, model, x_t, x0)
    res = dd.run_plan(world, plan, PROMPTS[:2], SEEDS[:2], callback=cb)
    assert [s[:3] for s in seen] == [(i, s.timestep, s.model) for i, s in enumerate(plan.steps)]
    assert all(s[3] == s[4] == (2, *world.latent_shape) for s in seen)
    dt = CaptureDT(world)
    for i, t, m, x_t, x0 in zip(range(len(plan)), cap.timesteps, cap.models, cap.x_t, cap.x0):
        dt(i, t, m, x_t, x0)
    assert torch.equal(torch.stack(dt.frames), res.dt)  # DT capture is the built-in callback
    assert torch.equal(cap.x_t[0], world.noise(SEEDS[:2]))  # DDIM's first input is x_T itself


def test_x_T(world):
    plan = dd.distilled(world, "dmd2")
    a = dd.run_plan(world, plan, PROMPTS, SEEDS, capture=False)
    b = dd.run_plan(world, plan, PROMPTS, SEEDS, capture=False, x_T=world.noise(SEEDS))
    assert torch.equal(a.images, b.images)
    c = dd.run_plan(world, plan, PROMPTS, SEEDS, capture=False, x_T=world.noise([1, 2, 3]))
    assert not torch.equal(a.images, c.images)
    with pytest.raises(ValueError, match="x_T must be"):
        dd.run_plan(world, plan, PROMPTS, SEEDS, x_T=world.noise([1, 2]))
