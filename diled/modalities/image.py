"""Images: a (optionally z-conditioned) pixel diffusion, used as DiLED's decoder, the DDIM baseline and LDM's latent model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from diled.diffusion import Schedule, ddim_invert, ddim_sample, derive_seed, seeded_normal, timestep_subsequence
from diled.nets import UNet
from diled.objective import sample_timesteps


class PixelDiffusion(nn.Module):
    """eps-prediction diffusion over pixels; with ``unet.cond_dim > 0`` it is p(x0 | z), DiffAE's decoder.

    As DiLED's decoder it reports its eps loss at the shared t (``objective = "image"``); sampling
    and inversion are deterministic DDIM on ``steps`` of the T training steps.
    """

    objective = "image"

    def __init__(self, unet: UNet, schedule: Schedule, image_shape: Sequence[int], clip: float | None = 1.0):
        super().__init__()
        self.unet = unet
        self.schedule = schedule
        self.image_shape = tuple(image_shape)
        self.clip = clip  # pixels live in [-1, 1]; an unbounded latent (LDM's) passes None

    @property
    def T(self) -> int:
        return self.schedule.T

    def _eps_fn(self, z: torch.Tensor | None):
        return lambda x, t: self.unet(x, t, z)

    def loss(self, x0: torch.Tensor, z: torch.Tensor | None = None, t: torch.Tensor | None = None) -> torch.Tensor:
        """Per-example ||eps - eps_theta(x_t, t, z)||^2 (mean over pixels); t drawn here if not shared."""
        if t is None:
            t = sample_timesteps(x0.shape[0], self.T, x0.device)
        eps = torch.randn_like(x0)
        x_t = self.schedule.q_sample(x0, t, eps)
        return (eps - self.unet(x_t, t, z)).pow(2).flatten(1).mean(1)

    def noise(self, seeds: Sequence[int], device: torch.device | str) -> torch.Tensor:
        """x_T for each sample from its own seed."""
        return seeded_normal(self.image_shape, [derive_seed(s, "pixel-xT") for s in seeds], device)

    @torch.no_grad()
    def sample(self, x_T: torch.Tensor, steps: int, z: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic DDIM decode of x_T (conditioned on z) with ``steps`` steps, x0 predictions clipped to [-clip, clip]."""
        ts = timestep_subsequence(self.T, steps)
        return ddim_sample(self._eps_fn(z), x_T, self.schedule, ts, clip=self.clip)

    @torch.no_grad()
    def invert(self, x0: torch.Tensor, steps: int, z: torch.Tensor | None = None) -> torch.Tensor:
        """DDIM inversion x0 -> x_T with ``steps`` steps."""
        ts = timestep_subsequence(self.T, steps)
        return ddim_invert(self._eps_fn(z), x0, self.schedule, ts)
