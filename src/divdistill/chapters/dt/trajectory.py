"""Early steps decide diversity (paper Fig. 5): distance(DT_t, final) curves, bootstrap bands and commit points.

Generic over scales: perceptual features and the optional layout read-out are passed in as functions (tiny: the
evaluator; sdxl: DreamSim), so nothing here knows the tiny world.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ... import paper
from ... import plan as P
from ...book.claims import Estimate, bootstrap
from ...metrics import commit_index, dt_distances
from ...sampling import run_plan

PAPER_STUDENTS = ("dmd2", "lcm", "turbo", "lightning")  # the paper's four SDXL students (tiny analogues share names)
CONTROL = "base on {}'s sampler"
# Stated before any curve is seen: a trajectory has committed once its x̂0 stays closer to its final image than half
# the distance between two final images of the same prompt (the base's within-prompt diversity, Table 3's metric).
THRESHOLD_FRACTION = 0.5
SDXL_PROMPTS = tuple(paper.TABLE3_PROMPTS.values())  # the paper's Table 3 prompts, in the one wording


@dataclass
class Curves:
    """One plan's Fig. 5 data: distance(DT_t, final) per step and (prompt, seed) pair."""

    name: str
    timesteps: list[int]
    fraction: list[float]  # fraction of the plan's steps elapsed after each step
    dist: np.ndarray  # (S, N) perceptual distance of step t's x̂0 to the final image
    layout: np.ndarray | None = None  # (S, N) distance of the layout read-out (tiny: x, y, size, background)
    final_feats: np.ndarray | None = None  # (N, D) features of the final images (not saved)
    final_layout: np.ndarray | None = None  # (N, K) layout read-out of the final images (not saved)

    def as_dict(self) -> dict:
        d = {"name": self.name, "timesteps": self.timesteps, "fraction": self.fraction, "dist": _rows(self.dist)}
        if self.layout is not None:
            d["layout"] = _rows(self.layout)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Curves":
        lay = _unrows(d["layout"]) if "layout" in d else None
        return cls(d["name"], list(d["timesteps"]), list(d["fraction"]), _unrows(d["dist"]), lay)


def _rows(a: np.ndarray) -> list[str]:
    """(S, N) → one line of space-separated values per step (compact in indented JSON)."""
    return [" ".join(f"{v:.5f}" for v in row) for row in np.asarray(a)]


def _unrows(rows: list[str]) -> np.ndarray:
    return np.array([[float(v) for v in r.split()] for r in rows], dtype=np.float64)


def curve_plans(world, students=None, base_steps: int | None = None) -> dict:
    """The base (its registry's steps unless `base_steps`), each student on its own schedule, and the sampler control
    (the base on each paper student's own sampler and grid at the base's CFG), keyed by display name."""
    students = list(world.students if students is None else students)
    plans = {"base": P.base(world, base_steps)}
    plans.update({s: P.distilled(world, s) for s in students})
    for s in students:
        if s in PAPER_STUDENTS:
            plans[CONTROL.format(s)] = P.on_sampler(world, s)  # the base's own CFG
    return plans


