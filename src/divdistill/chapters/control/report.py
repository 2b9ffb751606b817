"""The control-transfer chapter's pieces at both scales: which controls, Figure 2, live Table-1 cells, the summary."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ...book import claims
from ...plan import hybrid, with_adapters
from ...sampling import generate
from .measure import (ATTRIBUTE, EVAL_PROMPTS, FRACTION, PAPER_TABLE1, attribute, c1_verdicts, effect_row,
                       model_plan)


@dataclass
class Control:
    """One control as the chapter uses it: adapter name, prompts, kind, and how its attribute is scored."""

    label: str
    adapter: str
    kind: str  # "lora" or "slider"
    prompts: tuple
    attribute: str
    score: object = field(repr=False)  # images → np.ndarray per image
    paper_row: str | None = None

    def first(self, k: int) -> "Control":
        """The same control on its first k prompts only (small figures)."""
        return Control(self.label, self.adapter, self.kind, self.prompts[:k], self.attribute, self.score,
                       self.paper_row)


def tiny_controls(ch) -> list[Control]:
    """The committed tiny LoRAs trained on the base, loaded into the base and every Table-1 student."""
    from ...control.adapters import load_controls
    from ...control.registry import ALL, TABLE_TARGETS, adapter_name, lora_dir

    out, models = [], [m for m in TABLE_TARGETS if m in ch.world.names]
    for source, control in ALL:
        if source == "base":  # the reverse-direction LoRAs are read from the committed run only
            load_controls(ch.world, lora_dir(ch.world, source, control), adapter_name(source, control), models=models)
            out.append(Control(control, adapter_name(source, control), "slider" if "slider" in control else "lora",
                               EVAL_PROMPTS[control], ATTRIBUTE[control],
                               lambda im, c=control: attribute(ch.evaluator, im, c),
                               PAPER_TABLE1.get(control, (None,))[0]))
    return out


def sdxl_controls(ch, spec: dict, prompts) -> list[Control]:
    """Public SDXL LoRAs/sliders from {label: [hub id or path, weight name, concept text, "lora"|"slider"]}."""
    from ...control.public import clip_scores, load_public_control

    out = []
    for i, (label, (src, weight, text, kind)) in enumerate(spec.items()):
        name = f"public{i}"
        load_public_control(ch.world, src, name, weight)
        out.append(Control(label, name, kind, tuple(prompts), f"CLIP score vs {text!r}",
                           lambda im, t=text: clip_scores(im, t, ch.extras, ch.stand_in_metrics)))
    return out


def model_images(ch, ctl: Control, model: str, n: int, scale: float = 0.0, start: int = 0, plan=None,
                 steps: int | None = None):
    """Images of ctl.prompts × n seeds on `model` (or `plan`), the control at `scale` (0: no LoRA) from `start`."""
    plan = plan or (model_plan(ch.world, model, steps) if steps else model_plan(ch.world, model))
    if scale:
        plan = with_adapters(plan, {ctl.adapter: scale}, start)
    prompts = [p for p in ctl.prompts for _ in range(n)]
    return generate(ch.world, plan, prompts, [ch.seed + 1000 + j for _ in ctl.prompts for j in range(n)]).images


def figure2(ch, controls, models, n: int, steps: int | None = None):
    """Figure 2: rows are controls (without / with), columns the base and each student, the same seeds."""
    import matplotlib.pyplot as plt

    from ...book.viz import grid

    fig, axes = plt.subplots(2 * len(controls), len(models), squeeze=False,
                             figsize=(1.0 + 0.75 * n * len(models), 0.9 * 2 * len(controls) + 0.8))
    for r, ctl in enumerate(controls):
        one = ctl.first(1)
        for c, m in enumerate(models):
            for w in (0, 1):
                ax = axes[2 * r + w, c]
                ax.imshow(grid(model_images(ch, one, m, n, float(w), steps=steps), n).numpy(),
                          interpolation="nearest")
                ax.set_xticks([]), ax.set_yticks([])
                if r == 0 and w == 0:
                    ax.set_title(m, fontsize=9)
                if c == 0:
                    ax.set_ylabel(f"{ctl.label}\n{'with' if w else 'without'}", fontsize=8, rotation=0, ha="right",
                                  va="center")
    fig.suptitle(ch.caption(f"Figure 2 analogue: base-trained controls on every model, prompt per row "
                            f"{', '.join(repr(c.prompts[0]) for c in controls)}"), fontsize=9)
    fig.tight_layout()
    return fig


def live_rows(ch, controls, models, n: int, source: str = "base", steps: int | None = None) -> list[dict]:
    """Table-1 cells measured here and now (with vs without at scale 1, the same units on every model)."""
    rows = []
    for ctl in controls:
        vals = {m: (ctl.score(model_images(ch, ctl, m, n, steps=steps)),
                    ctl.score(model_images(ch, ctl, m, n, 1.0, steps=steps))) for m in models}
        d_src = vals[source][1] - vals[source][0]
        rows += [{**effect_row(ctl.label, source, m, wo, w, d_src), "attribute": ctl.attribute}
                 for m, (wo, w) in vals.items()]
    return rows


def sweep(ch, ctl: Control, models, n: int, scales=(-2.0, -1.0, 0.0, 1.0, 2.0), steps: int | None = None) -> dict:
    """A slider's attribute vs its scale, one line per model: {model: [Estimate per scale]}."""
    return {m: [claims.bootstrap(ctl.score(model_images(ch, ctl, m, n, s, steps=steps))) for s in scales]
            for m in models}


