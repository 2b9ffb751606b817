"""The tiny-world chapter's tables from committed files: each variant's teacher, its acceptance, and the teacher runs
tried on a schedule (issue 19's remedies)."""
from __future__ import annotations

import json
import os

from ...distill.bars import TEACHER_BAR, acceptance_of, failed_checks
from ...tiny.teacher import TeacherConfig


def _recipe(r: dict) -> str:
    """A run's recipe in a few words: its start, steps, offset noise (from which step), the learning-rate decay tail."""
    start = f"continues {r['init_from']} (seed {r.get('seed', 0)}): " if r.get("init_from") else ""
    batch = r.get("batch", TeacherConfig.batch)  # records before batch was kept: their runs used the default
    s = start + (f"{r['steps']:,} steps × {batch}, offset noise {r['offset_noise']:.2f} from step "
                 f"{r['offset_noise_start']:,}")
    s += f", cosine lr decay over the last {r['decay_steps']:,}" if r.get("decay_steps") else ", constant lr"
    return s + ("; sampled from the marginal prior" if r.get("prior") == "marginal" else "")


def _init_label(variant: str, init: str | None) -> str:
    """Where a teacher started: from scratch, its own previous version (a continued run), or another teacher."""
    if not init:
        return "scratch"
    parent, stage = os.path.split(init.rstrip("/"))
    if parent.endswith(f"{variant}/teacher_stages"):  # scripts/ablation_world.py keeps its stages' provenance there
        return f"its {stage.replace('stage', 'stage ')} (teacher_stages/{stage}/provenance.json)"
    return "its previous version (git history)" if init.rstrip("/").endswith(f"{variant}/teacher") else init


def teacher_rows(prov: dict) -> list[dict]:
    """One row per variant's teacher from its provenance {variant: provenance}; a continued run shows "+steps"."""
    rows = []
    for v, p in prov.items():
        m, init = p["metrics"], p["config"].get("init_from")
        fin = m.get("final") or {}
        rows.append({"variant": v, "train steps": f"+{p['steps']:,}" if init else p["steps"],
                     "wall (s)": p["wall_time_s"], "init from": _init_label(v, init),
                     "adherence": m.get("adherence", fin.get("adherence")),
                     "FID_tiny vs data": m.get("fid_tiny_teacher_vs_data", fin.get("fid")),
                     "diversity": m.get("diversity_teacher_mean", fin.get("diversity")),
                     "train loss (last 100)": m.get("train_loss_last100")})
    return rows


def acceptance_rows(prov: dict) -> list[dict]:
    """One row of acceptance checks per variant whose teacher has been evaluated (`python -m divdistill.tiny evaluate`)."""
    return [{"variant": v, "n": p["metrics"]["n_samples"], **acceptance_of(p["metrics"])}
            for v, p in prov.items() if "fid_tiny_teacher_vs_data" in p["metrics"]]


def attempt_rows(variant_root: str) -> list[dict]:
    """One row per teacher run recorded in <variant_root>/teacher_attempts.json, with its acceptance checks and the
    prior it was sampled from."""
    path = os.path.join(variant_root, "teacher_attempts.json")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        attempts = json.load(f)
    for a in attempts:
        m = a["metrics"]
        acc = acceptance_of(m)
        failed = failed_checks(acc)
        rows.append({"run": a["label"], "recipe": _recipe(a["recipe"]), "n": m["n_samples"],
                     "FID_tiny": m["fid_tiny_teacher_vs_data"], "adherence": m["adherence"],
                     "background": m["adherence_bg"], "shape": m["adherence_shape"], "size": m["adherence_size"],
                     "diversity ÷ data": m["diversity_ratio_teacher_over_data"],
                     "grain p90": m.get("teacher_grain_p90"),  # 8-bit levels; None: measured before grain was
                     "passes": "yes" if acc["all"] else "no: " + ", ".join(failed),
                     "wall (s)": a["wall_time_s"], "device": a["device"], "created": a["created"],
                     "prior": a["recipe"].get("prior", "unit")})
    return rows


