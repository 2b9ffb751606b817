"""Issue 19: DMD2's GAN head on the fake score's bottleneck trains, and gives the generator a usable gradient."""
import pytest
import torch
from diffusers import UNet2DConditionModel

from divdistill.distill.gan import (BottleneckHead, discriminator_gan_loss, generator_gan_loss, head_for,
                                    realism_logits)
from divdistill.tiny.teacher import unet_config


def _noised(x0, noise, t):
    a = (1 - t.float() / 1000).view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _setup():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**unet_config(16, 8))
    return unet, head_for(unet), torch.randn(8, 4, 8)


def test_updating_only_the_discriminator_lowers_its_loss():
    unet, head, cond = _setup()
    g = torch.Generator().manual_seed(1)
    real = torch.rand(8, 3, 32, 32, generator=g) * 0.2 + 0.6  # a toy "real" set: bright images
    fake = torch.rand(8, 3, 32, 32, generator=g) * 0.2 - 0.8  # and a toy "generated" one: dark
    t, noise = torch.full((8,), 100), torch.randn(8, 3, 32, 32, generator=g)
    params = list(head.parameters()) + list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3)

    def loss():
        return discriminator_gan_loss(realism_logits(unet, head, real, t, cond, noise, _noised),
                                      realism_logits(unet, head, fake, t, cond, noise, _noised))

    before = loss().item()
    for _ in range(10):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < before - 0.05


def test_generator_gan_term_has_a_finite_nonzero_gradient():
    unet, head, cond = _setup()
    x_fake = torch.randn(8, 3, 32, 32, requires_grad=True)
    t, noise = torch.full((8,), 500), torch.randn(8, 3, 32, 32)
    generator_gan_loss(realism_logits(unet, head, x_fake, t, cond, noise, _noised)).backward()
    g = x_fake.grad
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert not unet.mid_block._forward_hooks  # the bottleneck hook is removed after use


def test_head_rejects_a_wrong_bottleneck():
    with pytest.raises(ValueError, match="8, 8"):
        BottleneckHead(64)(torch.zeros(2, 64, 4, 4))
    with pytest.raises(ValueError, match="divisible"):
        BottleneckHead(30)
