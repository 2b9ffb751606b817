"""Measure control transfer (paper Table 1, Fig. 2): attribute readouts with vs without each LoRA, slider sweeps."""
from __future__ import annotations

import os
import time

import numpy as np
import torch

from ... import commandline as C
from ...book import claims
from ...io import checkpoint_hashes
from ...plan import base, distilled, hybrid, with_adapters
from ...sampling import generate
from ...control.registry import ALL, TABLE_TARGETS, adapter_name, lora_dir, loras_root

FRACTION = 0.5  # C1 holds when every student's effect is ≥ this fraction of source→source (fixed before any result)
GEN_STEPS = 20  # base steps for every Table-1 generation (DDIM trailing, CFG 4); students run their own 4
SWEEP = (-2.0, -1.0, 0.0, 1.0, 2.0)
LATE_SCALE = 2.0  # slider scale of the late-start experiment
ATTRIBUTE = {"style": "P(outlined)", "concept": "P(star)", "slider": "size (px)", "slider_bg": "P(light background)"}
EVAL_PROMPTS = {
    "style": ("a red circle", "a blue square", "a green triangle", "a yellow diamond", "a shape",
              "a purple circle on a light background"),
    "concept": ("a star", "a red star", "a blue star", "a green star on a dark background", "a yellow star",
                "a star on a light background"),
    "slider": ("a red circle", "a blue square", "a green triangle", "a yellow diamond", "a shape",
               "a purple circle on a dark background"),
    "slider_bg": ("a red circle", "a blue square", "a green triangle", "a yellow diamond", "a shape",
                  "a large purple circle"),
}
# paper Table 1 (% change in CLIP score): the rows our controls are analogues of
PAPER_TABLE1 = {"style": ("Watercolor style", {"base": 34.3, "dmd2": 31.4, "lcm": 29.6, "turbo": 27.5,
                                               "lightning": 39.2}),
                "concept": ("Lego (customization)", {"base": 32.2, "dmd2": 26.8, "lcm": 26.0, "turbo": 30.3,
                                                     "lightning": 29.7}),
                "slider": ("Age slider", {"base": 20.4, "dmd2": 17.8, "lcm": 27.1, "turbo": 19.0, "lightning": 24.8})}


@torch.no_grad()
def attribute(evaluator, images: torch.Tensor, control: str) -> np.ndarray:
    """The evaluator's readout of a control's attribute per image: P(outlined), P(star), size in px, P(light bg)."""
    from ...tiny.world import BACKGROUNDS, SHAPES, STYLES

    images = images.clamp(-1, 1)
    if control == "slider":
        return evaluator.predict(images)["size"].cpu().numpy()
    head, idx = {"style": ("style", STYLES.index("outlined")), "concept": ("shape", SHAPES.index("star")),
                 "slider_bg": ("bg", BACKGROUNDS.index("light"))}[control]
    return evaluator.logits(images)[head].softmax(-1)[:, idx].cpu().numpy()


def model_plan(world, model: str, gen_steps: int = GEN_STEPS):
    """The plan a model samples with here: the base on `gen_steps` DDIM steps, a student on its own schedule."""
    return base(world, n=gen_steps) if model == world.base_name else distilled(world, model)


def units(control: str, n_seeds: int) -> tuple[list[str], list[int]]:
    """The evaluation units: every prompt of the control × n_seeds seeds (the same for every model and LoRA)."""
    ps = EVAL_PROMPTS[control]
    return [p for p in ps for _ in range(n_seeds)], [1000 + j for _ in ps for j in range(n_seeds)]


def readout_cache(world, path: str | None = None) -> C.Partial:
    """Readouts already measured (commandline.Partial at `path`; None: in memory), a killed `evaluate` resumes; they
    hold while GEN_STEPS, the sampling prior and the weights of the world, its evaluator and its LoRAs are unchanged
    (retraining one starts afresh)."""
    return C.Partial(path, {"kind": "control readouts", "gen_steps": GEN_STEPS, **world.prior_settings,
                            "world": checkpoint_hashes(world.extras.get("root")),
                            "evaluator": checkpoint_hashes(world.extras.get("evaluator_root")),
                            "loras": checkpoint_hashes(loras_root(world))})