def committed_attempt(rows: list[dict], created: str | None, prior: str) -> dict | None:
    """The recorded run that is the committed teacher: its weights (provenance "created") sampled from its world's
    prior (one set of weights can be recorded under several priors)."""
    return next((r for r in rows if r["created"] == created and r["prior"] == prior), None)


def factor_trend(rows: list[dict], bar: float = TEACHER_BAR["factor"]) -> str:
    """What the recorded teacher runs whose background passes (`attempt_rows`; the derived offset noise fixed it) did
    to FID_tiny, shape and size from the first of them to the lowest-FID one, and the range size kept across all."""
    runs = [r for r in rows if r["background"] >= bar]
    if len(runs) < 2:
        return ""
    first, best = runs[0], min(runs, key=lambda r: r["FID_tiny"])
    sizes = [r["size"] for r in runs]
    return (f"Across the {len(runs)} recorded runs whose background passes, from the first (“{first['run']}”) to the "
            f"lowest-FID one, FID_tiny went {first['FID_tiny']:.1f} → {best['FID_tiny']:.1f}, shape adherence "
            f"{first['shape']:.3f} → {best['shape']:.3f} (highest {max(r['shape'] for r in runs):.3f}) and size "
            f"{first['size']:.3f} → {best['size']:.3f}; size stayed between {min(sizes):.3f} and {max(sizes):.3f} in "
            f"every run, against its bar of {bar:.2f}.")


def newest_against_committed(rows: list[dict], best: dict | None) -> str:
    """How the newest recorded run, when it is not the committed teacher, differs from the committed weights sampled
    from the same prior as that run (same columns, same n)."""
    if not rows or best is None:
        return ""
    new = max(rows, key=lambda r: r["created"])
    if new is best or new["created"] <= best["created"]:
        return ""
    ref = next((r for r in rows if r["created"] == best["created"] and r.get("prior") == new.get("prior")), best)
    d = lambda k, p=3: f"{new[k] - ref[k]:+.{p}f}"  # noqa: E731
    kept = ("The committed teacher has the lower FID_tiny of the two and stays (checkpoints are chosen by FID_tiny "
            "alone)." if ref["FID_tiny"] <= new["FID_tiny"] else "The newest run has the lower FID_tiny: by the "
            "selection rule it should replace the committed teacher.")
    same = f" from the same prior (“{ref['run']}”)" if ref is not best else ""
    return (f"The newest run (“{new['run']}”) against the committed teacher{same}: FID_tiny {d('FID_tiny', 1)}, "
            f"adherence {d('adherence')}, shape {d('shape')}, size {d('size')}, grain p90 "
            f"{'–' if None in (new['grain p90'], ref['grain p90']) else d('grain p90', 1)}; it "
            f"{'passes' if new['passes'] == 'yes' else 'fails on ' + new['passes'][4:]}. {kept}")


def prior_summary(g: dict) -> str:
    """The grain from the unit prior against the marginal one (teacher_grain.json "prior"), with the excess a unit prior
    carries on this world's schedule and on SD's."""
    p = {r["prior"]: r for r in g["prior"]}
    w, sd = g["prior_excess"]["world"], g["prior_excess"]["SD"]
    own = next(r["prior"] for r in g["prior"] if r["world's"])
    text = (f"The starting noise matters. Started from N(0, I), the acceptance sampler leaves a 90th percentile of "
            f"{p['unit']['grain_p90']:.1f} levels (correlation with the noise's fine scale "
            f"{p['unit']['corr with x_T']:.2f}); started from the same draws scaled to the marginal prior "
            f"N(0, (1 − ᾱ_T) I), {p['marginal']['grain_p90']:.1f} ({p['marginal']['corr with x_T']:.2f}). On this "
            f"world's schedule (ᾱ_T = {w['alpha_T']:.3f}) a unit prior carries {w['excess']:.1%} more noise than "
            f"q(x_T) at the pixel scale, where the data has no variance; read as x̂0 at the first step that is "
            f"{w['in x0']:.0%} of the noise's fine scale.")
    if w["alpha_T"] > 2 * sd["alpha_T"]:  # a shifted schedule: the terminal SNR was raised above SD's
        text += (f" On SD's schedule the same numbers are {sd['excess']:.2%} and {sd['in x0']:.1%}: the approximation "
                 "is harmless on SDXL's schedule, and raising the terminal SNR made it visible here.")
    else:
        text += " This is SD's own schedule, so these are SDXL's numbers too."
    return text + f" This world samples from the {own} prior."


