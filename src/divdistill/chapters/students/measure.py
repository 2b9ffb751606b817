"""The sampler control (issue 8): each student beside the teacher on the student's own sampler and grid, and the
hybrid (paper Sec. 5); diversity loss as two numbers, vs the 50-step teacher and vs the teacher on the same sampler."""
from __future__ import annotations

import dataclasses
import statistics

import numpy as np

from ... import commandline as C
from ... import metrics as M
from ...book.claims import bootstrap_diff, verdict
from ...io import atomic_write_json, plan_weights, weights_fingerprint
from ...plan import base, distilled, hybrid, on_sampler
from ...sampling import generate
from ...tiny.quality import EVAL_PROMPTS
from ...tiny.world import sample_scenes

TEACHER = "teacher (50 steps)"


def control_plans(world, name: str) -> list[tuple[str, str, object]]:
    """(label, kind, plan): the student, the teacher on its sampler at the base's CFG, hybrid(k=1, base CFG 0)."""
    return [(name, "student", distilled(world, name)),
            (f"teacher on {name}'s sampler", "control", on_sampler(world, name)),
            (f"hybrid({name}, k=1, CFG 0)", "hybrid", hybrid(world, name, k=1, base_guidance=0))]


def measure(world, plan, features, per_prompt: int, seeds, n_fid: int = 0, prompts=EVAL_PROMPTS, evaluator=None,
            batch_size: int = 100) -> dict:
    """Per-prompt diversity (per_prompt samples of each prompt; `features(images)` → (B, D) perceptual features) for
    every seed; FID_tiny on n_fid samples (tiny: needs the evaluator)."""
    ps = [p for p in prompts for _ in range(per_prompt)]
    per_prompt_vals, fids = {p: [] for p in prompts}, []
    for s in seeds:  # the same noise seeds for every plan: comparisons between plans are paired
        imgs = generate(world, plan, ps, [s * 100_000 + 90_000 + i for i in range(len(ps))], batch_size).images
        feats = features(imgs)
        for p, v in M.per_prompt_diversity(feats, ps).items():
            per_prompt_vals[p].append(v)
        if n_fid:
            real = sample_scenes(n_fid, seed=50_000 + s)
            fake = generate(world, plan, real.prompts, [s * 100_000 + i for i in range(n_fid)], batch_size).images
            fids.append(M.fid(evaluator, real.images, fake))
    per_seed = [statistics.mean(v[i] for v in per_prompt_vals.values()) for i in range(len(seeds))]
    row = {"diversity": statistics.mean(per_seed), "diversity_std": _std(per_seed), "per_prompt": per_prompt_vals,
           "steps": len(plan), "nfe": generate(world, plan, [prompts[0]], [0]).nfe, "per_prompt_n": per_prompt,
           "seeds": len(seeds)}
    if fids:
        row.update(fid=statistics.mean(fids), fid_std=_std(fids), n_fid=n_fid)
    return row


def _std(v):
    return statistics.stdev(v) if len(v) > 1 else 0.0


def evaluate_controls(world, names=None, per_prompt: int = 10, seeds=(0, 1, 2), n_fid: int = 0, out: str | None = None,
                      progress=print, features=None, prompts=EVAL_PROMPTS, teacher: bool = True,
                      batch_size: int = 100, redo=()) -> dict:
    """The control table: teacher 50 steps, then per student its own plan, on_sampler and hybrid(k=1, CFG 0).

    Resumable (commandline.load_partial/save_partial, field "rows"): with `out`, rows already in that JSON (same
    settings) are kept and the file is rewritten after each row.
    `features` (images → (B, D)) defaults to the tiny evaluator's; `teacher=False` skips the 50-step row. A row is
    measured again, in place, when its models' weights changed (each row records `io.plan_weights`) or its student is
    in `redo`.
    """
    ev = None
    if features is None or n_fid:
        from ...tiny.evaluator import load_evaluator

        ev = load_evaluator(world.extras["evaluator_root"]).to(world.device)
    features = features or (lambda imgs: M.features(ev, imgs))
    names = list(world.students if names is None else names)
    settings = {"per_prompt": per_prompt, "seeds": list(seeds), "n_fid": n_fid, "variant": world.extras.get("variant"),
                "base_guidance": world.spec(world.base_name).guidance, "prompts": list(prompts),
                **world.prior_settings}
    res = {"settings": settings, "rows": C.load_partial(out, settings, field="rows") or []}
    todo = ([(TEACHER, "teacher", None, base(world))] if teacher else []) + \
        [(lab, kind, n, plan) for n in names for lab, kind, plan in control_plans(world, n)]
    weights = {lab: plan_weights(world, plan) for lab, _, _, plan in todo}
    redo = set(redo)
    stale = [i for i, r in enumerate(res["rows"]) if r["student"] in redo or _moved(r, weights)]
    done = {r["label"] for i, r in enumerate(res["rows"]) if i not in stale}
    for label, kind, student, plan in todo:
        if label in done:
            continue
        row = {"label": label, "kind": kind, "student": student, "weights": weights[label],
               **measure(world, plan, features, per_prompt, seeds, n_fid, prompts, ev, batch_size)}
        at = next((i for i in stale if res["rows"][i]["label"] == label), None)
        if at is None:
            res["rows"].append(row)
        else:
            res["rows"][at] = row
        C.save_partial(out, settings, res["rows"], field="rows")
        if progress:
            progress(f"{label}: diversity {row['diversity']:.3f} ± {row['diversity_std']:.3f}"
                     + (f", FID {row['fid']:.1f}" if "fid" in row else ""))
    return res


def _moved(row: dict, weights: dict) -> bool:
    """A saved row whose models' weights changed since (rows saved before rows carried weights are trusted)."""
    return "weights" in row and row["label"] in weights and row["weights"] != weights[row["label"]]


