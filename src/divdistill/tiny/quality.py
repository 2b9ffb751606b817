"""The tiny world's quality measurements: `evaluate` (evaluator and teacher on ≥ 1,000 samples, into provenance), one
plan's FID_tiny/adherence/PRDC/diversity, and the cheap probes the trainers take half-way."""
from __future__ import annotations

import copy
import os
import statistics
import time

import torch
import torch.nn.functional as F

from .. import metrics as M
from ..plan import base
from ..io import update_metrics
from ..sampling import generate
from .evaluator import evaluator_accuracy, load_evaluator
from .schedule import load_schedule, prior_of
from .world import sample_scenes, scenes_for_prompt

# Prompts for per-prompt diversity: each names some factors and leaves the rest free.
EVAL_PROMPTS = ("a red circle", "a large blue square on a dark background", "a triangle", "a shape",
                "a small green diamond", "a yellow shape", "a purple circle on a light background", "a large square",
                "a small orange triangle", "a diamond on a dark background")


# Grain on flat backgrounds (issue 19's "no visible grain"), in 8-bit levels of RMS high-pass: the data's own
# backgrounds measure ≤ 0.04; 2 levels (0.8% of the range) is about the eye's contrast threshold for fine patterns.
GRAIN_VISIBLE = 2.0


def flat_background(images: torch.Tensor) -> torch.Tensor:
    """Each image's flat background pixels: (B, 1, H, W) bool. The background colour is the median of the outer ring
    of pixels; a pixel is flat background when its 5×5 neighbourhood's mean stays within 0.15 (summed over channels,
    in [-1, 1] units) of it, and so do its neighbours' within 2 pixels (edges and the shape excluded)."""
    x = images.float().clamp(-1, 1)  # (B, C, H, W)
    ring = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)  # (B, C, 4W)
    bg = ring.median(dim=-1).values[..., None, None]  # (B, C, 1, 1)
    near = (F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, 1) - bg).abs().sum(1, keepdim=True)
    return F.max_pool2d(near, 5, 1, 2) < 0.15


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """x minus its 3×3 mean (replicate-padded): the finest scale, where grain lives. (B, C, H, W)."""
    return x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)


def background_grain(images: torch.Tensor) -> torch.Tensor:
    """Per image, the RMS of the 3×3 high-pass on its flat background pixels (`flat_background`), in 8-bit levels:
    (B,), NaN where an image has none."""
    flat = flat_background(images).float()
    ms = (high_pass(images.float().clamp(-1, 1)).pow(2).mean(1, keepdim=True) * flat).sum((1, 2, 3)) \
        / flat.sum((1, 2, 3))
    return ms.sqrt() * 127.5  # 0/0 → NaN: no flat background


def grain_stats(images: torch.Tensor) -> dict:
    """Median and 90th percentile of `background_grain`, and the fraction of images over GRAIN_VISIBLE."""
    g = background_grain(images)
    g = g[~g.isnan()]
    if g.numel() == 0:
        raise ValueError("no image has a flat background to measure grain on")
    return {"grain_median": float(g.median()), "grain_p90": float(g.quantile(0.9)),
            "grain_visible_frac": float((g > GRAIN_VISIBLE).float().mean()), "grain_n": int(g.numel())}


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


def fid_seeds(n: int) -> list[int]:
    """The per-image seeds of the teacher evaluation's FID set (`fid_sample`)."""
    return [10_000 + i for i in range(n)]


def fid_sample(world, plan, n: int, seed: int):
    """The teacher evaluation's FID set: n data scenes (seed + 1) and the plan's samples for their prompts."""
    real = sample_scenes(n, seed=seed + 1)
    return real, generate(world, plan, real.prompts, fid_seeds(n)).images


def evaluate_world(root: str, n: int = 1000, seed: int = 1234, device: str = "cpu") -> dict:
    """Evaluator accuracy; teacher adherence, diversity vs data, FID_tiny(teacher, data) vs FID_tiny(data A, B), and
    grain."""
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
    real, fake = fid_sample(world, plan, n, seed)
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
        **_grain_metrics(real.images, fake),
        "eval_wall_time_s": time.time() - t0,
    }
    res["diversity_ratio_teacher_over_data"] = res["diversity_teacher_mean"] / res["diversity_data_mean"]
    update_metrics(os.path.join(root, "teacher", "provenance.json"), res)
    return {"evaluator": ev_metrics, "teacher": res}


def _grain_metrics(data: torch.Tensor, teacher: torch.Tensor) -> dict:
    return {**{f"teacher_{k}": v for k, v in grain_stats(teacher).items()},
            **{f"data_{k}": v for k, v in grain_stats(data).items()}}


def evaluate_grain(root: str, n: int = 1000, seed: int = 1234, device: str = "cpu") -> dict:
    """Only the grain of `evaluate_world`, on the same FID set (a teacher evaluated before grain was measured)."""
    from .loader import load_tiny_world

    world = load_tiny_world(root, device=device, students=[])
    real, fake = fid_sample(world, base(world), n, seed)
    res = _grain_metrics(real.images, fake)
    update_metrics(os.path.join(root, "teacher", "provenance.json"), res)
    return res


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
OPTIONAL_METRICS = ("teacher_grain_median", "teacher_grain_p90", "teacher_grain_visible_frac")  # measured later


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
    recipe["prior"] = prior_of(load_schedule(teacher_dir))  # what its evaluation sampled from
    return {"label": label, "created": prov["created"], "git_commit": prov["git_commit"], "device": prov["device"],
            "wall_time_s": prov["wall_time_s"], "recipe": recipe,
            "metrics": {k: prov["metrics"][k] for k in ATTEMPT_METRICS + OPTIONAL_METRICS if k in prov["metrics"]}}


def record_attempt(variant_root: str, teacher_dir: str, label: str) -> list[dict]:
    """Add (or replace in place, by label) a teacher run's record in <variant_root>/teacher_attempts.json; returns
    them all."""
    import json

    from ..io import atomic_write_json

    path = os.path.join(variant_root, "teacher_attempts.json")
    rows = json.load(open(path)) if os.path.exists(path) else []
    new = attempt_record(teacher_dir, label)
    at = next((i for i, r in enumerate(rows) if r["label"] == label), len(rows))  # a replaced record keeps its place
    rows = rows[:at] + [new] + rows[at + 1:]
    atomic_write_json(path, rows)
    return rows
