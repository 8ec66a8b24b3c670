"""A small pixel UNet (optionally conditioned on a latent z, DiffAE style) and a convolutional encoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from diled.nets.embedding import TimeMLP


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice; time (and z, if given) modulate the second norm (AdaGN)."""

    def __init__(self, cin: int, cout: int, emb_dim: int, cond_dim: int = 0):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout) if emb_dim else None
        self.cond = nn.Linear(cond_dim, 2 * cout) if cond_dim else None
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.emb is not None:
            scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        if self.cond is not None:
            scale, shift = self.cond(cond)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return self.skip(x) + self.conv2(nn.functional.silu(h))


class UNet(nn.Module):
    """eps_theta(x_t, t[, z]) on images: one ResBlock per level down, two up, skip concatenation.

    ``mults`` sets channels per level (each level after the first halves the resolution);
    ``cond_dim > 0`` makes every block take the latent z as an extra AdaGN modulation.
    """

    def __init__(self, in_ch: int = 1, base: int = 32, mults: Sequence[int] = (1, 2, 2), cond_dim: int = 0):
        super().__init__()
        emb = 4 * base
        self.cond_dim = cond_dim
        self.time = TimeMLP(base, emb)
        self.inp = nn.Conv2d(in_ch, base, 3, padding=1)
        chans = [base * m for m in mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = base
        skips = [c]
        for i, ch in enumerate(chans):
            self.down.append(ResBlock(c, ch, emb, cond_dim))
            c = ch
            skips.append(c)
            last = i == len(chans) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(c, c, emb, cond_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, ch in reversed(list(enumerate(chans))):
            self.up.append(ResBlock(c + skips.pop(), ch, emb, cond_dim))
            c = ch
            self.upsample.append(nn.Upsample(scale_factor=2, mode="nearest") if i > 0 else nn.Identity())
        self.final = ResBlock(c + skips.pop(), base, emb, cond_dim)
        self.out = nn.Sequential(_norm(base), nn.SiLU(), nn.Conv2d(base, in_ch, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if (z is None) != (self.cond_dim == 0):
            raise ValueError("pass z exactly when the UNet was built with cond_dim > 0")
        emb = self.time(t)
        h = self.inp(x)
        hs = [h]
        for block, down in zip(self.down, self.downsample):
            h = block(h, emb, z)
            hs.append(h)
            h = down(h)
        h = self.mid(h, emb, z)
        for block, up in zip(self.up, self.upsample):
            h = up(block(torch.cat([h, hs.pop()], dim=1), emb, z))
        h = self.final(torch.cat([h, hs.pop()], dim=1), emb, z)
        return self.out(h)


class ConvEncoder(nn.Module):
    """Semantic encoder image -> z: ResBlocks with stride-2 downsampling, global pooling, linear head."""

    def __init__(self, in_ch: int = 1, base: int = 32, mults: Sequence[int] = (1, 2, 2), z_dim: int = 32):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, base, 3, padding=1)]
        c = base
        for m in mults:
            layers += [ResBlock(c, base * m, 0), nn.Conv2d(base * m, base * m, 3, stride=2, padding=1)]
            c = base * m
        self.body = nn.ModuleList(layers)
        self.head = nn.Sequential(_norm(c), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, z_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.body:
            h = layer(h)
        return self.head(h)
