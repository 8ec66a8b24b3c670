"""DiffAE-style MLP with skip connections: the latent denoiser eps_theta(x_t, t)."""

from __future__ import annotations

import torch
from torch import nn

from diled.nets.embedding import TimeMLP


class _SkipLayer(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, time_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim)
        self.time = nn.Linear(time_dim, 2 * out_dim)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.time(temb).chunk(2, dim=1)
        return nn.functional.silu(self.norm(self.linear(h)) * (1 + scale) + shift)


class MLPSkipNet(nn.Module):
    """Stacked Linear-LayerNorm-SiLU layers, the input latent re-concatenated before every hidden layer.

    Time enters each layer as a scale and shift (FiLM). The last layer is zero-initialised so a fresh
    network predicts eps = 0, which keeps early training stable.
    """

    def __init__(self, dim: int, hidden: int = 512, layers: int = 10, time_dim: int = 64, time_scale: float = 1.0):
        super().__init__()
        self.time_scale = float(time_scale)  # the protein code feeds t / T (time_scale = 1 / T) to the sinusoid
        if layers < 2:
            raise ValueError("MLPSkipNet needs at least 2 layers")
        self.dim = dim
        self.time = TimeMLP(time_dim, time_dim)
        self.layers = nn.ModuleList(
            [_SkipLayer(dim, hidden, time_dim)] + [_SkipLayer(hidden + dim, hidden, time_dim) for _ in range(layers - 2)]
        )
        self.out = nn.Linear(hidden + dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time(t if self.time_scale == 1.0 else t * self.time_scale)
        h = self.layers[0](x, temb)
        for layer in self.layers[1:]:
            h = layer(torch.cat([h, x], dim=1), temb)
        return self.out(torch.cat([h, x], dim=1))
