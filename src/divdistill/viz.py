"""Plotting helpers the notebooks share: image grids and the paper-vs-ours tables."""
from __future__ import annotations

import torch


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] → (B, H, W, 3) uint8."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def grid(images: torch.Tensor, nrow: int, pad: int = 1) -> torch.Tensor:
    """Tile (B, 3, H, W) images into one (rows·H, nrow·W, 3) uint8 array, padded with white."""
    imgs = to_uint8(images)
    b, h, w, _ = imgs.shape
    rows = -(-b // nrow)
    out = torch.full((rows * (h + pad) - pad, nrow * (w + pad) - pad, 3), 255, dtype=torch.uint8)
    for i in range(b):
        r, c = divmod(i, nrow)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = imgs[i]
    return out


def show_rows(rows: dict[str, torch.Tensor], nrow: int, title: str = "", scale_note: str = "tiny", size: float = 1.0):
    """One labelled grid row per entry (label → (N, 3, H, W)); the title says which scale produced it."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(size * nrow * 0.55 + 1.5, size * len(rows) * 0.7 + 0.6),
                             squeeze=False)
    for ax, (label, imgs) in zip(axes[:, 0], rows.items()):
        ax.imshow(grid(imgs[:nrow], nrow).numpy(), interpolation="nearest")
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"{title}  [scale={scale_note}]", fontsize=10)
    fig.tight_layout()
    return fig


def markdown_table(rows: list[dict], columns: list[str] | None = None, digits: int = 3):
    """Result rows as a Markdown table (IPython display object; a plain string outside IPython)."""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.{digits}f}" if isinstance(v, float) else ("–" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    text = "\n".join(lines)
    try:
        from IPython.display import Markdown

        return Markdown(text)
    except ImportError:
        return text
