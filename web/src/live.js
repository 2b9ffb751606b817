// The live tiny world (issue 18): the book's teacher and students, exported to ONNX at `make book`, run here by
// onnxruntime-web (wasm, on the reader's CPU). No server, no network beyond this site's own files.
import * as ort from "./ort.wasm.min.mjs";
import { makePlan, meanPairwiseCosineDistance, meanPairwiseDistance, runPlan } from "./engine.mjs";

const HERE = new URL("./", import.meta.url).href;
ort.env.wasm.wasmPaths = HERE;
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

const sessions = {};
let world = null, noise = null, D = 0;

async function fetchOk(name) {
  const r = await fetch(HERE + name);
  if (!r.ok) throw new Error(`could not load ${name} (HTTP ${r.status}); the live page needs the built site served over http`);
  return r;
}

function session(name) {
  sessions[name] ??= fetchOk(`${name}.onnx`).then((r) => r.arrayBuffer())
    .then((b) => ort.InferenceSession.create(b, { executionProviders: ["wasm"] }));
  return sessions[name];
}

async function load() {
  world = await (await fetchOk("world.json")).json();
  noise = new Float32Array(await (await fetchOk("noise.bin")).arrayBuffer());
  D = world.latent_shape.reduce((a, b) => a * b, 1);
  return world;
}

function tokens(prompt) {
  const ids = [world.vocab.indexOf("<bos>")];
  for (const w of prompt.toLowerCase().split(/\s+/).filter(Boolean)) {
    const i = world.vocab.indexOf(w);
    if (i < 2) throw new Error(`unknown word ${JSON.stringify(w)}; the tiny world's vocabulary: ${world.vocab.slice(2).join(" ")}`);
    ids.push(i);
  }
  if (ids.length > world.max_len) throw new Error(`prompt too long: at most ${world.max_len - 1} words`);
  while (ids.length < world.max_len) ids.push(world.vocab.indexOf("<pad>"));
  return ids;
}

async function encode(prompt) {
  const enc = await session("text_encoder");
  const ids = BigInt64Array.from([...tokens(prompt), ...tokens("")].map(BigInt));
  const out = await enc.run({ [enc.inputNames[0]]: new ort.Tensor("int64", ids, [2, world.max_len]) });
  const h = out[enc.outputNames[0]].data, n = h.length / 2;
  return { cond: h.slice(0, n), uncond: h.slice(n), dims: out[enc.outputNames[0]].dims.slice(1) };
}

function tile(row, times) {
  const out = new Float32Array(row.length * times);
  for (let i = 0; i < times; i++) out.set(row, i * row.length);
  return out;
}

function noiseFor(seeds, slot) {
  const slots = world.noise.shape[1], out = new Float32Array(seeds.length * D);
  seeds.forEach((s, b) => {
    const i = world.noise.seeds.indexOf(s);
    if (i < 0) throw new Error(`seed ${s} is not shipped; valid seeds: ${world.noise.seeds[0]}..${world.noise.seeds.at(-1)}`);
    out.set(noise.subarray((i * slots + slot) * D, (i * slots + slot + 1) * D), b * D);
  });
  return out;
}

/** The evaluator's features of B images (B·3·32·32 in [−1, 1]; the graph clamps) → B·128 (metrics.features). */
export async function features(images, batch) {
  if (!world) await load();
  const s = await session(world.evaluator.file.replace(/\.onnx$/, ""));
  const x = new ort.Tensor("float32", Float32Array.from(images), [batch, ...world.latent_shape]);
  return (await s.run({ [s.inputNames[0]]: x }))[s.outputNames[0]].data;
}

/** One run: {prompt, seeds, student, k, baseGuidance, base50} → images, x̂0 per step, NFE, milliseconds, and the
 * diversity readouts: the evaluator's (the book's metric) and the pixel one. */