def grain_summary(g: dict | None, attempts: list[dict] = ()) -> str:
    """What the committed grain diagnosis (teacher_grain.json) and the recorded runs (`attempt_rows`) say, every number
    read from them."""
    if not g:
        return "No grain diagnosis is committed for this world."
    bar = TEACHER_BAR["grain_p90"]
    runs = [r for r in attempts if r.get("grain p90") is not None]
    over = [i for i, r in enumerate(runs) if r["grain p90"] > bar]
    lead = []
    if runs:
        lead.append("Across the recorded teacher runs (the remedies table) the 90th percentile went "
                    + " → ".join(f"{r['grain p90']:.1f}" for r in runs) + " levels."
                    + (f" The first run over the bar is “{runs[over[0]]['run']}”"
                       + (", and every run after it stayed over." if over == list(range(over[0], len(runs))) else ".")
                       if over else ""))
    lead += [prior_summary(g)] if g.get("prior") else []
    row = {(r["sampler"], r["steps"], r["cfg"]): r for r in g["sampler"]}
    ddim = row[("DDIM", 50, 4.0)]
    sto = [r for r in g["sampler"] if r["sampler"] != "DDIM"]
    out = [f"On its acceptance sampler (50 DDIM steps, CFG 4) the teacher leaves visible grain on "
           f"{ddim['grain_visible_frac']:.0%} of its samples (median {ddim['grain_median']:.1f}, 90th percentile "
           f"{ddim['grain_p90']:.1f} levels; bar ≤ {bar:g}). The 90th percentile with CFG 1 instead of 4 is "
           f"{row[('DDIM', 50, 1.0)]['grain_p90']:.1f}, with 200 steps instead of 50 "
           f"{row[('DDIM', 200, 4.0)]['grain_p90']:.1f}."]
    if "corr with x_T" in ddim:
        out.append(f"On flat backgrounds the DDIM image's finest scale correlates {ddim['corr with x_T']:.2f} with the "
                   f"starting noise's ({ddim['levels per unit x_T']:.1f} levels per unit of noise)"
                   + (": much of the grain is x_T's own fine scale, left in by the deterministic path." if
                      ddim["corr with x_T"] >= 0.5 else "."))
    if all(r["grain_p90"] <= bar < ddim["grain_p90"] for r in sto):
        out.append("On the same grid, prior and seeds, the stochastic samplers leave none ("
                   + ", ".join(f"{r['sampler']} {r['grain_p90']:.1f}" for r in sto) + "). The grain comes from DDIM's "
                   "deterministic path, not from the teacher's late steps. This is consistent with each step's x̂0 "
                   "error being carried to the end as signal under DDIM, while a stochastic sampler re-draws part of "
                   "x_t at every step and its accurate late steps remove it.")
    clean = [r["t"] for r in g["one_step"] if r["grain_median"] <= bar]
    dirty = [r["t"] for r in g["one_step"] if r["grain_median"] > bar]
    if clean and dirty:
        out.append(f"On data forward-diffused to t, the teacher's one-step x̂0 is clean up to t = {max(clean)} and "
                   f"grainy from t = {min(dirty)}: the error is made at high noise, where x̂0 is a guess.")
    bad = [f"{r['student']} ({r['sampler']}, {r['grain_p90']:.2f})" for r in g["students"] if r["grain_p90"] > bar]
    out.append(f"Students with a 90th percentile over {bar:g} levels on their own samplers: "
               + (", ".join(bad) if bad else "none") + ".")
    if g.get("fid"):
        f = {r["sampler"]: r for r in g["fid"]}
        out.append(f"FID_tiny on the same {g['fid'][0]['n']:,} prompts and seeds: DDIM {f['DDIM']['fid']:.1f}, Euler "
                   f"ancestral {f['Euler ancestral']['fid']:.1f}. The acceptance and every chapter keep DDIM, the "
                   "deterministic sampler SDXL's base is run with: a sampler switched after seeing this would be tuned "
                   "against the outcome, so the remedy has to come from the teacher's training"
                   + (" or from a prior derived from its schedule, as above." if g.get("prior") else "."))
        out += [start_amplitude_summary(f["DDIM"])] if "visible, start above prior" in f.get("DDIM", {}) else []
    return "\n\n".join(lead + out)


