// The schedulers' few lines of arithmetic, as diffusers does them (checked against diffusers by
// tests/test_live_schedulers.py): DDIM (eta 0), LCM's boundary-condition step with re-noising, Euler, Euler-ancestral,
// and classifier-free guidance. Every array is one flat Float32Array of B images × D values; ε-prediction only.

const SIGMA_DATA = 0.5; // LCM's boundary condition (LCM paper, Eq. 3 / diffusers' LCMScheduler)

function map(n, f) {
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = f(j);
  return out;
}

/** CFG: uncond + g (cond − uncond) on a [uncond; cond] batch of 2B outputs (run_plan's and the pipelines' order). */
export function cfg(out, guidance) {
  const half = out.length / 2;
  return map(half, (j) => out[j] + guidance * (out[half + j] - out[j]));
}

function sigmaOf(alphas, t) {
  return Math.sqrt((1 - alphas[t]) / alphas[t]);
}

/**
 * A scheduler over one plan's timesteps. info: world.json's entry (scheduler class, ᾱ_t, flags).
 * Returns {initSigma, scaleInput(x, i), step(eps, i, x, noise) → {prev, x0, final}}: x0 is what run_plan's DT
 * records at step i (LCM's `denoised`, the others' `pred_original_sample`), final the image after the last step.
 */
export function makeScheduler(info, timesteps) {
  const kinds = { DDIMScheduler: ddim, LCMScheduler: lcm, EulerDiscreteScheduler: euler,
                  EulerAncestralDiscreteScheduler: eulerAncestral };
  const make = kinds[info.scheduler];
  if (!make) throw new Error(`no JavaScript scheduler for ${info.scheduler}; valid: ${Object.keys(kinds)}`);
  return make(info, timesteps);
}

function x0FromEps(x, eps, a) {
  const sa = Math.sqrt(a), sb = Math.sqrt(1 - a);
  return map(x.length, (j) => (x[j] - sb * eps[j]) / sa);
}

function ddim(info, ts) {
  const A = info.alphas_cumprod, stride = Math.floor(info.num_train_timesteps / ts.length);
  return {
    initSigma: 1, scaleInput: (x) => x,
    step(eps, i, x) {
      const t = ts[i], tp = t - stride;
      const a = A[t], ap = tp >= 0 ? A[tp] : info.final_alpha_cumprod;
      const x0 = x0FromEps(x, eps, a), sap = Math.sqrt(ap), sbp = Math.sqrt(1 - ap);
      const prev = map(x.length, (j) => sap * x0[j] + sbp * eps[j]);
      return { prev, x0, final: prev };
    },
  };
}

function lcm(info, ts) {
  const A = info.alphas_cumprod, n = ts.length;
  return {
    initSigma: 1, scaleInput: (x) => x,
    step(eps, i, x, noise) {
      const t = ts[i], tp = i + 1 < n ? ts[i + 1] : t;
      const a = A[t], ap = tp >= 0 ? A[tp] : info.final_alpha_cumprod;
      const s = t * info.timestep_scaling, d2 = SIGMA_DATA * SIGMA_DATA;
      const cSkip = d2 / (s * s + d2), cOut = s / Math.sqrt(s * s + d2);
      const x0 = x0FromEps(x, eps, a);
      const den = map(x.length, (j) => cOut * x0[j] + cSkip * x[j]);
      if (i === n - 1) return { prev: den, x0: den, final: den };
      const sap = Math.sqrt(ap), sbp = Math.sqrt(1 - ap);
      return { prev: map(x.length, (j) => sap * den[j] + sbp * noise[j]), x0: den, final: den };
    },
  };
}

function sigmas(info, ts) {
  const s = ts.map((t) => sigmaOf(info.alphas_cumprod, t));
  const max = Math.max(...s);
  const sp = info.timestep_spacing;
  return { s: [...s, 0], init: sp === "linspace" || sp === "trailing" ? max : Math.sqrt(max * max + 1) };
}

function euler(info, ts) {
  const { s, init } = sigmas(info, ts);
  return {
    initSigma: init,
    scaleInput: (x, i) => { const c = 1 / Math.sqrt(s[i] * s[i] + 1); return map(x.length, (j) => x[j] * c); },
    step(eps, i, x) {
      const sig = s[i], dt = s[i + 1] - sig;
      const x0 = map(x.length, (j) => x[j] - sig * eps[j]);
      const prev = map(x.length, (j) => x[j] + ((x[j] - x0[j]) / sig) * dt);
      return { prev, x0, final: prev };
    },
  };
}

function eulerAncestral(info, ts) {
  const { s, init } = sigmas(info, ts);
  return {
    initSigma: init,
    scaleInput: (x, i) => { const c = 1 / Math.sqrt(s[i] * s[i] + 1); return map(x.length, (j) => x[j] * c); },
    step(eps, i, x, noise) {
      const from = s[i], to = s[i + 1];
      const up = Math.sqrt((to * to * (from * from - to * to)) / (from * from));
      const down = Math.sqrt(to * to - up * up), dt = down - from;
      const x0 = map(x.length, (j) => x[j] - from * eps[j]);
      const prev = map(x.length, (j) => x[j] + ((x[j] - x0[j]) / from) * dt + noise[j] * up);
      return { prev, x0, final: prev };
    },
  };
}

/** Does step i of this scheduler draw noise (so the page hands it that step's shipped draw)? */
export function drawsNoise(info, i, n) {
  if (info.scheduler === "LCMScheduler") return i < n - 1;
  return info.scheduler === "EulerAncestralDiscreteScheduler";
}
