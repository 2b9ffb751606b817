"""The tiny world's procedural scenes: factors, prompts and a vectorised renderer (tiny analogue of LAION/COCO)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SHAPES = ("circle", "square", "triangle", "diamond", "star")
PRETRAIN_SHAPES = ("circle", "square", "triangle", "diamond")  # "star" is held out (DreamBooth analogue)
COLORS = {
    "red": (0.90, 0.15, 0.15),
    "green": (0.15, 0.75, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.60, 0.20, 0.80),
    "orange": (0.98, 0.55, 0.10),
}
COLOR_NAMES = tuple(COLORS)
STYLES = ("filled", "outlined")  # "outlined" is held out of pretraining (style-LoRA analogue)
BACKGROUNDS = ("dark", "light")
SIZE_WORDS = ("small", "large")
RES = 32
SIZE_RANGE = (4.0, 11.0)  # shape radius in pixels
POS_RANGE = (10.0, 22.0)  # centre coordinate in pixels
SMALL_LARGE_SPLIT = 7.5


@dataclass
class Scenes:
    """A batch of scenes: factor labels, prompts and the rendered images."""

    images: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    shape: torch.Tensor  # (B,) index into SHAPES
    color: torch.Tensor  # (B,) index into COLOR_NAMES
    size: torch.Tensor  # (B,) radius in pixels
    x: torch.Tensor  # (B,) centre column in pixels
    y: torch.Tensor  # (B,) centre row in pixels
    bg: torch.Tensor  # (B,) index into BACKGROUNDS
    style: torch.Tensor  # (B,) index into STYLES
    prompts: list[str]
    named: torch.Tensor  # (B, 5) bool: which of shape/color/size/bg/style the prompt names

    def __len__(self) -> int:
        return len(self.prompts)


FACTORS = ("shape", "color", "size", "bg", "style")


def _sdf(shape: torch.Tensor, px: torch.Tensor, py: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Signed distance (pixels) of every pixel to each scene's shape; negative inside."""
    # px, py: (B, H, W) offsets from the centre; r: (B, 1, 1)
    circle = torch.sqrt(px**2 + py**2) - r
    square = torch.maximum(px.abs(), py.abs()) - 0.85 * r
    diamond = (px.abs() + py.abs()) / math.sqrt(2) - 0.75 * r
    # equilateral triangle pointing up, centred on its centroid
    k = math.sqrt(3.0)
    qy = -py  # image rows grow downwards
    tri = torch.maximum(px.abs() * k / 2 + qy / 2, -qy) - r / 2
    # five-pointed star as the max of two rotated triangles' min is costly; use a polar radius modulation
    ang = torch.atan2(py, px)
    rad = torch.sqrt(px**2 + py**2)
    star = rad - r * (0.62 + 0.38 * torch.cos(5 * ang + math.pi / 2))
    all_ = torch.stack([circle, square, tri, diamond, star], dim=1)  # (B, 5, H, W)
    return all_.gather(1, shape.view(-1, 1, 1, 1).expand(-1, 1, *px.shape[1:])).squeeze(1)


def render(shape, color_rgb, size, x, y, bg_rgb, style, res: int = RES) -> torch.Tensor:
    """Render scenes to (B, 3, res, res) images in [-1, 1], antialiased, all in torch."""
    b = shape.shape[0]
    coords = torch.arange(res, dtype=torch.float32) + 0.5
    py = coords.view(1, res, 1) - y.view(b, 1, 1)  # (B, H, 1)
    px = coords.view(1, 1, res) - x.view(b, 1, 1)  # (B, 1, W)
    py, px = py.expand(b, res, res), px.expand(b, res, res)
    d = _sdf(shape, px, py, size.view(b, 1, 1))  # (B, H, W)
    outlined = (style == 1).view(b, 1, 1)
    d = torch.where(outlined, d.abs() - 1.0, d)
    alpha = torch.sigmoid(-d * 2.5).unsqueeze(1)  # (B, 1, H, W)
    img = alpha * color_rgb.view(b, 3, 1, 1) + (1 - alpha) * bg_rgb.view(b, 3, 1, 1)
    return img * 2 - 1


def _palette(color: torch.Tensor, bg: torch.Tensor, u) -> tuple[torch.Tensor, torch.Tensor]:
    """Jittered shape colour and background (tone + hue) RGB, each (n, 3), drawing from the uniform source `u`."""
    n = color.shape[0]
    color_rgb = (torch.tensor(list(COLORS.values()))[color] + 0.06 * (u(n, 3) * 2 - 1)).clamp(0, 1)
    tone = torch.where(bg == 0, 0.08 + 0.12 * u(n), 0.78 + 0.14 * u(n))  # (n,)
    return color_rgb, (tone.view(n, 1) + 0.08 * (u(n, 3) * 2 - 1)).clamp(0, 1)


PROMPT_WORDS = ("a", "shape", "on", "background", *SHAPES, *COLOR_NAMES, *SIZE_WORDS, *STYLES, *BACKGROUNDS)


