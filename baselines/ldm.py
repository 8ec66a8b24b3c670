"""LDM baseline (Rombach et al. 2022): a KL autoencoder trained first, then a diffusion model on its frozen latents.

Stage 1 (``autoencoder_loss``): L1 reconstruction + LPIPS perceptual loss + a very small KL penalty
(``kl_weight`` = 1e-6 in the paper's setting), all per pixel as Rombach et al.'s summed loss divided
by the number of pixels; no adversarial term (see config/README.md). Stage 2 (``latent_loss``):
eps matching on the encoder means scaled to unit variance (their ``scale_factor``), with the shared
pixel UNet over the (c, h, w) latent. Reconstruction is the autoencoder alone (deterministic, T-free);
interpolation mixes the two encoder means linearly; generation runs DDIM on the latent, then decodes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from diled.diffusion import GaussianDiffusion, Schedule
from diled.metrics.recon import lpips
from diled.model import Autoencoding
from diled.nets import ConvDecoder, KLEncoder, UNet
from diled.stages import StagePlan


class LDM(Autoencoding):
    """Two-stage latent diffusion behind the shared capability interface."""

    def __init__(self, encoder: KLEncoder, decoder: ConvDecoder, latent: GaussianDiffusion, kl_weight: float = 1e-6,
                 perceptual_weight: float = 1.0):
        super().__init__()
        if latent.clip is not None:
            raise ValueError("LDM's latent diffusion must not clip its clean predictions (latents are unbounded)")
        self.encoder, self.decoder, self.latent = encoder, decoder, latent
        self.kl_weight, self.perceptual_weight = float(kl_weight), float(perceptual_weight)
        self.register_buffer("z_scale", torch.ones(()))  # 1 / scale_factor: the std of stage-1 latents

    def autoencoder_loss(self, x0: torch.Tensor, perceptual: nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Stage 1: per-pixel L1 + perceptual_weight * LPIPS + kl_weight * KL / pixels, on a reparameterized sample."""
        mean, logvar = self.encoder(x0)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        x_rec = self.decoder(z)
        l1 = (x0 - x_rec).abs().flatten(1).mean(1)
        p = lpips(x_rec, x0, perceptual) if perceptual is not None and self.perceptual_weight else torch.zeros_like(l1)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)
        loss = l1 + self.perceptual_weight * p + self.kl_weight * kl / x0[0].numel()
        return loss.mean(), {"l1": l1.mean().item(), "lpips": p.mean().item(), "kl": kl.mean().item()}

    @torch.no_grad()
    def fit_scale(self, means: torch.Tensor) -> None:
        """Set the latent scale to the std of the stage-1 encoder means (Rombach et al.'s 1 / scale_factor)."""
        self.z_scale.copy_(means.std().clamp_min(1e-6))

    def latent_loss(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Stage 2: eps matching on scaled latents (the autoencoder is frozen)."""
        loss = self.latent.loss(z).mean()
        return loss, {"latent": loss.item()}

    # ------------------------------------------------------------------ capabilities

    @torch.no_grad()
    def encode(self, x0: torch.Tensor, steps: int | None = None, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """The scaled encoder mean, (B, c, h, w) (``steps`` and ``seeds`` unused: the encoder is deterministic)."""
        return self.encoder(x0)[0] / self.z_scale

    @torch.no_grad()
    def decode(self, z: torch.Tensor, steps: int | None = None, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """The autoencoder's decoder (deterministic; no diffusion involved)."""
        return self.decoder(z * self.z_scale)

    @torch.no_grad()
    def generate(self, seeds: Sequence[int], steps: int) -> torch.Tensor:
        """DDIM (eta = 0, ``steps`` steps) on the latent from seeded noise, then decode."""
        x_T = self.latent.noise(seeds, self.z_scale.device)
        return self.decode(self.latent.sample(x_T, steps))


def build(cfg: dict) -> LDM:
    net, m = cfg["net"], cfg["models"]["ldm"]
    ae = m["autoencoder_net"]
    f = 2 ** (len(ae["mults"]) - 1)
    enc = KLEncoder(net["channels"], ae["base"], ae["mults"], ae["latent_channels"])
    dec = ConvDecoder(net["channels"], ae["base"], ae["mults"], ae["latent_channels"])
    unet = UNet(ae["latent_channels"], m["unet"]["base"], m["unet"]["mults"])
    shape = (ae["latent_channels"], net["size"] // f, net["size"] // f)
    latent = GaussianDiffusion(unet, Schedule.make(net["pixel_schedule"], net["pixel_T"]), shape, clip=None)
    return LDM(enc, dec, latent, m["kl_weight"], m["perceptual_weight"] if m["perceptual"] else 0.0)


def train_autoencoder(ctx):
    """Stage ``autoencoder``: L1 + LPIPS + KL on the KL autoencoder."""
    from diled.metrics.recon import load_lpips

    model = ctx.build().to(ctx.device)
    net = ctx.cfg["models"]["ldm"]["perceptual"]
    perceptual = load_lpips(net, ctx.device) if net else None
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    return StagePlan(model, lambda m, x: m.autoencoder_loss(x, perceptual), ctx.data, params=params)


def train_latent(ctx):
    """Stage ``latent``: a latent DDPM on the frozen encoder's means, scaled to unit variance."""
    from diled.stages import encode_all

    model = copy.deepcopy(ctx.init).to(ctx.device).requires_grad_(True)
    means = encode_all(lambda b: model.encoder(b)[0], ctx.data, ctx.cfg["eval"]["batch_size"], device=ctx.device)
    model.fit_scale(means)
    return StagePlan(model, lambda m, z: m.latent_loss(z), means / model.z_scale, params=model.latent.parameters())
