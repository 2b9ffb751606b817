"""run_plan(..., x_T=None, callback=None): outputs those of the loop before the callback (fingerprints of images and DT,
to 1e-4), the callback's arguments, DT capture as a callback, x_T, SDEdit."""
import pytest
import torch

import divdistill as dd
from divdistill.sampling import CaptureDT, CaptureStates

PROMPTS, SEEDS = ["a red circle", "a large blue square on a dark background", "a shape"], [0, 7, 123]
# Fingerprints (mean, std, then the mean over each leading index: image or step) of images and DT, recorded at this
# commit, one thread, on the sd-schedule world. The loop was bitwise the one of git 33afda3 where sha256 hashes were
# recorded; hashes are not portable across CPUs (other vector instructions round the last bits differently), so
# outputs are compared to 1e-4: a change to the loop moves them by far more. The plans with DMD2 were re-recorded when
# the sd-schedule DMD2 was retrained (issue 19); every other plan's fingerprint stayed within 1e-4, the loop unchanged.
BEFORE = {
 "base8": [
  [
   -0.324199,
   0.490717,
   -0.345746,
   -0.429165,
   -0.197686
  ],
  [
   -0.334339,
   0.642492,
   -0.407432,
   -0.327828,
   -0.318281,
   -0.32414,
   -0.324642,
   -0.323973,
   -0.324219,
   -0.324199
  ],
  16
 ],
 "dmd2": [
  [
   -0.62917,
   0.481787,
   -0.698125,
   -0.570981,
   -0.618403
  ],
  [
   -0.619337,
   0.568756,
   -0.567077,
   -0.637067,
   -0.644035,
   -0.62917
  ],
  4
 ],
 "lcm": [
  [
   -0.259873,
   0.370117,
   -0.308123,
   -0.232036,
   -0.23946
  ],
  [
   -0.229315,
   0.438929,
   -0.197349,
   -0.211036,
   -0.249003,
   -0.259873
  ],
  4
 ],
 "turbo": [
  [
   -0.353613,
   0.372707,
   -0.478945,
   -0.350848,
   -0.231046
  ],
  [
   -0.309349,
   0.467708,
   -0.272388,
   -0.279343,
   -0.33205,
   -0.353613
  ],
  4
 ],
 "pd": [
  [
   -0.260967,
   0.465802,
   -0.328289,
   -0.256574,
   -0.198039
  ],
  [
   -0.25692,
   0.576195,
   -0.248827,
   -0.256894,
   -0.260992,
   -0.260967
  ],
  4
 ],
 "hybrid": [
  [
   -0.454623,
   0.401918,
   -0.494971,
   -0.44549,
   -0.423408
  ],
  [
   -0.340493,
   0.45154,
   -0.153555,
   -0.328611,
   -0.425184,
   -0.454623
  ],
  4
 ],
 "on_sampler": [
  [
   -0.38083,
   0.560124,
   -0.326478,
   -0.695166,
   -0.120847
  ],
  [
   -0.380857,
   0.759142,
   -0.407432,
   -0.357371,
   -0.377794,
   -0.38083
  ],
  8
 ],
 "pattern": [
  [
   -0.42411,
   0.491855,
   -0.459024,
   -0.493948,
   -0.319356
  ],
  [
   -0.405181,
   0.67411,
   -0.407432,
   -0.327828,
   -0.466192,
   -0.403373,
   -0.402152,
   -0.42411
  ],
  10
 ]
}
RUN_WITH_XT_BEFORE = {
 "base": [
  [
   -0.536513,
   0.434566,
   -0.529885,
   -0.543141
  ],
  [
   -0.227766,
   0.887235,
   -0.028787,
   -0.075777,
   -0.155705,
   -0.263054,
   -0.374848,
   -0.468426
  ]
 ],
 "hybrid(dmd2, k=1)": [
  [
   -0.641225,
   0.396901,
   -0.662722,
   -0.619727
  ],
  [
   -0.257863,
   0.908078,
   -0.028787,
   -0.121815,
   -0.340228,
   -0.540621
  ]
 ],
 "turbo": [
  [
   -0.643823,
   0.344385,
   -0.631416,
   -0.656229
  ],
  [
   -0.264117,
   0.905201,
   -0.02872,
   -0.153453,
   -0.337685,
   -0.536609
  ]
 ]
}


def _fp(t):
    t = t.detach().double()
    return [float(t.mean()), float(t.std()), *t.flatten(1).mean(1).tolist()]


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
        got[k] = [_fp(r.images), _fp(r.dt), r.nfe]
    for k, (im, dt, nfe) in got.items():
        assert nfe == BEFORE[k][2] and im == pytest.approx(BEFORE[k][0], abs=1e-4), k
        assert dt == pytest.approx(BEFORE[k][1], abs=1e-4), k


def test_run_with_xt_bitwise_as_before(world):
    from divdistill.preview import run_with_xt

    for p in (dd.base(world, n=6, guidance=4.0), dd.hybrid(world, "dmd2", k=1), dd.distilled(world, "turbo")):
        r, xt = run_with_xt(world, p, ["a red circle", "a shape"], [3, 4])
        want = RUN_WITH_XT_BEFORE[p.name]
        assert _fp(r.images) == pytest.approx(want[0], abs=1e-4) and _fp(xt) == pytest.approx(want[1], abs=1e-4)


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
