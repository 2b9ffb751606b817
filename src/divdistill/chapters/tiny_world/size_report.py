"""The tiny-world chapter's size section read from teacher_size.json: the per-prompt table and what it says, every
number read from the file (issue 19's size miss: where it is made, and whether a better teacher could close it)."""
from __future__ import annotations

from ...distill.bars import start_caused
from ...stats import bootstrap_diff, verdict
from .leak import STARTS
from .size import SOURCES, flags_of, start_gap

SIZE_COLUMNS = dict(zip(SOURCES, ("data", "teacher, prior", "teacher, real layout", "teacher, Gaussian q(x_T)",
                                  "teacher, prior + offset", "teacher, Gaussian q(x_T | c)")))


def size_table_rows(d: dict) -> list[dict]:
    """teacher_size.json per prompt: the share of images on the named side of the split and their mean radius, by
    source (short column names: the page is narrow)."""
    out = {}
    for r in d["rows"]:
        row = out.setdefault(r["prompt"], {"prompt": r["prompt"]})
        share = sum(r["on named side"]) / len(r["on named side"])
        row[SIZE_COLUMNS[r["source"]]] = f"{share:.2f} ({r['mean size']:.1f})"
    return list(out.values())


def _fmt(e) -> str:
    return f"{e.mean:+.2f} [{e.lo:+.2f}, {e.hi:+.2f}]"


def size_summary(d: dict | None) -> str:
    """What the committed size diagnosis (teacher_size.json) says, every number read from it."""
    if not d:
        return "No size diagnosis is committed for this world."
    pool = {(p["source"], p["named"]): p for p in d["pooled"]}
    ci = lambda s, w="any": (f"{pool[(s, w)]['share']:.2f} [{pool[(s, w)]['lo']:.2f}, "  # noqa: E731
                             f"{pool[(s, w)]['hi']:.2f}]")
    prior, real, data = SOURCES[1], SOURCES[2], SOURCES[0]
    out = [f"Over the size-naming evaluation prompts ({pool[(prior, 'any')]['n']} images per source; small and "
           f"large split at a radius of {d['split']:g} px), the teacher from its sampling prior puts "
           f"{ci(prior)} of its images on the named side (“small” {ci(prior, 'small')}, “large” "
           f"{ci(prior, 'large')}). Started at t = 999 from the same prompts' data scenes forward-diffused, it "
           f"puts {ci(real)} there (“small” {ci(real, 'small')}, “large” {ci(real, 'large')}); the data themselves "
           f"read {ci(data)}, the evaluator's ceiling."]
    gaps = {w: start_gap(d["rows"], None if w == "any" else w) for w in ("any", "small", "large")}
    held = [w for w in ("small", "large") if verdict(gaps[w], ">") is True]
    text = (f"A real layout at t = 999 changes the share by {_fmt(gaps['any'])} (“small” {_fmt(gaps['small'])}, "
            f"“large” {_fmt(gaps['large'])})")
    if verdict(gaps["any"], ">") is True:
        text += (": handed a layout, the teacher renders its size; from noise its first steps decide it wrongly more "
                 "often. The miss is in deciding the layout, not in rendering it.")
    elif held:
        text += (f": not clearly more than nothing overall, but clearly so for “{held[0]}”, so part of the misses "
                 "are made in the first steps.")
    else:
        text += ": not clearly more than nothing, so the misses are not the first steps' alone."
    out.append(text)
    out += [t for t in (_closer_priors(d, pool, ci), _prompt_moments(d, pool, ci)) if t]
    return "\n\n".join(out)


def _closer_priors(d: dict, pool: dict, ci) -> str:
    """The two prompt-free priors closer to q(x_T) (size.py's fourth and fifth sources), when the diagnosis has them."""
    gauss, offset = SOURCES[3], SOURCES[4]
    if (gauss, "any") not in pool or (offset, "any") not in pool:
        return ""
    gaps = {s: start_gap(d["rows"], None, s) for s in (gauss, offset)}
    lifts = [s for s in (gauss, offset) if verdict(gaps[s], ">") is True]
    text = (f"Two priors closer to q(x_T), neither handing over a scene: a Gaussian with q(x_T)'s mean and covariance "
            f"(the data's, from {d.get('moment_scenes', 0):,} scenes) puts {ci(gauss)} on the named side "
            f"({_fmt(gaps[gauss])} against the prior), and the prior plus the offset noise the teacher trained with "
            f"(σ_o = {d.get('offset_noise', 0):.2f}) {ci(offset)} ({_fmt(gaps[offset])}).")
    if lifts:
        return text + " A closer prior clearly lifts the share, so part of the miss is the prior's."
    if verdict(start_gap(d["rows"]), ">") is not True:
        return text + " Neither clearly lifts it, and neither does a real layout: there is no start gap to close."
    return text + (" Neither clearly lifts it, so the gap is not in the prior's first two moments or its noise "
                   "scales.")