def readout(world, evaluator, control: str, plan, n_seeds: int, adapters=None, start: int = 0,
            cache: C.Partial | None = None) -> np.ndarray:
    """Attribute readout per unit of `plan` with the given adapter scales (None: no LoRA) from step `start` on."""
    if adapters:
        plan = with_adapters(plan, adapters, start)
    prompts, seeds = units(control, n_seeds)
    key = f"{control}|{plan.name}|{plan.models}|{[s.adapters for s in plan]}|{n_seeds}"
    got = (cache or C.Partial(None, {})).get(key, lambda: [float(v) for v in attribute(
        evaluator, generate(world, plan, prompts, seeds).images, control)])
    return np.array(got)


def effect_row(control: str, source: str, target: str, without: np.ndarray, with_: np.ndarray,
               src_delta: np.ndarray) -> dict:
    """One Table-1 cell: mean readout without/with, the paired change, its % and its ratio to source→source (CIs)."""
    d = with_ - without
    pct = claims.bootstrap(np.stack([with_, without], 1),
                           lambda x: 100 * (x[:, 0].mean() - x[:, 1].mean()) / abs(x[:, 1].mean()))
    ratio = claims.bootstrap(np.stack([d, src_delta], 1), lambda x: x[:, 0].mean() / x[:, 1].mean())
    return {"control": control, "source": source, "target": target, "n": len(d), "without": float(without.mean()),
            "with": float(with_.mean()), "delta": claims.bootstrap(d).as_dict(), "pct_change": pct.as_dict(),
            "ratio": ratio.as_dict()}


def transfer_rows(world, evaluator, n_seeds: int, targets=TABLE_TARGETS, log=print, cache=None) -> list[dict]:
    """Every trained LoRA (base→*, and the reverse student→*) applied to every target, scale 1, same units."""
    without, rows = {}, []
    for source, control in ALL:
        name = adapter_name(source, control)
        from ...control.adapters import load_controls

        load_controls(world, lora_dir(world, source, control), name, models=targets)
        order = [source] + [t for t in targets if t != source]
        cells = {}
        for target in order:
            plan = model_plan(world, target)
            if (control, target) not in without:
                without[(control, target)] = readout(world, evaluator, control, plan, n_seeds, cache=cache)
            cells[target] = readout(world, evaluator, control, plan, n_seeds, {name: 1.0}, cache=cache)
            log(f"{source}→{target} {control}: {without[(control, target)].mean():.3f} → {cells[target].mean():.3f}")
        src_delta = cells[source] - without[(control, source)]
        rows += [effect_row(control, source, t, without[(control, t)], cells[t], src_delta) for t in order]
    return rows


def slider_sweep(world, evaluator, source: str, models, n_seeds: int, scales=SWEEP, control: str = "slider",
                 cache=None) -> dict:
    """Fig. 2-style sweep: the slider's attribute vs its scale on each model (same units); `monotone` per model."""
    name, out = adapter_name(source, control), {}
    for m in models:
        vals = [readout(world, evaluator, control, model_plan(world, m), n_seeds, {name: s}, cache=cache)
                for s in scales]
        ests = [claims.bootstrap(v).as_dict() for v in vals]
        means = [e["mean"] for e in ests]
        out[m] = {"scales": list(scales), "estimates": ests,
                  "monotone": bool(all(b > a for a, b in zip(means, means[1:])))}
    return out


