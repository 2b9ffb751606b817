"""DDIL Tables 3–5 in the tiny world: the students' table beside the paper's, D2/D3 verdicts, our open choices, and
a live run of DDIL's training-data sampler (Sec. 4.1, App. A, App. D)."""
from __future__ import annotations

import json
import math
import os

import torch

from ...book.claims import Estimate, all_hold, bootstrap_diff, entry, verdict
from ...paper import DDIL_TABLE, OURS_FOR_DDIL_ROW

from .measure import COLUMNS  # noqa: E402 (one column list for the table and its report)
ORDER = ("pd", "pd_ddil", "lcm", "lcm_reflected", "lcm_ddil", "lcm_ddil_reflected", "dmd2", "dmd2_ddil")
D2_PAIRS = {"PD": ("pd", "pd_ddil"), "LCM": ("lcm", "lcm_ddil"), "DMD2": ("dmd2", "dmd2_ddil")}
D3_PAIRS = (("lcm", "lcm_reflected"), ("lcm_ddil", "lcm_ddil_reflected"))
PAPER_COLS = {"fid5k": "FID@5K", "clip": "CLIP", "precision": "prec.", "recall": "rec.", "density": "dens.",
              "coverage": "cov."}


def eval_path(world) -> str:
    """The committed students' evaluation of a tiny world (`python -m divdistill.chapters.ddil`)."""
    return os.path.join(world.extras["root"], "students", "eval.json")