def _prompt_moments(d: dict, pool: dict, ci) -> str:
    """The Gaussian with the prompt's own moments (size.py's sixth source): how much of the gap a real layout closes
    does the prompt's share of q(x_T) close? Read with the world's terminal layout SNR when the file has it."""
    given, real = SOURCES[5], SOURCES[2]
    if (given, "any") not in pool:
        return ""
    gap, full = start_gap(d["rows"], None, given), start_gap(d["rows"])
    short = bootstrap_diff(flags_of(d["rows"], real, None), flags_of(d["rows"], given, None))
    text = (f"A Gaussian with each prompt's own mean and covariance (q(x_T | c) to second order, "
            f"{d.get('moment_scenes', 0):,} scenes of that prompt; still no scene inside) puts {ci(given)} on the "
            f"named side (“small” {ci(given, 'small')}, “large” {ci(given, 'large')}; {_fmt(gap)} against the "
            f"prior, and a real layout minus it: {_fmt(short)}).")
    if verdict(full, ">") is not True:
        return text + " A real layout does not clearly lift the share either: there is no start gap for it to close."
    if verdict(gap, ">") is not True:
        return text + (" It does not clearly lift the share: the prompt's first two moments do not carry what a real "
                       "layout hands over.")
    real_by = {w: start_gap(d["rows"], w) for w in ("small", "large")}
    part = "; ".join(f"on “{w}”, {start_gap(d['rows'], w, given).mean / e.mean:.0%}"
                     for w, e in real_by.items() if verdict(e, ">") is True)
    text += (f" It closes {gap.mean / full.mean:.0%} of the gap a real layout closes" + (f" ({part})" if part else "")
             + ".")
    term = d.get("terminal")
    if term:
        text += (f" At t = 999 this schedule leaves a layout SNR of {term['layout_snr_T']:.2f}: the signal is "
                 f"{term['signal_share_T']:.0%} of q(x_T)'s layout-scale variance, and a start drawn without the "
                 "prompt has none of it.")
    if verdict(short, ">") is True:
        most = "mostly" if gap.mean >= full.mean / 2 else "partly"
        return text + (f" So the miss is {most} the prompt's share of q(x_T), which no prompt-free start carries "
                       "however good the teacher; the rest needs more of a real scene than its first two moments.")
    return text + (" So the miss is the prompt's share of q(x_T): sampling maps a start distribution, so even the "
                   "exact score, started from a prompt-free prior, would miss as well. A better teacher cannot close "
                   "this gap; only a start that carries the prompt's layout signal can.")


LEAK_COLUMNS = {"start": "start", "adherence": "adherence", "adherence_shape": "shape", "adherence_size": "size",
                "diversity_ratio": "diversity ÷ data", "teacher_grain_p90": "grain p90",
                "fid_eval_prompts": "FID (eval prompts)"}  # background and colour: in "fails" (the page is narrow)


def _and(cs: list[str], empty: str) -> str:
    """'a', 'a and b', 'a, b and c'; `empty` for none."""
    return " and ".join([", ".join(cs[:-1]), cs[-1]] if len(cs) > 1 else cs) or empty


def _leak_cell(k: str, v):
    """One leak-table cell: the start's short name, or the number at its column's precision."""
    if k == "start":
        return STARTS[v][0] if v in STARTS else v
    if k in ("teacher_grain_p90", "fid_eval_prompts"):
        return f"{v:.1f}"
    return f"{v:.3f}" if k.startswith("adherence") else f"{v:.2f}"


def leak_table_rows(d: dict) -> list[dict]:
    """teacher_leak.json's starts for the page: the acceptance's numbers and the checks each fails."""
    return [{**{name: _leak_cell(k, r[k]) for k, name in LEAK_COLUMNS.items() if k in r},
             "fails": ", ".join(r["fails"]) or "none"} for r in d["rows"]]


