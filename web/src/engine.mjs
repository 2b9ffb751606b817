// The page's sampling loop: divdistill.run_plan's, for the plans the page offers (paper Sec. 5 hybrid, Tables 2–3),
// on the noise the Python engine made. The network is a `predict` callback (onnxruntime-web in the page).
import { cfg, drawsNoise, makeScheduler } from "./schedulers.mjs";

/**
 * The plan: {steps: [{model, t, guidance}], scheduler: the model whose sampler integrates every step, name}.
 * student + k: divdistill.hybrid(world, student, k, base_guidance) — the base runs the first k of the student's
 * timesteps on the student's sampler (k = 0: the student alone; k = its step count: the base on its sampler).
 * base50: divdistill.base(world) — the base's own 50-step DDIM grid with CFG baseGuidance.
 */
export function makePlan(world, { student, k = 0, baseGuidance = 0, base50 = false }) {
  const base = world.base, b = world.models[base];
  if (base50) {
    return { name: `base (${b.timesteps.length} steps, CFG ${baseGuidance})`, scheduler: base,
             steps: b.timesteps.map((t) => ({ model: base, t, guidance: baseGuidance })) };
  }
  const s = world.models[student];
  if (!s || student === base) throw new Error(`unknown student ${student}; valid: ${Object.keys(world.models)}`);
  const n = s.timesteps.length;
  if (!(Number.isInteger(k) && k >= 0 && k <= n)) throw new Error(`k=${k} must be an integer in 0..${n}`);
  const steps = s.timesteps.map((t, i) => (i < k ? { model: base, t, guidance: baseGuidance }
                                                 : { model: student, t, guidance: s.guidance }));
  return { name: k === 0 ? student : `hybrid(${student}, k=${k})`, scheduler: student, steps };
}

/**
 * Run a plan. predict(model, xIn (B·D), t, batch) → ε for a batch (its length decides CFG's doubling: the page
 * passes [uncond; cond] when guidance > 1). xT: B·D initial noise; noise(i): B·D draws for step i.
 * Returns {images: B·D, dt: [B·D per step], nfe: UNet passes per image}.
 */
export async function runPlan(world, plan, { xT, noise, predict, batch }) {
  const info = world.models[plan.scheduler];
  const ts = plan.steps.map((s) => s.t);
  const sched = makeScheduler(info, ts);
  let x = xT.map((v) => v * sched.initSigma);
  const dt = [];
  let nfe = 0, final = null;
  for (let i = 0; i < plan.steps.length; i++) {
    const step = plan.steps[i];
    const xIn = sched.scaleInput(x, i);
    const guided = step.guidance > 1;
    const out = await predict(step.model, xIn, step.t, batch, guided);
    nfe += guided ? 2 : 1;
    const eps = guided ? cfg(out, step.guidance) : out;
    const r = sched.step(eps, i, x, drawsNoise(info, i, ts.length) ? noise(i) : null);
    dt.push(r.x0);
    x = r.prev;
    final = r.final;
  }
  return { images: final, dt, nfe };
}

/**
 * The book's diversity (paper Table 3 on the tiny world): divdistill.metrics.pairwise_diversity of one prompt's
 * evaluator features (B·F, row-major): rows L2-normalised as torch's F.normalize (÷ max(‖f‖, 1e-12)), then
 * Σ_{a,b} (1 − f̂_a·f̂_b) / (B(B − 1)), the diagonal included as Python's sum includes it (there 1 − f̂·f̂ ≈ 0).
 */
export function meanPairwiseCosineDistance(feats, batch) {
  if (batch < 2) return NaN;
  const f = feats.length / batch, unit = new Float64Array(feats.length);
  for (let a = 0; a < batch; a++) {
    let n = 0;
    for (let j = 0; j < f; j++) n += feats[a * f + j] * feats[a * f + j];
    n = Math.max(Math.sqrt(n), 1e-12);
    for (let j = 0; j < f; j++) unit[a * f + j] = feats[a * f + j] / n;
  }
  let total = 0;
  for (let a = 0; a < batch; a++) {
    for (let b = 0; b < batch; b++) {
      let s = 0;
      for (let j = 0; j < f; j++) s += unit[a * f + j] * unit[b * f + j];
      total += 1 - s;
    }
  }
  return total / (batch * (batch - 1));
}

/** Mean pairwise pixel distance: the RMS difference of two images in [0, 1], averaged over all pairs. */
export function meanPairwiseDistance(images, batch) {
  const d = images.length / batch;
  let total = 0, pairs = 0;
  for (let a = 0; a < batch; a++) {
    for (let b = a + 1; b < batch; b++) {
      let s = 0;
      for (let j = 0; j < d; j++) {
        const u = Math.min(1, Math.max(0, (images[a * d + j] + 1) / 2));
        const v = Math.min(1, Math.max(0, (images[b * d + j] + 1) / 2));
        s += (u - v) * (u - v);
      }
      total += Math.sqrt(s / d);
      pairs++;
    }
  }
  return pairs ? total / pairs : 0;
}