def parse_prompt(prompt: str) -> dict:
    """Read the factors a prompt names: {shape, color, size, bg, style} as indices, None where unnamed."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    words = prompt.lower().split()
    unknown = [w for w in words if w not in PROMPT_WORDS]
    if unknown:
        raise ValueError(f"unknown word(s) {unknown} in prompt {prompt!r}; the tiny world's vocabulary is "
                         f"{list(PROMPT_WORDS)}")
    pick = lambda names: next((names.index(w) for w in words if w in names), None)  # noqa: E731
    bg = pick(BACKGROUNDS) if "background" in words else None
    return {"shape": pick(SHAPES), "color": pick(COLOR_NAMES), "size": pick(SIZE_WORDS), "bg": bg,
            "style": pick(STYLES)}


def make_prompt(shape: int, color: int, size: float, bg: int, style: int, named) -> str:
    """Compose the prompt naming only the factors flagged in `named` (shape, color, size, bg, style)."""
    words = ["a"]
    if named[2]:
        words.append(SIZE_WORDS[int(size >= SMALL_LARGE_SPLIT)])
    if named[4]:
        words.append(STYLES[style])
    if named[1]:
        words.append(COLOR_NAMES[color])
    words.append(SHAPES[shape] if named[0] else "shape")
    if named[3]:
        words += ["on", "a", BACKGROUNDS[bg], "background"]
    return " ".join(words)


def sample_scenes(n: int, seed: int, *, shapes=PRETRAIN_SHAPES, styles=("filled",), p_name=(0.9, 0.7, 0.4, 0.4, 1.0),
                  res: int = RES) -> Scenes:
    """Draw `n` random scenes deterministically from `seed`, with prompts naming a random subset of factors.

    Args:
        n: number of scenes.
        seed: generator seed; the same seed gives identical scenes.
        shapes: shape names allowed (pretraining excludes the held-out "star").
        styles: styles allowed (pretraining excludes "outlined").
        p_name: probability that the prompt names shape, color, size, background, style
            (style is only named when it is not the default "filled").
        res: image side in pixels.
    Returns:
        Scenes with images (n, 3, res, res) in [-1, 1] and their labels.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    bad = [s for s in shapes if s not in SHAPES] + [s for s in styles if s not in STYLES]
    if bad:
        raise ValueError(f"unknown shape/style {bad}; valid shapes {SHAPES}, styles {STYLES}")
    g = torch.Generator().manual_seed(int(seed))
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    shape_ids = torch.tensor([SHAPES.index(s) for s in shapes])
    style_ids = torch.tensor([STYLES.index(s) for s in styles])
    shape = shape_ids[torch.randint(len(shape_ids), (n,), generator=g)]
    style = style_ids[torch.randint(len(style_ids), (n,), generator=g)]
    color = torch.randint(len(COLORS), (n,), generator=g)
    size = SIZE_RANGE[0] + (SIZE_RANGE[1] - SIZE_RANGE[0]) * u(n)
    x = POS_RANGE[0] + (POS_RANGE[1] - POS_RANGE[0]) * u(n)
    y = POS_RANGE[0] + (POS_RANGE[1] - POS_RANGE[0]) * u(n)
    bg = torch.randint(2, (n,), generator=g)
    color_rgb, bg_rgb = _palette(color, bg, u)
    img = render(shape, color_rgb, size, x, y, bg_rgb, style, res)
    named = u(n, 5) < torch.tensor(p_name)
    named[:, 4] &= style == 1  # only the non-default style is ever named
    prompts = [make_prompt(int(shape[i]), int(color[i]), float(size[i]), int(bg[i]), int(style[i]), named[i].tolist())
               for i in range(n)]
    return Scenes(img, shape, color, size, x, y, bg, style, prompts, named)


def scenes_for_prompt(prompt: str, n: int, seed: int, res: int = RES) -> Scenes:
    """Draw `n` scenes that satisfy `prompt`: named factors fixed, unnamed ones free (data reference for diversity)."""
    spec = parse_prompt(prompt)
    sc = sample_scenes(n, seed, shapes=SHAPES, styles=STYLES, p_name=(0, 0, 0, 0, 0), res=res)
    g = torch.Generator().manual_seed(int(seed) + 7919)
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    shape = torch.full((n,), spec["shape"]) if spec["shape"] is not None else \
        torch.tensor([SHAPES.index(s) for s in PRETRAIN_SHAPES])[torch.randint(4, (n,), generator=g)]
    color = torch.full((n,), spec["color"]) if spec["color"] is not None else sc.color
    style = torch.full((n,), spec["style"] if spec["style"] is not None else 0)
    bg = torch.full((n,), spec["bg"]) if spec["bg"] is not None else sc.bg
    size = sc.size
    if spec["size"] is not None:
        lo, hi = (SIZE_RANGE[0], SMALL_LARGE_SPLIT) if spec["size"] == 0 else (SMALL_LARGE_SPLIT, SIZE_RANGE[1])
        size = lo + (hi - lo) * u(n)
    color_rgb, bg_rgb = _palette(color, bg, u)
    img = render(shape, color_rgb, size, sc.x, sc.y, bg_rgb, style, res)
    named = torch.tensor([[spec[f] is not None for f in FACTORS]] * n)
    return Scenes(img, shape, color, size, sc.x, sc.y, bg, style, [prompt] * n, named)
