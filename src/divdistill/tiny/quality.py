"""The tiny world's quality measurements: `evaluate` (evaluator and teacher on ≥ 1,000 samples, into provenance), one
plan's FID_tiny/adherence/PRDC/diversity, and the cheap probes the trainers take half-way."""
from __future__ import annotations

import copy
import os
import statistics
import time

import torch

from .. import metrics as M
from ..plan import base
from ..io import update_metrics
from ..sampling import generate
from .evaluator import evaluator_accuracy, load_evaluator
from .world import sample_scenes, scenes_for_prompt

# Prompts for per-prompt diversity: each names some factors and leaves the rest free.
EVAL_PROMPTS = ("a red circle", "a large blue square on a dark background", "a triangle", "a shape",
                "a small green diamond", "a yellow shape", "a purple circle on a light background", "a large square",
                "a small orange triangle", "a diamond on a dark background")


def prompt_set(n: int, prompts=EVAL_PROMPTS) -> tuple[list[str], list[int]]:
    """n prompts cycling through `prompts`, grouped per prompt, with seeds 0..n-1."""
    per = max(2, n // len(prompts))
    ps = [p for p in prompts for _ in range(per)]
    return ps, list(range(len(ps)))


def per_prompt_diversity(evaluator, images: torch.Tensor, prompts: list[str]) -> dict[str, float]:
    """Table 3 per prompt: mean pairwise evaluator distance among one prompt's samples."""
    return M.per_prompt_diversity(M.features(evaluator, images), prompts)


def data_diversity(evaluator, prompts: list[str], seed: int = 0) -> dict[str, float]:
    """The data's own per-prompt diversity: scenes drawn with the named factors fixed, the others free."""
    out = {}
    for j, p in enumerate(dict.fromkeys(prompts)):
        n = prompts.count(p)
        out[p] = M.pairwise_diversity(M.features(evaluator, scenes_for_prompt(p, n, seed + j).images))
    return out


def evaluate_world(root: str, n: int = 1000, seed: int = 1234, device: str = "cpu") -> dict:
    """Evaluator accuracy; teacher adherence, diversity vs data, FID_tiny(teacher, data) vs FID_tiny(data A, B)."""
    from .loader import load_tiny_world

    world = load_tiny_world(root, device=device, students=[])
    ev = load_evaluator(world.extras["evaluator_root"]).to(device)
    ev_metrics = evaluator_accuracy(ev.cpu(), n=max(n, 1000), seed=seed)
    update_metrics(os.path.join(world.extras["evaluator_root"], "provenance.json"), ev_metrics)
    plan = base(world)
    t0 = time.time()
    ps, seeds = prompt_set(n)
    imgs = generate(world, plan, ps, seeds).images
    adh = M.adherence(ev, imgs, ps)
    div_t, div_d = per_prompt_diversity(ev, imgs, ps), data_diversity(ev, ps, seed)
    real = sample_scenes(n, seed=seed + 1)
    fake = generate(world, plan, real.prompts, [10_000 + i for i in range(n)]).images
    data_b = sample_scenes(n, seed=seed + 2).images
    fa, fr, fb = M.features(ev, fake), M.features(ev, real.images), M.features(ev, data_b)
    res = {
        "teacher_plan": f"DDIM trailing, {len(plan)} steps, CFG {plan.steps[0].guidance}",
        "n_samples": n, **adh,
        "diversity_teacher_mean": sum(div_t.values()) / len(div_t),
        "diversity_data_mean": sum(div_d.values()) / len(div_d),
        "diversity_per_prompt": {p: {"teacher": div_t[p], "data": div_d[p]} for p in div_t},
        "fid_tiny_teacher_vs_data": M.fid(ev, real.images, fake),
        "fid_tiny_data_a_vs_b": M.fid(ev, real.images, data_b),
        **{f"teacher_{k}": v for k, v in M.prdc(fr, fa).items()},
        **{f"data_b_{k}": v for k, v in M.prdc(fr, fb).items()},
        "eval_wall_time_s": time.time() - t0,
    }
    res["diversity_ratio_teacher_over_data"] = res["diversity_teacher_mean"] / res["diversity_data_mean"]
    update_metrics(os.path.join(root, "teacher", "provenance.json"), res)
    return {"evaluator": ev_metrics, "teacher": res}


def evaluate_plan(world, plan, evaluator, n: int, seed: int, n_div: int = 10) -> dict:
    """FID_tiny, adherence and PRDC against data for the same prompts; per-prompt pairwise diversity."""
    real = sample_scenes(n, seed=50_000 + seed)
    fake = generate(world, plan, real.prompts, [seed * 100_000 + i for i in range(n)], batch_size=128).images
    fr, ff = M.features(evaluator, real.images), M.features(evaluator, fake)
    ps = [p for p in EVAL_PROMPTS for _ in range(n_div)]
    div_imgs = generate(world, plan, ps, [seed * 100_000 + 90_000 + i for i in range(len(ps))], batch_size=128).images
    div = per_prompt_diversity(evaluator, div_imgs, ps)
    return {"fid": M.fid(evaluator, real.images, fake), "adherence": M.adherence(evaluator, fake, real.prompts)["adherence"],
            **M.prdc(fr, ff), "diversity": sum(div.values()) / len(div)}


def quick_eval(world, plan, n: int = 200, seeds=(0, 1, 2), n_div: int = 10) -> dict:
    """FID_tiny and EVAL_PROMPTS diversity of a plan: mean and seed-to-seed std over `seeds` (n samples each)."""
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
        from .loader import world_from_models

        dev = next(unet.parameters()).device
        w = world_from_models(copy.deepcopy(unet).float(), copy.deepcopy(enc).float().eval(), schedule, dev)
        with torch.no_grad():
            return quick_eval(w, base(w), n, seeds, n_div)
    return probe


ATTEMPT_METRICS = ("n_samples", "fid_tiny_teacher_vs_data", "fid_tiny_data_a_vs_b", "adherence", "adherence_bg",
                   "adherence_color", "adherence_shape", "adherence_size", "diversity_teacher_mean",
                   "diversity_data_mean", "diversity_ratio_teacher_over_data")


def attempt_record(teacher_dir: str, label: str) -> dict:
    """One evaluated teacher run, from its provenance: its recipe and the acceptance numbers (issue 19's remedies)."""
    import json

    from .teacher import TeacherConfig

    with open(os.path.join(teacher_dir, "provenance.json")) as f:
        prov = json.load(f)
    missing = [k for k in ATTEMPT_METRICS if k not in prov.get("metrics", {})]
    if missing:
        raise ValueError(f"{teacher_dir}: not evaluated yet (no {missing[0]} in its provenance); run "
                         f"`python -m divdistill.tiny evaluate --root <its world folder>` first")
    cfg = prov["config"]
    recipe = {k: cfg.get(k, d) for k, d in (("steps", None), ("batch", TeacherConfig.batch), ("lr", None),
                                             ("offset_noise", None), ("offset_noise_start", None), ("decay_steps", 0),
                                             ("snr_factor", None), ("seed", 0), ("init_from", None))}
    return {"label": label, "created": prov["created"], "git_commit": prov["git_commit"], "device": prov["device"],
            "wall_time_s": prov["wall_time_s"], "recipe": recipe,
            "metrics": {k: prov["metrics"][k] for k in ATTEMPT_METRICS}}


def record_attempt(variant_root: str, teacher_dir: str, label: str) -> list[dict]:
    """Add (or replace, by label) a teacher run's record in <variant_root>/teacher_attempts.json; returns them all."""
    import json

    from ..io import atomic_write_json

    path = os.path.join(variant_root, "teacher_attempts.json")
    rows = json.load(open(path)) if os.path.exists(path) else []
    rows = [r for r in rows if r["label"] != label] + [attempt_record(teacher_dir, label)]
    atomic_write_json(path, rows)
    return rows