def leak_summary(d: dict | None) -> str:
    """What teacher_leak.json says: which acceptance checks fail from the prior and which only from there."""
    if not d:
        return "No leak diagnosis is committed for this world."
    prior, given = d["rows"][0], d["rows"][1]
    only = start_caused(d)
    words = lambda cs: _and(cs, "none")  # noqa: E731
    text = (f"On the acceptance's {d['n']:,} prompts and seeds, the teacher from its sampling prior fails "
            f"{words(prior['fails'])} (adherence {prior['adherence']:.3f}, size {prior['adherence_size']:.3f}). "
            f"The same weights started from a Gaussian with each prompt's own moments fail {words(given['fails'])} "
            f"(adherence {given['adherence']:.3f}, size {given['adherence_size']:.3f}; FID_tiny on the evaluation "
            f"prompts {prior['fid_eval_prompts']:.1f} → {given['fid_eval_prompts']:.1f}).")
    if only:
        text += (f" So {words(only)} fail{'s' if len(only) == 1 else ''} because the start lacks the prompt's share "
                 "of q(x_T), the leak this world shares with SDXL, and not because of the weights.")
    else:
        text += " No check fails only because of the start."
    both = [c for c in given["fails"] if c in prior["fails"]]
    new = [c for c in given["fails"] if c not in prior["fails"]]
    if both:
        text += f" What fails from both starts ({words(both)}) is not the leak's."
    if new:
        text += f" From the prompt's Gaussian it also fails {words(new)}, which the prior passes."
    return text + (" FID_tiny is measured here on the evaluation prompts against their own scenes, the same way for "
                   "every start; the acceptance's FID_tiny, on the training prompts, is the one above.")


def _sdxl_spread(row: dict) -> bool:
    """Whether a teacher_leak.json row started from draws with SDXL's amplitude spread."""
    kind = STARTS[row["start"]][2] if row["start"] in STARTS else "world"
    return kind == "sdxl" or (kind == "world" and row.get("amplitude_spread") is not None)


def spread_summary(d: dict | None) -> str:
    """What teacher_leak.json's two spreads say: the same draws with their own and with SDXL's amplitude spread."""
    from ...prior import amplitude_spread
    from ...tiny.schedule import SDXL_LATENT_VALUES as SDXL_VALUES, SDXL_SPREAD

    if not d or len(d["rows"]) < 4:
        return ""
    declared = _sdxl_spread(d["rows"][0])
    p, g, ps, gs = (*d["rows"][2:4], *d["rows"][:2]) if declared else d["rows"][:4]  # own spread, then SDXL's
    n = d["values_per_start"]
    words = lambda cs: _and(cs, "nothing")  # noqa: E731
    own, sdxl = f"±{amplitude_spread(n):.2%} for {n:,}", f"±{SDXL_SPREAD:.2%} for {SDXL_VALUES:,} values"
    text = (f"This world's prior declares an SDXL latent's amplitude spread ({sdxl}, not {own}); the last two starts "
            f"are the first two with each draw's own spread. " if declared else
            f"The last two starts are the first two with each draw's std pulled toward the prior's, so that it spreads "
            f"as an SDXL latent's does ({sdxl}, not {own}). ")
    text += (f"SDXL's spread takes the 90th percentile of grain from "
             f"{p['teacher_grain_p90']:.2f} to {ps['teacher_grain_p90']:.2f} levels from the prior (visible on "
             f"{p['teacher_grain_visible_frac']:.1%} → {ps['teacher_grain_visible_frac']:.1%} of the images) "
             f"and from "
             f"{g['teacher_grain_p90']:.2f} to {gs['teacher_grain_p90']:.2f} from the prompt's Gaussian; adherence "
             f"{p['adherence']:.3f} and {g['adherence']:.3f} become {ps['adherence']:.3f} and {gs['adherence']:.3f}. "
             f"With SDXL's spread the prior fails {words(ps['fails'])}, the prompt's Gaussian {words(gs['fails'])}.")
    if "grain" in p["fails"] and "grain" not in ps["fails"]:
        text += (" So the grain is the start's amplitude spread, which the tiny world has because each start holds "
                 "few values, and not the weights'.")
    elif "grain" in ps["fails"]:
        text += " Grain still fails with SDXL's spread: part of it has another source on this schedule."
    if not gs["fails"]:
        text += (" Started from the prompt's Gaussian with SDXL's spread, the committed teacher passes every check "
                 "made here.")
    return text