def load_eval(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def _paper_by_ours() -> dict:
    by_row = {r["model"]: r for r in DDIL_TABLE}
    return {ours: by_row[row] for row, ours in OURS_FOR_DDIL_ROW.items()}


def table_rows(rows: list[dict]) -> list[dict]:
    """The paper's table format: teacher, control rows, then PD/LCM/DMD2 plain, +reflected, +DDIL; paper beside."""
    paper, out = _paper_by_ours(), []
    known = ["teacher"] + control_names(rows) + list(ORDER)
    by = {r["model"]: r for r in rows}
    for name in known:
        if name not in by:
            continue
        r = by[name]
        row = {"model": name, "steps": r.get("steps"), "NFE": r.get("nfe")}
        row.update({c: f"{r[c]:.3f} ± {r.get(c + '_std', float('nan')):.3f}" for c in COLUMNS if c in r})
        p = paper.get(name, {})
        row.update({v: p.get(k) for k, v in PAPER_COLS.items()})
        row["paper row"] = next((k for k, v in OURS_FOR_DDIL_ROW.items() if v == name), "")
        out.append(row)
    return out


def control_names(rows: list[dict]) -> list[str]:
    """Rows of the teacher on a student's own sampler and grid (issue 8's control rows), by their names."""
    return [r["model"] for r in rows if "sampler" in r["model"] or "control" in r["model"]]


def effect(by: dict, a: str, b: str, col: str) -> Estimate | None:
    """b − a for one metric with a 95% CI: a paired bootstrap over seeds when the JSON keeps per-seed values
    (`<col>_seeds`), else Welch's t-interval from the seeds' mean and std."""
    if a not in by or b not in by or col not in by[a] or col not in by[b]:
        return None
    ra, rb = by[a], by[b]
    if f"{col}_seeds" in ra and f"{col}_seeds" in rb:
        return bootstrap_diff(rb[f"{col}_seeds"], ra[f"{col}_seeds"], paired=len(ra[f"{col}_seeds"]) == len(rb[f"{col}_seeds"]))
    from scipy import stats

    na, nb = int(ra.get("seeds", 1)), int(rb.get("seeds", 1))
    va, vb = ra.get(f"{col}_std", 0.0) ** 2 / na, rb.get(f"{col}_std", 0.0) ** 2 / nb
    d, se = rb[col] - ra[col], math.sqrt(va + vb)
    if na < 2 or nb < 2 or se == 0:
        return Estimate(d, float("nan"), float("nan"), min(na, nb))
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    h = float(stats.t.ppf(0.975, df)) * se
    return Estimate(d, d - h, d + h, min(na, nb))


def effect_rows(rows: list[dict]) -> list[dict]:
    """Each change the paper reports (plain → +DDIL, → +reflected): ΔFID and Δcoverage with CIs, the paper's beside."""
    by, paper, out = {r["model"]: r for r in rows}, _paper_by_ours(), []
    for a, b in [*D2_PAIRS.values(), *D3_PAIRS]:
        if a not in by or b not in by:
            continue
        fid, cov = effect(by, a, b, "fid"), effect(by, a, b, "coverage")
        pa, pb = paper.get(a), paper.get(b)
        out.append({"change": f"{a} → {b}", "ΔFID [95% CI]": str(fid), "FID down?": verdict(fid, "<"),
                    "Δcoverage [95% CI]": str(cov), "coverage up?": verdict(cov, ">"),
                    "ΔFID@5K": round(pb["fid5k"] - pa["fid5k"], 2) if pa and pb else None,
                    "Δcov.": round(pb["coverage"] - pa["coverage"], 3) if pa and pb else None})
    return out


def d2_d3_entries(rows: list[dict], scale: str, variant: str | None, note: str = "") -> list[dict]:
    """D2 per method (FID down and coverage up) and D3 (reflected lowers FID); holds from `verdict` on the CIs."""
    by, paper, out = {r["model"]: r for r in rows}, _paper_by_ours(), []
    where = f"{variant} world; " if variant else ""
    for method, (a, b) in D2_PAIRS.items():
        fid, cov = effect(by, a, b, "fid"), effect(by, a, b, "coverage")
        pa, pb = paper[a], paper[b]
        n = int(by[b].get("n", 0)) * int(by[b].get("seeds", 0)) if b in by else 0
        out.append(entry("D2", f"{method}: FID@5K {pa['fid5k']} → {pb['fid5k']}, coverage {pa['coverage']} → {pb['coverage']}",
                         f"ΔFID_tiny {fid}, Δcoverage {cov}" if fid else "not measured (student missing)",
                         all_hold([verdict(fid, "<"), verdict(cov, ">")]), scale, n,
                         where + note, claim=f"DDIL improves FID and coverage for {method} (DDIL Tables 3–5)"))
    effs = [effect(by, a, b, "fid") for a, b in D3_PAIRS]
    n = int(by.get("lcm_reflected", {}).get("n", 0)) * int(by.get("lcm_reflected", {}).get("seeds", 0))
    out.append(entry("D3", "LCM FID@5K 24.39 → 24.25 (+reflected), 23.44 → 22.86 (+DDIL +reflected)",
                     "; ".join(f"{a}→{b}: ΔFID_tiny {e}" for (a, b), e in zip(D3_PAIRS, effs)),
                     all_hold([verdict(e, "<") for e in effs]), scale, n,
                     where + "only LCM has reflected on/off pairs; PD+DDIL and DMD2+DDIL use reflected throughout. "
                     "Training stability (loss curves) is not measured here. " + note))
    return out


# ---- the choices the paper leaves open, as the landed students used them ----

REASONS = {
    "priors": {"pd": "App. A's PD priors were lost from its text: half of each batch forward-diffused (that half is "
                     "plain step distillation), the rest teacher and student rollouts",
               "lcm": "App. A: 50% the standard protocol (data), 50% the student unrolled, no teacher rollouts",
               "dmd2": "App. A unrolls teacher and student and drops data (priors lost from the text); ours keeps 0.2 "
                       "data (without DMD2's GAN term this is the only place real images enter training)"},
    "late_priors": "App. A raises the student's share in the second part of each PD stage (6K + 4K steps); we switch "
                   "at `switch_frac` of training",
    "switch_frac": "0.5 of training instead of 6K/10K: our stages are short, so two equal halves",
    "buffer_size": "a ring buffer of rollouts amortises their cost on a CPU; the paper collects a DAgger dataset (PD) "
                   "or unrolls on the fly (LCM) and gives no size",
    "refresh_every": "training steps between refreshes; DMD2 refreshes every step, as its backward simulation does",
    "refresh_batch": "rollouts regenerated per refresh (oldest overwritten)",
    "rollout": "'ddim': stateless DDIM rollouts (Sec. 4.1); 'renoise': x̂0 re-noised with fresh noise, as DMD2's "
               "backward simulation. The paper unrolls LCM with LCMScheduler; ours uses DDIM there",
    "reflected": "static thresholding of x̂0 to the data range [-1, 1] where the paper applies it (teacher x̂0; LCM's "
                 "student target; DMD2's scores); the paper uses it by default, so PD+DDIL and DMD2+DDIL have it on",
    "stop index": "each rollout stops at a uniformly random index of the student's grid (App. A: 'a random step')",
}


def choices_rows(world, names=("pd_ddil", "lcm_ddil", "lcm_ddil_reflected", "lcm_reflected", "dmd2_ddil")) -> list[dict]:
    """Every open DDIL choice, as each landed student's provenance records it, with the reason for it."""
    out = []
    for name in names:
        path = os.path.join(world.extras["root"], "students", name, "provenance.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            prov = json.load(f)
        d = prov["config"].get("ddil", {})
        for key in ("priors", "late_priors", "switch_frac", "buffer_size", "refresh_every", "refresh_batch", "rollout",
                    "reflected"):
            if key in d:
                why = REASONS[key]
                why = why.get(name.split("_")[0], "") if isinstance(why, dict) else why
                out.append({"student": name, "choice": key, "value": str(d[key]), "reason": why})
        out.append({"student": name, "choice": "training", "value": f"{prov.get('steps')} steps, "
                    f"{prov.get('wall_time_s', 0) / 60:.1f} min on {prov.get('device')}",
                    "reason": "minutes on one GPU (or CPU); the paper trains 10K+ steps on 8 A100s"})
    out.append({"student": "all DDIL", "choice": "stop index", "value": "uniform over the grid",
                "reason": REASONS["stop index"]})
    return out


# ---- a live run of DDIL's data sampler (teaching) ----

def eps_from_world(world, name: str, guidance: float | None = None):
    """prompts → ε(x, t) of a registered model, in the form DDIL's rollouts take (t: (B,) of one timestep)."""
    from ...sampling import predict

    spec = world.spec(name)
    g = spec.guidance if guidance is None else guidance

    def for_prompts(prompts):
        cond = world.encode(prompts)
        return lambda x, t: predict(spec, x, int(t[0]), cond, g)[0]
    return for_prompts


def live_sampler(world, student: str, cfg, n_refresh: int = 4, batch: int = 16, seed: int = 0):
    """Run DDIL's sampler as its trainer does: refresh the buffer, then draw a training batch, `n_refresh` times.

    Returns (log rows: buffer fill and sources per round, the last batch (x_t, t, prompts, source))."""
    from ...distill.ddil import SOURCES, ReplayBuffer, draw_batch, refresh_buffer
    from ...tiny.world import sample_scenes

    ac = torch.cat([world.spec(world.base_name).make_scheduler().alphas_cumprod.float(), torch.ones(1)])  # ᾱ_{-1} = 1
    grid = world.spec(student).default_timesteps()
    make = {"teach": eps_from_world(world, world.base_name), "student": eps_from_world(world, student)}
    buf, g, log, last = ReplayBuffer(cfg.buffer_size), torch.Generator().manual_seed(seed), [], None
    for r in range(n_refresh):
        frac = r / n_refresh
        prompts = sample_scenes(cfg.refresh_batch, seed=seed * 1000 + r).prompts
        refresh_buffer(buf, cfg, make, grid, prompts, g, ac, shape=world.latent_shape, device=world.device)
        sc = sample_scenes(batch, seed=seed * 1000 + 500 + r)
        t = torch.tensor([grid[i] for i in torch.randint(0, len(grid), (batch,), generator=g).tolist()])
        noise = torch.randn(sc.images.shape, generator=g)
        last = draw_batch(cfg, frac, sc.images, sc.prompts, noise, t, buf, g, ac)
        src = last[3].tolist()
        log.append({"round": r, "training fraction": frac, "priors (data, teacher, student)": str(cfg.priors_at(frac)),
                    "buffer": f"{len(buf)}/{cfg.buffer_size}",
                    **{f"buffer: {SOURCES[s]}": sum(e[3] == s for e in buf.items) for s in (1, 2)},
                    **{f"batch: {SOURCES[s]}": src.count(s) for s in (0, 1, 2)}})
    return log, last


def recipe_ddil(world, name: str, **overrides):
    """The DDILConfig a landed student was trained with (its provenance; else its recipe), with `overrides`."""
    import dataclasses

    from ...distill.ddil import DDILConfig

    path = os.path.join(world.extras["root"], "students", name, "provenance.json")
    if os.path.exists(path):
        with open(path) as f:
            d = json.load(f)["config"].get("ddil")
        if d:
            fields = {f.name for f in dataclasses.fields(DDILConfig)}
            d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields}
            return dataclasses.replace(DDILConfig(**d), **overrides)
    from ...distill.recipes import recipe

    return dataclasses.replace(recipe(name)[1].ddil, **overrides)
