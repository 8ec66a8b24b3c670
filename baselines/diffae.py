"""DiffAE baseline (Preechakul et al. 2022): the same parts as image DiLED, trained in two stages.

Stage 1 trains the semantic encoder and the z-conditioned pixel decoder on the decoder loss alone
(z deterministic). Stage 2 freezes them, standardizes the latents and fits a latent DDIM on them.
Inference is DiLED's own (latent chain, then decode), so the two differ only in how they train.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from baselines import released
from diled.model import LatentAutoencoder
from diled.stages import StagePlan


class DiffAE(LatentAutoencoder):
    """Two-stage autoencoder + latent diffusion with DiLED's inference (and none of DiLED's joint loss)."""

    def autoencoder_loss(self, x0: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Stage 1: pixel eps loss conditioned on the deterministic semantic code."""
        loss = self.decoder.loss(x0, self.encoder(x0)).mean()
        return loss, {"decoder": loss.item()}

    @torch.no_grad()
    def fit_standardization(self, raw_latents: torch.Tensor) -> None:
        """Set z_shift / z_scale to the per-dimension mean and std of stage-1 codes."""
        self.z_shift.copy_(raw_latents.mean(0))
        self.z_scale.copy_(raw_latents.std(0).clamp_min(1e-6))


    def continued_loss(self, x0: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Both of DiffAE's losses at once (the control "DiffAE + FT"): the decoder loss through a deterministic z,
        and the latent DDPM on the *detached* standardized code, so the latent loss never reaches the encoder."""
        z = self.encoder_mean(x0)
        rec = self.decoder.loss(x0, self._decoder_cond(z)).mean()
        lat, _ = self.latent_loss(z.detach())
        return rec + lat, {"decoder": rec.item(), "latent": lat.item()}


def build(cfg: dict) -> DiffAE:
    from diled.modalities.image.model import latent_parts, pixel_diffusion

    enc, mlp, sched = latent_parts(cfg)
    return DiffAE(enc, mlp, pixel_diffusion(cfg, cfg["net"]["z_dim"]), sched, cfg["net"]["z_dim"])


def train_autoencoder(ctx):
    """Stage ``autoencoder``: encoder and z-conditioned decoder on the decoder loss alone (or, with
    ``models.diffae.released``, DiffAE's released checkpoint: both stages' weights and its latent statistics)."""
    if ctx.cfg["models"]["diffae"].get("released"):
        return released.stage_from_release(ctx, "diffae", released.load_diffae)
    model = ctx.build().to(ctx.device)
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    return StagePlan(model, lambda m, x: m.autoencoder_loss(x), ctx.data, params=params)


def train_latent(ctx):
    """Stage ``latent``: standardize the frozen encoder's codes, fit the latent DDPM on them."""
    from diled.stages import encode_all
    from diled.train import TrainResult

    if ctx.cfg["models"]["diffae"].get("released"):  # the released file holds the latent net and its statistics
        return TrainResult(ctx.init, 0, 0, 0.0, None, None, source="the released checkpoint of stage autoencoder")
    model = copy.deepcopy(ctx.init).to(ctx.device).requires_grad_(True)
    raw = encode_all(model.encoder, ctx.data, ctx.cfg["eval"]["batch_size"], device=ctx.device)
    model.fit_standardization(raw)
    z = (raw - model.z_shift) / model.z_scale
    return StagePlan(model, lambda m, zb: m.latent_loss(zb), z, params=model.denoiser.parameters())


def train_more(ctx):
    """Stage ``train`` of the control: continue the trained DiffAE with DiLED's fine-tuning schedule
    (``models.diffae_ft.train``, which the config check holds equal to ``models.diled.train``) under DiffAE's own losses."""
    model = ctx.build().to(ctx.device)
    model.load_state_dict(ctx.init.state_dict())
    return StagePlan(model, lambda m, x: m.continued_loss(x), ctx.data)


def from_release(path: str | Path, preset: str | dict, ema: bool = True, spacing: str = "ddim") -> DiffAE:
    """A released ``*_autoenc_latent`` checkpoint as a ``DiffAE`` (generate, reconstruct, represent)."""
    return released.load_diffae(build(released.preset_config(preset, spacing)), path, ema).eval()
