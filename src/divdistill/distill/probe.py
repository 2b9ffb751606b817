"""Cheap training probes (issue 8): FID_tiny and diversity half-way and at the end, to judge a plateau honestly."""
from __future__ import annotations

import copy
import statistics

import torch

from ..plan import base, distilled
from .evaluate import evaluate_plan


def quick_eval(world, plan, n: int = 200, seeds=(0, 1, 2), n_div: int = 10) -> dict:
    """FID_tiny and EVAL_PROMPTS diversity of a plan: mean and seed-to-seed std over `seeds` (n samples each)."""
    from ..tiny.evaluator import load_evaluator

    ev = load_evaluator(world.extras["evaluator_root"]).to(world.device)
    per = [evaluate_plan(world, plan, ev, n, s, n_div=n_div) for s in seeds]
    out = {"n": n, "seeds": len(seeds)}
    for k in ("fid", "diversity", "adherence"):
        vals = [r[k] for r in per]
        out[k], out[f"{k}_std"] = statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0
    return out


def teacher_probe(n: int = 200, seeds=(0, 1, 2), n_div: int = 10):
    """probe(ema_unet, ema_enc, schedule) for train_teacher: the teacher's 50-step plan on a fp32 copy."""
    def probe(unet, enc, schedule):
        from ..tiny.loader import world_from_models

        dev = next(unet.parameters()).device
        w = world_from_models(copy.deepcopy(unet).float(), copy.deepcopy(enc).float().eval(), schedule, dev)
        with torch.no_grad():
            return quick_eval(w, base(w), n, seeds, n_div)
    return probe


def student_probe(T, unet, name: str, scheduler: str, timesteps, guidance: float = 0.0, n: int = 200,
                  seeds=(0, 1, 2), overrides: dict | None = None):
    """probe(step) for fit: the student's own plan, evaluated on a copy of its current weights."""
    def probe(step):
        from ..tiny.loader import world_from_models

        w = world_from_models(T.unet, T.enc, T.schedule, T.device,
                              {name: (copy.deepcopy(unet).float().eval(), scheduler, timesteps, guidance, overrides or {})})
        with torch.no_grad():
            return quick_eval(w, distilled(w, name), n, seeds)
    return probe


def training_record(res: dict, probe=None, key: str | None = None) -> dict:
    """What a trainer adds to provenance: the loss curve, the half-way probes and (with a probe) the final metrics."""
    from .loop import loss_curve

    rec = {"loss_curve": loss_curve(res["losses"], key), "probes": {str(k): v for k, v in res["probes"].items()}}
    if probe is not None:
        rec["final_probe"] = probe(len(res["losses"]))
    return rec


def plateau_rows(variants: dict[str, str]) -> list[dict]:
    """Issue 8's plateau test per student: half-way vs final training probe (FID_tiny, diversity), plateau when both
    changed by less than their seed-to-seed std. `variants`: {variant: world folder}; students without probes skip."""
    import json
    import os

    rows = []
    for v, root in variants.items():
        sdir = os.path.join(root, "students")
        for s in sorted(os.listdir(sdir)) if os.path.isdir(sdir) else []:
            path = os.path.join(sdir, s, "provenance.json")
            if not os.path.exists(path):
                continue
            with open(path) as f:
                rec = json.load(f)
            m = rec.get("metrics", {})
            if not (m.get("final_probe") and m.get("probes")):
                continue
            half, fin = next(iter(m["probes"].values())), m["final_probe"]
            flat = {k: abs(fin[k] - half[k]) < max(fin[f"{k}_std"], half[f"{k}_std"]) for k in ("fid", "diversity")}
            rows.append({"variant": v, "student": s, "iterations": rec["steps"], "batch": rec["config"].get("batch"),
                         "device": rec.get("device"), "wall (s)": round(rec["wall_time_s"]),
                         **{f"{lab} {when}": f"{d[k]:.{p}f} ± {d[f'{k}_std']:.{p}f}" for k, lab, p in
                            (("fid", "FID", 1), ("diversity", "diversity", 3)) for when, d in
                            (("half-way", half), ("final", fin))},
                         "plateau (|Δ| < seed std)": flat["fid"] and flat["diversity"]})
    return rows
