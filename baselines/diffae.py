"""DiffAE baseline (Preechakul et al. 2022): the same parts as image DiLED, trained in two stages.

Stage 1 trains the semantic encoder and the z-conditioned pixel decoder on the decoder loss alone
(z deterministic). Stage 2 freezes them, standardizes the latents and fits a latent DDIM on them.
Inference is DiLED's own (latent chain, then decode), so the two differ only in how they train.
"""

from __future__ import annotations

import torch

from diled.model import DiLED
from diled.objective import sample_timesteps


class DiffAE(DiLED):
    """Two-stage autoencoder + latent diffusion with DiLED's inference."""

    def autoencoder_loss(self, x0: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Stage 1: pixel eps loss conditioned on the deterministic semantic code."""
        loss = self.decoder.loss(x0, self.encoder(x0)).mean()
        return loss, {"decoder": loss.item()}

    @torch.no_grad()
    def fit_standardization(self, raw_latents: torch.Tensor) -> None:
        """Set z_shift / z_scale to the per-dimension mean and std of stage-1 codes."""
        self.z_shift.copy_(raw_latents.mean(0))
        self.z_scale.copy_(raw_latents.std(0).clamp_min(1e-6))

    def latent_loss(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Stage 2: eps matching on standardized latents (a plain DDPM whose clean point is z)."""
        t = sample_timesteps(z.shape[0], self.schedule.T, z.device)
        eps = torch.randn_like(z)
        loss = (eps - self.denoiser(self.schedule.q_sample(z, t, eps), t)).pow(2).mean()
        return loss, {"latent": loss.item()}