def late_start_images(ch, ctl: Control, student: str, n: int, starts=(0, 1, 2), scale: float = 2.0):
    """The slider from step k on a hybrid plan (base first step, student the rest): rows for `viz.show_rows`."""
    plan = hybrid(ch.world, student, k=1, base_guidance=0.0)
    rows = {"no slider": model_images(ch, ctl, student, n, plan=plan)}
    for k in starts:
        rows[f"slider {scale:+g} from step {k}"] = model_images(ch, ctl, student, n, scale, k, plan=plan)
    return rows


def adapters_plan(ch, model: str, scales: dict, steps: int | None = None):
    """`model`'s plan with several adapters at once, each at its own scale."""
    plan = model_plan(ch.world, model, steps) if steps else model_plan(ch.world, model)
    return with_adapters(plan, scales)


def fmt_estimate(d) -> str:
    """An Estimate (or its dict) as 'mean [lo, hi]'."""
    return str(d if isinstance(d, claims.Estimate) else claims.Estimate(**d))


def _pct(e: claims.Estimate, without: float, floor: float = 0.05) -> str:
    """% change with its CI; undefined (shown as such) when the readout without the LoRA is ≈ 0."""
    if abs(without) < floor:
        return f"n/a (without < {floor})"
    return f"{e.mean:.1f} [{e.lo:.1f}, {e.hi:.1f}]"


def table_rows(rows: list[dict], source: str) -> list[dict]:
    """Table-1 display rows of one direction, with the paper's % change and ratio beside ours."""
    out = []
    for r in rows:
        if r["source"] != source:
            continue
        paper = PAPER_TABLE1.get(r["control"], ("", {}))
        p_pct = paper[1].get(r["target"]) if source == "base" else None
        e = {k: claims.Estimate(**r[k]) for k in ("delta", "pct_change", "ratio")}
        out.append({"control": r["control"], "attribute": r.get("attribute", ATTRIBUTE.get(r["control"], "")),
                    "target": f"{source}→{r['target']}", "n": r["n"], "without": r["without"], "with": r["with"],
                    "Δ [95% CI]": str(e["delta"]), "% change [CI]": _pct(e["pct_change"], r["without"]),
                    "ratio to source [CI]": str(e["ratio"]),
                    f"ratio > {FRACTION}": claims.verdict(e["ratio"], ">", FRACTION) if r["target"] != source else None,
                    "Table 1 row": paper[0] if source == "base" else "–",
                    "Table 1 % change": p_pct,
                    "Table 1 ratio": round(p_pct / paper[1]["base"], 2) if p_pct is not None else None})
    return out


def load_committed(world) -> dict:
    """The committed Table-1 analogue (python -m divdistill.chapters.control) of this world variant."""
    from ...control.registry import loras_root

    path = os.path.join(loras_root(world), "transfer.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {path}: run `python -m divdistill.control train-all` then `python -m divdistill.chapters.control`")
    with open(path) as f:
        return json.load(f)


def summary_entries(rows: list[dict], scale: str, note: str = "", fraction: float = FRACTION) -> list[dict]:
    """C1 entries per direction: holds = every target's effect ratio CI above `fraction` (claims.verdict)."""
    verdicts, out = c1_verdicts(rows, fraction), []
    for source, holds in verdicts.items():
        rs = [r for r in rows if r["source"] == source and r["target"] != source]
        lows = [claims.Estimate(**r["ratio"]) for r in rs]
        worst = min(lows, key=lambda e: e.lo) if lows else None
        above = sum(e.lo > fraction for e in lows)
        ours = (f"{source}→others: effect ratio to {source}→{source} has CI above {fraction} in {above}/{len(lows)} "
                f"cells; weakest {worst}" if worst else "no cells")
        paper = ("Table 1: base-trained LoRAs/sliders keep 71–170% of base→base (% change in CLIP score) on DMD, "
                 "LCM, Turbo, Lightning"
                 if source == "base" else "Sec. 6: controls trained on a distilled model transfer back to the base")
        out.append(claims.entry("C1", paper, ours, holds, scale, int(sum(r["n"] for r in rs)),
                                f"direction {source}→*; {note}; {cells_text(rows, source, fraction)}"))
    return out


def cells_text(rows: list[dict], source: str, fraction: float = FRACTION) -> str:
    """Which cells fail (ratio CI below `fraction`) and which are inconclusive (CI straddles it)."""
    groups = {False: [], None: []}
    for r in rows:
        if r["source"] == source and r["target"] != source:
            v = claims.verdict(claims.Estimate(**r["ratio"]), ">", fraction)
            if v is not True:
                groups[v].append(f"{r['control']}→{r['target']} {claims.Estimate(**r['ratio'])}")
    return (f"below {fraction}: {', '.join(groups[False]) or 'none'}; "
            f"inconclusive: {', '.join(groups[None]) or 'none'}")