def _units(row) -> np.ndarray:
    return np.array([v for p in sorted(row["per_prompt"]) for v in row["per_prompt"][p]])  # (prompts × seeds,)


def diversity_losses(result: dict) -> list[dict]:
    """Per student: diversity loss vs the 50-step teacher and vs the teacher on the same sampler (only the second is
    what distillation did), and the hybrid's change vs the student; paired bootstrap over (prompt, seed) units."""
    rows = {r["label"]: r for r in result["rows"]}
    t50, out = (_units(rows[TEACHER]) if TEACHER in rows else None), []
    for r in result["rows"]:
        if r["kind"] != "student":
            continue
        name = r["student"]
        ctrl, hyb = rows.get(f"teacher on {name}'s sampler"), rows.get(f"hybrid({name}, k=1, CFG 0)")
        s = _units(r)
        rec = {"student": name, "loss_vs_teacher50": bootstrap_diff(t50, s, paired=True) if t50 is not None else None}
        if ctrl:
            rec["loss_vs_same_sampler"] = bootstrap_diff(_units(ctrl), s, paired=True)
            rec["distillation_loses_diversity"] = verdict(rec["loss_vs_same_sampler"], ">")
        if hyb:
            rec["hybrid_gain"] = bootstrap_diff(_units(hyb), s, paired=True)
            rec["hybrid_restores"] = verdict(rec["hybrid_gain"], ">")
            if ctrl:
                rec["hybrid_vs_same_sampler"] = bootstrap_diff(_units(hyb), _units(ctrl), paired=True)
        out.append(rec)
    return out


def control_table_rows(result: dict, digits: int = 3) -> list[dict]:
    """Flat rows for `viz.table`: plan, kind, steps, NFE, diversity ± seed std, FID_tiny when measured."""
    rows = []
    for r in result["rows"]:
        row = {"plan": r["label"], "kind": r["kind"], "steps": r["steps"], "NFE": r["nfe"],
               "diversity": f"{r['diversity']:.{digits}f} ± {r['diversity_std']:.{digits}f}"}
        if "fid" in r:
            row["FID_tiny"] = f"{r['fid']:.1f} ± {r['fid_std']:.1f}"
        rows.append(row)
    return rows


def loss_table_rows(losses: list[dict]) -> list[dict]:
    """Flat rows for `viz.table`: the two diversity-loss numbers and the hybrid's gain, with 95% CIs."""
    fmt = lambda e: f"{e.mean:+.3f} [{e.lo:+.3f}, {e.hi:+.3f}]" if e is not None else "—"  # noqa: E731
    return [{"student": r["student"], "loss vs teacher 50 steps": fmt(r["loss_vs_teacher50"]),
             "loss vs teacher on same sampler": fmt(r.get("loss_vs_same_sampler")),
             "distillation loses diversity": r.get("distillation_loses_diversity"),
             "hybrid gain vs student": fmt(r.get("hybrid_gain")), "hybrid restores": r.get("hybrid_restores")}
            for r in losses]


SCAN = (0.95, 0.975, 1.0, 1.025, 1.05)  # x_T std: a fixed ±5% grid around the unit prior


def scan_stds(world) -> list[float]:
    """The std of each sampling prior the schedule could declare (tiny.schedule.PRIORS), and the points of SCAN more
    than 0.005 from all of them."""
    from ...tiny.schedule import PRIORS, prior_std

    priors = {prior_std({**world.extras["schedule"], "prior": p}) for p in PRIORS}
    return sorted(priors | {g for g in SCAN if min(abs(g - p) for p in priors) > 0.005})


def prior_sensitivity(world, names=None, n: int = 1000, seed: int = 0, out: str | None = None,
                      progress=print) -> dict:
    """FID_tiny and adherence of each student's own plan with its start x_T ~ N(0, std²·I) for every std of
    `scan_stds` (the same draws ε at each std): how far a 4-step student's quality rests on the prior's amplitude.

    Resumable per (student, its weights' fingerprint, std): `commandline.Partial` at `out`.partial while it runs, and
    the finished file's own results after; a retrained student is measured again."""
    from ...tiny.evaluator import load_evaluator
    from ...tiny.quality import evaluate_plan

    ev = load_evaluator(world.extras["evaluator_root"]).to(world.device)
    names, stds = list(world.students if names is None else names), scan_stds(world)
    settings = {"n": n, "seed": seed, "variant": world.extras.get("variant"), "stds": stds,
                "prior_spread": world.prior_spread}  # each std's draws keep the world's amplitude spread
    part, rows, used = C.Partial(out and out + ".partial", settings), [], {}  # the final file appears only whole
    part.results = {**C.load_partial(out, settings), **part.results}  # a finished run's results are reused too
    for name in names:
        tag = weights_fingerprint(world.spec(name).unet)
        for std in stds:
            def compute(std=std, name=name):
                w = dataclasses.replace(world, prior_std=std)
                r = evaluate_plan(w, distilled(w, name), ev, n, seed)
                return {"fid": r["fid"], "adherence": r["adherence"], "diversity": r["diversity"]}
            key = f"{name}|{tag}|{std}"
            r = used[key] = part.get(key, compute)
            rows.append({"student": name, "x_T std": std, "world's": abs(std - world.prior_std) < 1e-6, **r})
            if progress:
                progress(f"{name} @ {std:.4f}: FID {r['fid']:.1f}, adherence {r['adherence']:.3f}")
    res = {"settings": settings, "results": used, "world_prior_std": world.prior_std, "rows": rows}  # Partial's keys
    if out:
        atomic_write_json(out, res)
        part.discard()
    return res
