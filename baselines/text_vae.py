"""LatentOps (Liu et al. 2023): a GPT-2 text VAE, then a latent DDPM on its posterior means.

Follows ``guangyliu/LatentOps: code/`` (``run_lm_vae_training.py``, ``train_ddpm_latent.py``; notes in
``../shared/notes/text-track.md``):

    stage vae     the same encoder and z-conditioned GPT-2 as text DiLED (``diled.modalities.text.model``), with a
                  diagonal Gaussian posterior; loss = (NLL + beta * KL_fb) / sentence length, per example
                  beta: ``frange_cycle_zero_linear``, one cycle per epoch: 0 for the first half, a linear ramp
                  over the next quarter, then ``beta`` (0.9 upstream)
                  KL_fb: free bits per dimension -- a dimension's batch-mean KL counts only above ``free_bits``
    stage latent  an MLP skip denoiser (5 layers of 4 x z_dim upstream) on the frozen VAE means: linear betas
                  1e-4 -> 0.02, T = 2000, eps-MSE; generation runs the ancestral chain, then decodes greedily
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from diled.diffusion import Schedule
from diled.modalities.text import model as T
from diled.model import LatentAutoencoder
from diled.stages import StagePlan, encode_all


class GaussianTextEncoder(nn.Module):
    """A text encoder (``T.build_encoder``) with a (mean, log-variance) head; ``forward`` returns the mean (the representation)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body  # its output width is 2 z_dim

    def stats(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.body(batch).chunk(2, dim=-1)

    def forward(self, batch) -> torch.Tensor:
        return self.stats(batch)[0]


def cyclical_beta(step: int, steps_per_epoch: int, beta: float, zero: float = 0.5, ramp: float = 0.25) -> float:
    """``frange_cycle_zero_linear`` with one cycle per epoch: 0, then a linear ramp to ``beta``, then ``beta``."""
    pos = (step % max(1, steps_per_epoch)) / max(1, steps_per_epoch)
    if pos < zero:
        return 0.0
    return beta * min(1.0, (pos - zero) / ramp)


def free_bits_kl(mean: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """Per-example KL in which a dimension counts only where its batch-mean KL exceeds ``free_bits`` (upstream's mask)."""
    kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1.0)  # (B, d)
    mask = (kl.mean(0) > free_bits).to(kl.dtype).detach()
    return (kl * mask).sum(1)


class LatentOps(T.LatentTextModel, LatentAutoencoder):
    """Text VAE + latent DDPM (z_shift/z_scale stay 0/1: upstream diffuses the raw means)."""

    def __init__(self, encoder: GaussianTextEncoder, denoiser: nn.Module, decoder: T.LatentGPT2, schedule: Schedule, z_dim: int,
                 beta: float, free_bits: float, steps_per_epoch: int):
        super().__init__(encoder, denoiser, decoder, schedule, z_dim)
        self.beta, self.free_bits, self.steps_per_epoch = float(beta), float(free_bits), int(steps_per_epoch)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))  # the beta cycle's clock, resumed with the weights

    def vae_loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        mean, logvar = self.encoder.stats(batch)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        ids = batch[1]
        rec = self.decoder.nll(ids, z)
        kl = free_bits_kl(mean, logvar, self.free_bits)
        beta = cyclical_beta(int(self.steps_done), self.steps_per_epoch, self.beta)
        if self.training:
            self.steps_done += 1
        loss = ((rec + beta * kl) / T.sentence_length(ids)).mean()
        return loss, {"rec": (rec / T.sentence_length(ids)).mean().item(), "kl": kl.mean().item(), "beta": beta}

    @torch.no_grad()
    def sample_latents(self, seeds: Sequence[int], steps: int) -> torch.Tensor:
        if steps != self.schedule.T:
            return super().sample_latents(seeds, steps)
        return self.sample_ancestral(seeds)


def build(cfg: dict) -> LatentOps:
    net, m = T.decoder_net(cfg, "latentops"), cfg["models"]["latentops"]
    z = int(m["z_dim"])
    lat = m["latent_net"]
    sched = Schedule.make("linear", lat["T"], start=lat["beta_start"], end=lat["beta_end"])
    from diled.nets import MLPSkipNet

    den = MLPSkipNet(z, lat["hidden_mult"] * z, lat["layers"], lat["time_dim"], time_scale=1.0 / lat["T"])
    return LatentOps(GaussianTextEncoder(T.build_encoder(cfg, 2 * z)), den, T.LatentGPT2(net, T.vocab_size(cfg), z), sched, z,
                     m["beta"], m["free_bits"], steps_per_epoch=1)  # the training stage sets it from the data


def train_vae(ctx):
    model = T.init_from_autoencoder(ctx.build(), ctx.init, ctx.cfg["net"]["decoder"]["fix"]).to(ctx.device)
    spec = ctx.spec
    # upstream: one beta cycle per epoch; a stage shorter than an epoch (the pool makes an epoch ~2,500 steps) gets one
    # cycle over the whole stage, else beta would stay at 0 throughout and the VAE would be an unregularised autoencoder
    model.steps_per_epoch = min(-(-len(ctx.data[0]) // spec.batch_size), spec.steps)
    return StagePlan(model, lambda m, batch: m.vae_loss(batch), ctx.data)


def train_latent(ctx):
    """The latent DDPM on the frozen VAE's means of the training split."""
    model = ctx.init.to(ctx.device)
    means = encode_all(model.encoder, ctx.data[0].to(ctx.device), 512)
    model.denoiser.requires_grad_(True)
    return StagePlan(model, lambda m, batch: m.latent_loss(batch), means, params=model.denoiser.parameters())


__all__ = ["LatentOps", "build", "train_vae", "train_latent", "cyclical_beta", "free_bits_kl"]
