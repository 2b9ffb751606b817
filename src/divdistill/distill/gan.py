"""DMD2's GAN head (Yin et al. 2024, Sec. 4.3): a realism classifier on the fake score UNet's bottleneck.

Each choice follows DMD2's public code (tianweiy/DMD2, `main/edm/edm_guidance.py`):
- the head: conv 4×4 stride 2 → GroupNorm → SiLU → conv 4×4 stride 4 → GroupNorm → SiLU → conv 1×1 → one logit,
  on the fake UNet's mid-block output (the tiny UNet's bottleneck is 8×8, the same size as DMD2's ImageNet one);
- "diffusion GAN": real and generated images are both noised at one random t before the classifier;
- non-saturating losses: generator softplus(−D(fake)); classifier softplus(D(fake)) + softplus(−D(real));
- the classifier is trained jointly with the fake score (its loss is added to the fake-score loss, so the fake UNet's
  encoder learns from both), and the generator's GAN term is added to its DM loss.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F


class BottleneckHead(nn.Module):
    """conv–GN–SiLU ×2 → 1×1 conv: an (B, C, 8, 8) bottleneck → (B,) realism logits (DMD2's `cls_pred_branch`)."""

    def __init__(self, channels: int, groups: int = 8):
        super().__init__()
        if channels % groups:
            raise ValueError(f"channels ({channels}) must be divisible by groups ({groups})")
        self.net = nn.Sequential(
            nn.Conv2d(channels, channels, 4, stride=2, padding=1), nn.GroupNorm(groups, channels), nn.SiLU(),  # 8→4
            nn.Conv2d(channels, channels, 4, stride=4), nn.GroupNorm(groups, channels), nn.SiLU(),  # 4→1
            nn.Conv2d(channels, 1, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() != 4 or h.shape[-1] != 8 or h.shape[-2] != 8:
            raise ValueError(f"the head expects an (B, C, 8, 8) bottleneck, got {tuple(h.shape)}")
        return self.net(h).flatten(1).squeeze(1)  # (B,)


def head_for(unet) -> BottleneckHead:
    """A head sized to a diffusers UNet's bottleneck (its widest block)."""
    return BottleneckHead(unet.config.block_out_channels[-1], unet.config.norm_num_groups)


@contextmanager
def bottleneck(unet):
    """Capture the UNet's mid-block output during a forward pass (a removable forward hook)."""
    store: dict = {}
    handle = unet.mid_block.register_forward_hook(lambda _m, _i, out: store.__setitem__("h", out))
    try:
        yield store
    finally:
        handle.remove()


def realism_logits(fake_unet, head, x0, t, cond, noise, add_noise) -> torch.Tensor:
    """D(x0): noise x0 to t (diffusion GAN), run the fake UNet, classify its bottleneck."""
    with bottleneck(fake_unet) as store:
        fake_unet(add_noise(x0, noise, t), t, encoder_hidden_states=cond)
    return head(store["h"])  # (B,)


def generator_gan_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """DMD2's generator term: softplus(−D(G(z)))."""
    return F.softplus(-logits_fake).mean()


def discriminator_gan_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """DMD2's classifier term: softplus(D(fake)) + softplus(−D(real))."""
    return (F.softplus(logits_fake) + F.softplus(-logits_real)).mean()