def sdxl_pairs(n_samples: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """About n_samples (prompt, seed) pairs from the paper's Table 3 prompts, at least 2 seeds per prompt."""
    n_prompts = min(len(SDXL_PROMPTS), max(1, n_samples // 2))
    return pairs(SDXL_PROMPTS[:n_prompts], max(2, -(-n_samples // n_prompts)), seed)


def pairs(prompts, n_seeds: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """(prompt, seed) pairs grouped per prompt: every prompt with seeds seed..seed+n_seeds-1."""
    ps = [p for p in prompts for _ in range(n_seeds)]
    return ps, [seed + i % n_seeds for i in range(len(ps))]


def evaluator_layout(evaluator):
    """A layout read-out from an evaluator with factor heads (the tiny one): images → (B, 4) = x, y, size as
    fractions of the image side, background class (0/1)."""
    @torch.no_grad()
    def read(images: torch.Tensor) -> torch.Tensor:
        dev = next(evaluator.parameters()).device
        side = images.shape[-1]
        out = []
        for i in range(0, len(images), 512):
            p = evaluator.predict(images[i:i + 512].to(dev).float().clamp(-1, 1))
            out.append(torch.stack([p["x"] / side, p["y"] / side, p["size"] / side, p["bg"].float()], -1).cpu())
        return torch.cat(out)
    return read


def _layout_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of layout read-outs (…, K) in [0, 1] units → (…)."""
    return (a - b).abs().mean(-1)


@torch.no_grad()
def plan_curves(world, plan, prompts, seeds, features, layout=None, batch_size: int = 64, name=None) -> Curves:
    """Run a plan with DT capture and measure distance(DT_t, final) for every step and pair.

    Args:
        world, plan, prompts, seeds: as `run_plan`.
        features: images (B, 3, H, W) → (B, D) perceptual features (tiny evaluator, DreamSim).
        layout: optional images → (B, K) layout read-out in [0, 1] units.
        batch_size: images per `run_plan` call (results do not depend on it).
    Returns:
        Curves with dist (S, N) and, with `layout`, the layout distance (S, N).
    """
    prompts, seeds = list(prompts), list(seeds)
    dists, lays, finals, flay = [], [], [], []
    for i in range(0, len(prompts), batch_size):
        res = run_plan(world, plan, prompts[i:i + batch_size], seeds[i:i + batch_size])
        d, ff = result_distances(res, features)
        dists.append(d)
        finals.append(ff)
        if layout is not None:
            s, b = res.dt.shape[:2]
            lay = layout(res.dt.flatten(0, 1)).view(s, b, -1)  # (S, B, K)
            fl = layout(res.images)  # (B, K)
            lays.append(_layout_distance(lay, fl))
            flay.append(fl)
    fr = [(i + 1) / len(plan) for i in range(len(plan))]
    return Curves(name or plan.name, plan.timesteps, fr, torch.cat(dists, 1).numpy().astype(np.float64),
                  torch.cat(lays, 1).numpy().astype(np.float64) if layout is not None else None,
                  torch.cat(finals).numpy(), torch.cat(flay).numpy() if layout is not None else None)


@torch.no_grad()
def result_distances(res, features) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance of each step's x̂0 to the final image (S, B), final-image features (B, D)) of a captured Result."""
    s, b = res.dt.shape[:2]
    f = features(res.dt.flatten(0, 1)).view(s, b, -1)  # (S, B, D)
    ff = features(res.images)  # (B, D)
    return dt_distances(f, ff), ff


def pair_index(meta: dict, prompt: str, seed: int) -> int | None:
    """Position of (prompt, seed) among a curves file's pairs, or None."""
    for i, (p, s) in enumerate(zip(meta["prompts"], meta["seeds"])):
        if p == prompt and int(s) == int(seed):
            return i
    return None


def sdxl_models(sources=None) -> tuple[str, ...]:
    """The sdxl students to load: all four paper students, or those that `sources` (local checkpoints) provide."""
    from ...sdxl import SDXL_MODELS

    if sources is None:
        return tuple(SDXL_MODELS)
    return tuple(m for m in SDXL_MODELS if m in sources or f"{m}_lora" in sources)


def reference_distance(final_feats: np.ndarray, prompts) -> float:
    """Mean within-prompt pairwise cosine distance of final images (Table 3's diversity): the scale thresholds use."""
    f = torch.nn.functional.normalize(torch.as_tensor(np.asarray(final_feats), dtype=torch.float32), dim=-1)
    vals = []
    for p in dict.fromkeys(prompts):
        idx = [i for i, q in enumerate(prompts) if q == p]
        if len(idx) > 1:
            g = f[idx]
            vals.append(float((1 - g @ g.T).sum() / (len(idx) * (len(idx) - 1))))
    if not vals:
        raise ValueError("a reference distance needs at least one prompt with two or more seeds")
    return float(np.mean(vals))


def reference_layout(layout_finals: np.ndarray, prompts) -> float:
    """Mean within-prompt pairwise layout distance of final images (layout read-outs (N, K))."""
    lf = torch.as_tensor(np.asarray(layout_finals), dtype=torch.float32)
    vals = []
    for p in dict.fromkeys(prompts):
        g = lf[[i for i, q in enumerate(prompts) if q == p]]
        if len(g) > 1:
            d = _layout_distance(g[:, None], g[None])
            vals.append(float(d.sum() / (len(g) * (len(g) - 1))))
    return float(np.mean(vals))


def commit(c: Curves, threshold: float, attr: str = "dist", n_boot: int = 1000, seed: int = 0) -> dict:
    """Commit point of the mean curve over pairs (first step after which it stays below `threshold`) with 95%
    bootstrap CIs over (prompt, seed) pairs: as step index, fraction of steps elapsed and timestep t."""
    d = getattr(c, attr).T  # (N, S)
    fr = np.append(np.asarray(c.fraction), 1.0)
    ts = np.append(np.asarray(c.timesteps, dtype=np.float64), 0.0)  # never committed before the end: t = 0
    k = lambda v: commit_index(v.mean(0), threshold)  # noqa: E731
    return {"step": bootstrap(d, k, n_boot, seed), "fraction": bootstrap(d, lambda v: fr[k(v)], n_boot, seed),
            "t": bootstrap(d, lambda v: ts[k(v)], n_boot, seed), "n": d.shape[0]}


def commit_t_diff(a: Curves, b: Curves, threshold: float, attr: str = "dist", n_boot: int = 1000,
                  seed: int = 0) -> Estimate:
    """Paired bootstrap (same pairs) of commit t(a) − commit t(b): > 0 means `a` commits earlier (at more noise)."""
    da, db = getattr(a, attr).T, getattr(b, attr).T  # (N, Sa), (N, Sb)
    if len(da) != len(db):
        raise ValueError(f"paired commit points need the same pairs, got {len(da)} and {len(db)}")
    ta = np.append(np.asarray(a.timesteps, dtype=np.float64), 0.0)
    tb = np.append(np.asarray(b.timesteps, dtype=np.float64), 0.0)
    sa = da.shape[1]

    def stat(v):  # v: (N, Sa + Sb) resampled pairs
        return ta[commit_index(v[:, :sa].mean(0), threshold)] - tb[commit_index(v[:, sa:].mean(0), threshold)]
    return bootstrap(np.concatenate([da, db], 1), stat, n_boot, seed)


def band(values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95):
    """Mean over pairs and its percentile-bootstrap band per step: values (S, N) → (mean, lo, hi), each (S,)."""
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boots = v[:, rng.integers(0, v.shape[1], size=(n_boot, v.shape[1]))].mean(-1)  # (S, n_boot)
    a = (1 - level) / 2
    return v.mean(1), np.quantile(boots, a, axis=1), np.quantile(boots, 1 - a, axis=1)


def rebound(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """"Appears mid-way, gone at the end": per pair, the largest rise of distance(DT_t, final) above its running
    minimum before the final step, and the step where it peaks; dist (S, N) → ((N,), (N,))."""
    d = np.asarray(dist)[:-1]  # the last step is the final image itself
    rise = d - np.minimum.accumulate(d, axis=0)  # (S-1, N)
    return rise.max(0), rise.argmax(0)


def fmt_t(e: Estimate) -> str:
    """A timestep estimate as integers: "879 [759, 959]"."""
    return f"{e.mean:.0f} [{e.lo:.0f}, {e.hi:.0f}]"


def fmt_pct(e: Estimate) -> str:
    """A fraction estimate in percent: "14% [6, 26]"."""
    return _pct(e)


def _pct(e: Estimate) -> str:
    return f"{100 * e.mean:.0f}% [{100 * e.lo:.0f}, {100 * e.hi:.0f}]"
