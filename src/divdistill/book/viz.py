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

    # each row's label above it, so the images get the figure's whole width
    height = size * len(rows) * 1.25 + 0.6
    fig, axes = plt.subplots(len(rows), 1, figsize=(size * nrow * 0.95 + 0.4, height), squeeze=False)
    for ax, (label, imgs) in zip(axes[:, 0], rows.items()):
        ax.imshow(grid(imgs[:nrow], nrow).numpy(), interpolation="nearest")
        ax.set_title(label, loc="left", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"{title}  [scale={scale_note}]", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / height))  # 0.4 inch above the first row's label for the title
    return fig


def _fmt(v, digits: int) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    if isinstance(v, bool):
        return "✓" if v else "✗"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _numeric(v) -> bool:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return True
    s = str(v).replace("±", "").replace("[", "").replace("]", "").replace(",", "").replace("%", "").split()
    try:
        [float(x.replace("−", "-")) for x in s]
        return bool(s)
    except ValueError:
        return False


class Table:
    """A result table that renders as HTML in notebooks and the book (numbers right-aligned, paper columns shaded)
    and as Markdown text elsewhere."""

    PAPER_STYLE = "background:#eef2f8;color:#1d3a6e;font-style:italic"
    WRAP_AT = 40  # characters: a longer text cell may wrap (book/_static/divdistill.css), a shorter one never does

    def __init__(self, rows: list[dict], columns=None, digits: int = 3, paper_columns=(), caption: str = ""):
        self.rows, self.digits, self.caption = list(rows), digits, caption
        self.columns = list(columns or dict.fromkeys(k for r in self.rows for k in r))
        self.paper_columns = set(paper_columns)
        unknown = self.paper_columns - set(self.columns)
        if unknown:
            raise ValueError(f"paper_columns {sorted(unknown)} are not table columns; columns: {self.columns}")

    def _cell(self, tag: str, text: str, col: str, numeric: bool) -> str:
        import html

        style = ["text-align:right" if numeric else "text-align:left"]
        if col in self.paper_columns:
            style.append(self.PAPER_STYLE)
        wrap = ' class="dd-wrap"' if tag == "td" and not numeric and len(text) > self.WRAP_AT else ""
        return f'<{tag}{wrap} style="{";".join(style)}">{html.escape(text)}</{tag}>'

    def _repr_html_(self) -> str:
        import html

        num = {c: all(_numeric(r.get(c)) or r.get(c) is None for r in self.rows) for c in self.columns}
        head = "".join(self._cell("th", ("paper: " if c in self.paper_columns else "") + c, c, num[c])
                       for c in self.columns)
        body = "".join("<tr>" + "".join(self._cell("td", _fmt(r.get(c), self.digits), c, num[c])
                                        for c in self.columns) + "</tr>" for r in self.rows)
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return (f'<table class="dd-table">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')

    def markdown(self) -> str:
        cols = [("paper: " if c in self.paper_columns else "") + c for c in self.columns]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_fmt(r.get(c), self.digits) for c in self.columns) + " |" for r in self.rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.markdown()


def table(rows: list[dict], columns=None, digits: int = 3, paper_columns=(), caption: str = "") -> Table:
    """Result rows as a table: HTML in the book, Markdown in a terminal. `paper_columns` are the papers' numbers."""
    return Table(rows, columns, digits, paper_columns, caption)


class Figure:
    """A matplotlib figure shown as <figure> with alt text and a caption (the book has no other place for them)."""

    def __init__(self, fig, caption: str, dpi: int = 110):
        import base64
        import io

        import matplotlib.pyplot as plt

        if not caption:
            raise ValueError("a figure needs a caption that says what it shows and which scale produced it")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        self.png, self.caption = buf.getvalue(), caption
        self._b64 = base64.b64encode(self.png).decode()

    def _repr_html_(self) -> str:
        import html

        cap = html.escape(self.caption)
        return (f'<figure class="dd-figure"><img src="data:image/png;base64,{self._b64}" alt="{cap}" '
                f'style="max-width:100%"><figcaption>{cap}</figcaption></figure>')

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        return f"<Figure: {self.caption}>"


def figure(fig, caption: str) -> Figure:
    """Show a matplotlib figure with its caption (name the scale in it, e.g. via `Chapter.caption`)."""
    return Figure(fig, caption)