def start_amplitude_summary(r: dict) -> str:
    """The DDIM FID set's grain split by each start's own amplitude (`grain.start_amplitude`), beside SDXL's spread."""
    from ...tiny.schedule import SDXL_LATENT_VALUES as n_sdxl, SDXL_SPREAD

    above, rest = r["visible, start above prior"], r["visible, start at or below"]
    text = (f"Each start's own amplitude matters too. For {r['values per start']:,} values, x_T's empirical std "
            f"spreads by ±{r['start std spread']:.2%} around the prior's (an SDXL latent's {n_sdxl:,} values: "
            f"±{SDXL_SPREAD:.2%}, {r['start std spread'] / SDXL_SPREAD:.1f} times less). On DDIM, "
            f"visible grain is on {above:.0%} of the {r['n above']:,} samples whose start is above the prior's std "
            f"and on {rest:.0%} of the other {r['n at or below']:,} (the correlation of grain with the start's std is "
            f"{r['corr grain, start std']:.2f}).")
    if above > 0.1 >= rest:
        text += (" The samples that fail the grain bar are the louder starts; the others stay within the bar's one in "
                 "ten. A start a little louder than the prior leaves its excess in the image, and the tiny world's "
                 "starts vary in amplitude more than SDXL's because each holds fewer values.")
    return text


GRAIN_COLUMNS = {"prior": "prior", "x_T std": "x_T std", "world's": "this world's", "student": "student",
                 "sampler": "sampler", "steps": "steps", "cfg": "CFG", "t": "t",
                 "noise (levels)": "noise (levels)", "n": "n", "fid": "FID_tiny", "grain_median": "grain median",
                 "grain_p90": "grain p90", "grain_visible_frac": "visible", "corr with x_T": "corr with x_T",
                 "levels per unit x_T": "levels per unit x_T"}
START_COLUMNS = {"sampler": "sampler", "n above": "n louder", "visible, start above prior": "visible (louder)",
                 "n at or below": "n others", "visible, start at or below": "visible (others)",
                 "corr grain, start std": "corr grain, x_T std"}


def grain_table_rows(rows: list[dict]) -> list[dict]:
    """teacher_grain.json rows for the page: what the row is first, then its grain (8-bit levels)."""
    out = []
    for r in rows:
        r = {**r, "n": r.get("n", r.get("grain_n"))}
        out.append({name: r[k] for k, name in GRAIN_COLUMNS.items() if k in r})
    return out


def start_amplitude_rows(rows: list[dict]) -> list[dict]:
    """The FID set's grain split by each start's amplitude (`grain.start_amplitude`), one row per sampler that has it."""
    return [{name: r[k] for k, name in START_COLUMNS.items()} for r in rows if "visible, start above prior" in r]