export async function run(opts) {
  if (!world) await load();
  const plan = makePlan(world, opts);
  const l0 = performance.now();  // session creation (download + wasm set-up) happens once per model, untimed below
  const evaluator = world.evaluator.file.replace(/\.onnx$/, "");
  await Promise.all(["text_encoder", evaluator, ...new Set(plan.steps.map((s) => s.model))].map(session));
  const loadMs = performance.now() - l0, t0 = performance.now();
  const B = opts.seeds.length, text = await encode(opts.prompt);
  const [L, E] = text.dims;
  const cond = tile(text.cond, B), doubled = tile(new Float32Array([...text.uncond]), B);
  const both = new Float32Array(2 * B * L * E);
  both.set(doubled, 0); both.set(cond, B * L * E);
  const predict = async (model, xIn, t, batch, guided) => {
    const s = await session(model), n = guided ? 2 * batch : batch;
    const x = guided ? tile(xIn, 2) : xIn;
    const feeds = { x: new ort.Tensor("float32", x, [n, ...world.latent_shape]),
                    t: new ort.Tensor("int64", new BigInt64Array(n).fill(BigInt(t)), [n]),
                    c: new ort.Tensor("float32", guided ? both : cond, [n, L, E]) };
    return (await s.run(feeds))[s.outputNames[0]].data;
  };
  const res = await runPlan(world, plan, { xT: noiseFor(opts.seeds, 0), noise: (i) => noiseFor(opts.seeds, 1 + i),
                                           predict, batch: B });
  const ms = performance.now() - t0, e0 = performance.now();
  const feats = await features(res.images, B);  // the book's diversity, measured after the sampling run
  const diversity = meanPairwiseCosineDistance(feats, B);
  return { ...res, plan, ms, loadMs, evalMs: performance.now() - e0, features: feats, diversity,
           pixelDistance: meanPairwiseDistance(res.images, B) };
}

// ---- the page ----

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => (k === "text" ? (e.textContent = v) : e.setAttribute(k, v)));
  kids.forEach((k) => e.append(k));
  return e;
}

function select(id, label, options, value) {
  const s = el("select", { id });
  options.forEach(([v, t]) => s.append(el("option", { value: v, text: t })));
  s.value = value;
  return [el("label", { for: id, text: label }), s];
}

function draw(canvas, arrays, cols, scale = 3) {
  const side = world.latent_shape[1], gap = 2, rows = Math.ceil(arrays.length / cols);
  canvas.width = cols * (side + gap); canvas.height = rows * (side + gap);
  canvas.style.width = `${canvas.width * scale}px`;
  const ctx = canvas.getContext("2d"), hw = side * side;
  arrays.forEach((a, n) => {
    const img = ctx.createImageData(side, side);
    for (let p = 0; p < hw; p++) {
      for (let c = 0; c < 3; c++) img.data[4 * p + c] = Math.round(255 * Math.min(1, Math.max(0, (a[c * hw + p] + 1) / 2)));
      img.data[4 * p + 3] = 255;
    }
    ctx.putImageData(img, (n % cols) * (side + gap), Math.floor(n / cols) * (side + gap));
  });
}

function split(flat, B) {
  return Array.from({ length: B }, (_, b) => flat.subarray(b * D, (b + 1) * D));
}

function controls(root) {
  const w = world, none = [["", "(any)"]];
  const fields = [
    select("dd-size", "size", [...none, ...w.sizes.map((s) => [s, s])], ""),
    select("dd-style", "style", [...none, ...w.styles.map((s) => [s, s])], ""),
    select("dd-color", "colour", [...none, ...w.colors.map((s) => [s, s])], "red"),
    select("dd-shape", "shape", [["shape", "(any)"], ...w.shapes.map((s) => [s, s])], "circle"),
    select("dd-bg", "background", [...none, ...w.backgrounds.map((s) => [s, s])], ""),
    select("dd-student", "student", Object.keys(w.models).filter((m) => m !== w.base).map((m) => [m, m]), "dmd2"),
    select("dd-k", "k (base steps)", [0, 1, 2, 3, 4].map((k) => [k, k === 0 ? "0 = student alone" :
      k === 4 ? "4 = base on the student's sampler" : `${k}`]), "0"),
    select("dd-cfg", "base CFG", [0, 1.5, 2, 3, 4, 6, 8].map((g) => [g, g === 0 ? "0 (off, the paper's)" : `${g}`]), "0"),
    select("dd-first", "first seed", w.noise.seeds.slice(0, w.noise.seeds.length - 15).map((s) => [s, s]), "0"),
    select("dd-n", "images", [4, 8, 16].map((n) => [n, n]), "16"),
  ];
  const box = el("div", { class: "dd-controls" });
  fields.forEach(([l, s]) => box.append(el("span", { class: "dd-field" }, l, s)));
  root.append(box);
}

