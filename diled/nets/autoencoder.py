"""A convolutional KL autoencoder with a spatial latent (LDM's first stage, Rombach et al. 2022).

Encoder: conv, then per level a ResBlock and (except after the last level) a stride-2 conv; the
head outputs mean and log-variance of a diagonal Gaussian with ``latent_channels`` channels, so a
``size``-pixel image becomes a (latent_channels, size / f, size / f) latent with f = 2^(levels - 1).
Decoder: the mirror image with nearest-neighbour upsampling. Both reuse the UNet's ResBlock.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from diled.nets.unet import ResBlock, _norm


class KLEncoder(nn.Module):
    """image -> (mean, logvar), each (B, latent_channels, H / f, W / f)."""

    def __init__(self, in_ch: int = 1, base: int = 32, mults: Sequence[int] = (1, 2, 2), latent_channels: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, base, 3, padding=1)]
        c = base
        for i, m in enumerate(mults):
            layers.append(ResBlock(c, base * m, 0))
            c = base * m
            if i < len(mults) - 1:
                layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, 2 * latent_channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.head(self.body(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)


class ConvDecoder(nn.Module):
    """(B, latent_channels, h, w) -> image (B, out_ch, h * f, w * f), unbounded (clipped only when quantized)."""

    def __init__(self, out_ch: int = 1, base: int = 32, mults: Sequence[int] = (1, 2, 2), latent_channels: int = 4):
        super().__init__()
        c = base * mults[-1]
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, c, 3, padding=1)]
        for i, m in reversed(list(enumerate(mults))):
            layers.append(ResBlock(c, base * m, 0))
            c = base * m
            if i > 0:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, out_ch, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(z))
