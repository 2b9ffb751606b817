// Run the page's schedulers on recorded diffusers inputs (tests/test_live_schedulers.py writes them) and print,
// per case, the largest |JavaScript − diffusers| of each quantity as JSON on stdout.
import { readFileSync } from "node:fs";
import { cfg, drawsNoise, makeScheduler } from "../src/schedulers.mjs";

const ref = JSON.parse(readFileSync(process.argv[2], "utf8"));
const maxAbs = (a, b) => a.reduce((m, v, j) => Math.max(m, Math.abs(v - b[j])), 0);
const f32 = (a) => Float32Array.from(a);
const report = {};
for (const c of ref.cases) {
  const s = makeScheduler(c.info, c.timesteps);
  const err = { init_sigma: Math.abs(s.initSigma - c.init_sigma), scaled: 0, prev: 0, x0: 0, draws: 0 };
  c.steps.forEach((st, i) => {
    err.scaled = Math.max(err.scaled, maxAbs(s.scaleInput(f32(st.x), i), st.scaled));
    const r = s.step(f32(st.eps), i, f32(st.x), st.noise ? f32(st.noise) : null);
    err.prev = Math.max(err.prev, maxAbs(r.prev, st.prev));
    err.x0 = Math.max(err.x0, maxAbs(r.x0, st.x0));
    if (drawsNoise(c.info, i, c.timesteps.length) !== st.draws) err.draws += 1;
  });
  report[c.name] = err;
}
report.cfg = maxAbs(cfg(f32(ref.cfg.out), ref.cfg.guidance), ref.cfg.guided);
console.log(JSON.stringify(report));