function prompt() {
  const v = (id) => document.getElementById(id).value;
  const words = ["a", v("dd-size"), v("dd-style"), v("dd-color"), v("dd-shape")].filter(Boolean);
  if (v("dd-bg")) words.push("on", "a", v("dd-bg"), "background");
  return words.join(" ");
}

function options(base50 = false) {
  const v = (id) => document.getElementById(id).value, first = Number(v("dd-first"));
  return { prompt: prompt(), student: v("dd-student"), k: Number(v("dd-k")), baseGuidance: Number(v("dd-cfg")),
           seeds: Array.from({ length: Number(v("dd-n")) }, (_, i) => first + i), base50 };
}

async function show(ui, base50) {
  const opts = options(base50);
  if (base50 && opts.baseGuidance === 0) opts.baseGuidance = world.models[world.base].guidance;
  ui.status.textContent = `running ${base50 ? "the base's 50 steps" : "…"}`;
  try {
    const r = await run(opts);
    const B = opts.seeds.length, S = r.dt.length;
    ui.status.textContent = `“${opts.prompt}” · ${r.plan.name} · seeds ${opts.seeds[0]}–${opts.seeds.at(-1)} · ` +
      `NFE ${r.nfe} per image · ${r.ms.toFixed(0)} ms for ${B} images (+ ${r.evalMs.toFixed(0)} ms evaluator)` +
      (r.loadMs > 50 ? ` (+ ${(r.loadMs / 1000).toFixed(1)} s loading the models, once)` : "");
    ui.diversity.textContent = B < 2 ? "diversity: needs at least 2 images" :
      `evaluator feature distance, the book's diversity: ${r.diversity.toFixed(3)}`;
    ui.pixel.textContent = B < 2 ? "" : `mean pairwise pixel distance (not the book's metric; can disagree with it): ` +
      `${r.pixelDistance.toFixed(3)}`;
    ui.status.dataset.ms = r.ms.toFixed(1);
    draw(ui.grid, split(r.images, B), Math.min(B, 8), 3);
    const rows = S <= 8 ? [...Array(S).keys()] : [...Array(10).keys()].map((i) => Math.round((i * (S - 1)) / 9));
    ui.dtLabel.textContent = `x̂0 at each step (rows: t = ${rows.map((i) => r.plan.steps[i].t).join(", ")}; ` +
      `models: ${rows.map((i) => r.plan.steps[i].model).join(", ")})`;
    draw(ui.dt, rows.flatMap((i) => split(r.dt[i], B)), B, 2);
  } catch (e) {
    ui.status.textContent = `error: ${e.message}`;
    ui.status.classList.add("dd-error");
    throw e;
  }
}

async function main() {
  const root = document.getElementById("dd-live");
  if (!root) return;
  try {
    await load();
  } catch (e) {
    root.textContent = `The live page could not start: ${e.message}`;
    root.classList.add("dd-error");
    return;
  }
  root.textContent = "";  // the loading note
  controls(root);
  const again = el("button", { id: "dd-run", text: "Run" });
  const base = el("button", { id: "dd-base50",
                              text: "Run the base alone: 50 DDIM steps, 100 NFE (CFG: the selector's, 4 when off)" });
  const ui = { status: el("p", { id: "dd-status", class: "dd-status" }), grid: el("canvas", { id: "dd-grid" }),
               diversity: el("p", { id: "dd-diversity", class: "dd-diversity" }),
               pixel: el("p", { id: "dd-pixel", class: "dd-pixel" }),
               dt: el("canvas", { id: "dd-dt" }), dtLabel: el("p", { class: "dd-dtlabel" }) };
  root.append(el("div", { class: "dd-buttons" }, again, base), ui.status, ui.diversity, ui.pixel, ui.grid,
              ui.dtLabel, ui.dt);
  let queue = Promise.resolve();
  const go = (b50) => (queue = queue.then(() => show(ui, b50)).catch(() => {}));
  again.onclick = () => go(false);
  base.onclick = () => go(true);
  root.querySelectorAll("select").forEach((s) => s.addEventListener("change", () => go(false)));
  window.ddLive = { run, features, world };
  await go(false);
  root.dataset.ready = "1";
}

main();
