"""Figures of the DT chapters: x_t beside x̂0 per step (paper Fig. 3–4, C.1–C.2), Fig. 5 curves, a step slider."""
from __future__ import annotations

import numpy as np
import torch

from ...preview import bound_size
from ...book.viz import to_uint8

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f")


def shown_steps(n_steps: int, n_show: int = 10) -> list[int]:
    """~n_show evenly spaced step indices of an n-step trajectory, the first and the last included."""
    return sorted({int(round(x)) for x in np.linspace(0, n_steps - 1, min(n_show, n_steps))})


def _columns(timesteps, col_t) -> dict[int, int]:
    """Step index → the column whose timestep is nearest (students' steps aligned with the base's by noise level)."""
    out = {}
    for i, t in enumerate(timesteps):
        c = int(np.argmin([abs(t - ct) for ct in col_t]))
        while c in out.values() and c + 1 < len(col_t):
            c += 1
        out[i] = c
    return out


def _tile(img: torch.Tensor, px: int) -> np.ndarray:
    return to_uint8(bound_size(img[None].float(), px))[0].numpy()


def dt_rows_figure(rows: dict, col_t: list[int], title: str, px: int = 96):
    """Rows of models; left block the x_t each step saw, right block its x̂0, columns aligned by timestep.

    rows: name → (timesteps, step indices to show, xt (S, 3, H, W), x0 (S, 3, H, W)).
    col_t: the column timesteps (the base's shown steps).
    """
    import matplotlib.pyplot as plt

    first = next(iter(rows.values()))[2][0]
    h = min(px, max(first.shape[-2:]))
    nc = len(col_t)
    canvas = np.full((len(rows) * (h + 14) + 14, (2 * nc + 1) * (h + 2), 3), 255, np.uint8)
    width = 9.0  # inches: the tiles fill the page's width (the figure is shown at max-width 100%)
    fig, ax = plt.subplots(figsize=(width, (width - 1.6) * canvas.shape[0] / canvas.shape[1] + 0.8))
    labels = []
    for r, (name, (ts, idx, xt, x0)) in enumerate(rows.items()):
        cols = _columns([ts[i] for i in idx], col_t)
        y = 14 + r * (h + 14)
        for j, i in enumerate(idx):
            for block, imgs in ((0, xt), (nc + 1, x0)):
                x = (block + cols[j]) * (h + 2)
                tile = _tile(imgs[i], h)
                canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
                labels.append((x + h / 2, y - 2, f"t={ts[i]}"))
        ax.text(-4, y + h / 2, name, ha="right", va="center", fontsize=8)
    ax.imshow(canvas, interpolation="nearest")
    for x, y, s in labels:
        ax.text(x, y, s, ha="center", va="bottom", fontsize=6, color="#444")
    ax.text(nc * (h + 2) / 2, -4, "x_t (what the model sees)", ha="center", va="bottom", fontsize=9)
    ax.text((nc + 1 + nc / 2) * (h + 2), -4, "x̂0 (the DT: what it predicts)", ha="center", va="bottom", fontsize=9)
    ax.set_axis_off()
    fig.suptitle(title, fontsize=9, y=1.0)
    fig.tight_layout()
    return fig


def curves_figure(curves: dict, threshold: float, title: str, attr: str = "dist", ylabel: str = "distance",
                  commits: dict | None = None):
    """Fig. 5: mean distance(DT_t, final) with its 95% bootstrap band against % of steps (left) and timestep t
    (right); the threshold dashed; controls dashed in their student's colour; commit points as dots."""
    import matplotlib.pyplot as plt

    from .trajectory import band

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    colors = {}
    for name, c in curves.items():
        vals = getattr(c, attr)
        if vals is None:
            continue
        mean, lo, hi = band(vals)
        student = next((s for s in curves if s != name and name.endswith(f"on {s}'s sampler")), None)
        color = "black" if name == "base" else colors.get(student) or PALETTE[len(colors) % len(PALETTE)]
        colors.setdefault(name, color)
        style = dict(color=color, ls="--" if student else "-", lw=1.4 if name == "base" else 1.1,
                     marker="o" if len(c.timesteps) <= 8 else None, ms=3)
        for ax, x in zip(axes, (100 * np.asarray(c.fraction), np.asarray(c.timesteps))):
            ax.plot(x, mean, label=name, **style)
            ax.fill_between(x, lo, hi, color=color, alpha=0.12, lw=0)
        if commits and name in commits:
            cp = commits[name]
            axes[0].plot([100 * cp["fraction"].mean], [threshold], "o", color=color, ms=6, mfc="none")
            axes[1].plot([cp["t"].mean], [threshold], "o", color=color, ms=6, mfc="none")
    for ax in axes:
        ax.axhline(threshold, color="grey", ls=":", lw=1)
        ax.set_ylabel(ylabel)
    axes[0].set_xlabel("% of the model's steps elapsed")
    axes[1].set_xlabel("timestep t of the step (noise level; 999 = pure noise)")
    axes[1].invert_xaxis()
    axes[1].legend(fontsize=6.5, ncol=2, loc="upper right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def aligned_frames(traj: dict, base: str = "base") -> tuple[list[int], dict]:
    """For every base step i: each model's latest x̂0 whose timestep is ≥ the base's t_i (its state at that noise
    level). traj: name → (timesteps, x0 (S, 3, H, W)). Returns (base timesteps, name → list of images)."""
    bts = traj[base][0]
    frames = {}
    for name, (ts, x0) in traj.items():
        idx = [max([j for j, t in enumerate(ts) if t >= bt] or [0]) for bt in bts]
        frames[name] = [x0[j] for j in idx]
    return bts, frames


def strip_figure(bts: list[int], frames: dict, title: str, every: int = 1, px: int = 48):
    """The static companion of the slider: every `every`-th base step as a column, one row per model."""
    import matplotlib.pyplot as plt

    cols = list(range(0, len(bts), every))
    if cols[-1] != len(bts) - 1:
        cols.append(len(bts) - 1)
    names = list(frames)
    fig, axes = plt.subplots(len(names), len(cols), figsize=(0.42 * len(cols) + 1.2, 0.5 * len(names) + 0.6),
                             squeeze=False)
    for r, name in enumerate(names):
        for c, i in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(_tile(frames[name][i], px), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(str(bts[i]), fontsize=5)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2)
    return fig


def step_slider(bts: list[int], frames: dict, px: int = 96):
    """An ipywidgets slider over the base's steps showing every model's current x̂0 (needs a live kernel)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    def show(step):
        fig, axes = plt.subplots(1, len(frames), figsize=(1.3 * len(frames), 1.6), squeeze=False)
        for ax, (name, fr) in zip(axes[0], frames.items()):
            ax.imshow(_tile(fr[step], px), interpolation="nearest")
            ax.set_title(name, fontsize=6), ax.set_axis_off()
        fig.suptitle(f"base step {step + 1}/{len(bts)}, t = {bts[step]}", fontsize=8)
        plt.show()

    slider = W.IntSlider(value=0, min=0, max=len(bts) - 1, description="base step", continuous_update=False)
    return W.interactive(show, step=slider)