def late_start(world, evaluator, student: str, source: str, n_seeds: int, starts=(0, 1, 2),
               scale: float = LATE_SCALE) -> list[dict]:
    """The paper's "apply after t" trick on a hybrid plan (base first step, student the rest): the slider at
    `scale` from step k on. Reads the size change and how far the object moved (layout kept?) vs no slider."""
    plan, name = hybrid(world, student, k=1, base_guidance=0.0), adapter_name(source, "slider")
    prompts, seeds = units("slider", n_seeds)
    ref = evaluator.predict(generate(world, plan, prompts, seeds).images.clamp(-1, 1))
    rows = []
    for k in starts:
        imgs = generate(world, with_adapters(plan, {name: scale}, k), prompts, seeds).images
        pred = evaluator.predict(imgs.clamp(-1, 1))
        moved = ((pred["x"] - ref["x"]) ** 2 + (pred["y"] - ref["y"]) ** 2).sqrt().cpu().numpy()
        rows.append({"start": k, "plan": plan.name, "scale": scale, "n": len(moved),
                     "size_change": claims.bootstrap((pred["size"] - ref["size"]).cpu().numpy()).as_dict(),
                     "moved_px": claims.bootstrap(moved).as_dict()})
    return rows


def composition(world, evaluator, models, n_seeds: int, style_scales=(0.0, 1.0), size_scales=(-2.0, 2.0)) -> list:
    """Two adapters at once, each with its own scale (the style LoRA and the size slider): both readouts per pair."""
    rows = []
    style, size = adapter_name("base", "style"), adapter_name("base", "slider")
    prompts, seeds = units("slider", n_seeds)
    for m in models:
        for a in style_scales:
            for b in size_scales:
                imgs = generate(world, with_adapters(model_plan(world, m), {style: a, size: b}), prompts, seeds).images
                rows.append({"model": m, "style scale": a, "size scale": b, "n": len(prompts),
                             "P(outlined)": float(attribute(evaluator, imgs, "style").mean()),
                             "size (px)": float(attribute(evaluator, imgs, "slider").mean())})
    return rows


def c1_verdicts(rows: list[dict], fraction: float = FRACTION) -> dict:
    """C1 per direction: every target's ratio to source→source has its CI above `fraction` (claims.verdict)."""
    out = {}
    for source in dict.fromkeys(r["source"] for r in rows):
        vs = [claims.verdict(claims.Estimate(**r["ratio"]), ">", margin=fraction)
              for r in rows if r["source"] == source and r["target"] != source]
        out[source] = claims.all_hold(vs)
    return out


def evaluate_all(world, n_seeds: int = 5, log=print) -> str:
    """The committed numbers: Table-1 analogue both ways, slider sweeps, late start, composition → transfer.json."""
    from ...io import atomic_write_json, provenance
    from ...tiny.evaluator import load_evaluator

    t0 = time.time()
    ev = load_evaluator(world.extras["evaluator_root"]).to(world.device)
    cache = readout_cache(world, os.path.join(loras_root(world), "transfer_cache.json"))
    rows = transfer_rows(world, ev, n_seeds, log=log, cache=cache)
    res = {"rows": rows, "verdicts": c1_verdicts(rows), "fraction": FRACTION, "gen_steps": GEN_STEPS,
           "sweep": {s: slider_sweep(world, ev, s, TABLE_TARGETS, max(2, n_seeds // 2), cache=cache)
                     for s in ("base", "dmd2")},
           "late_start": late_start(world, ev, "dmd2", "base", n_seeds),
           "composition": composition(world, ev, ("base", "dmd2"), max(2, n_seeds // 2))}
    meta = {"kind": "control-transfer", "n_seeds": n_seeds, "prompts": EVAL_PROMPTS, "targets": list(TABLE_TARGETS),
            "world_variant": world.extras.get("variant")}
    res["provenance"] = provenance(meta, 0, 0, time.time() - t0, {})
    path = os.path.join(loras_root(world), "transfer.json")
    atomic_write_json(path, res)
    from ...io import update_metrics

    for r in rows:  # each LoRA's provenance records its measured effect on the model it was trained on
        if r["target"] == r["source"]:
            update_metrics(os.path.join(lora_dir(world, r["source"], r["control"]), "provenance.json"),
                           {"effect_on_source": {"attribute": ATTRIBUTE[r["control"]], "without": r["without"],
                                                 "with": r["with"], "delta": r["delta"], "n": r["n"]}})
    return path
