"""DiLED: a learnable encoder as the first forward step, a learnable decoder as the last reverse step.

    encoder     q(x1 | x0) = N(E(x0), s1^2 I)           E: any nn.Module, data -> latent mean
    denoiser    eps_theta(x_t, t) on the latent chain    t = 2..T Gaussian, t = 1 aligned to E(x0)
    decoder     p(x0 | x1)                               Gaussian pixel diffusion (images) or categorical (tokens)

All three train jointly on ``objective.py``'s loss; the decoder's ``objective`` attribute picks the
elbo form (likelihood decoders) or the image form (pixel-diffusion decoders, with one shared t).

Capabilities, shared with every baseline so evaluation never asks which model it holds:
``generate(seeds, steps)``, ``encode(x0, steps, seeds)``, ``decode(z, steps, seeds)``, ``mix(za, zb, alpha)``,
``reconstruct``, ``interpolate``. Randomness at
inference comes from per-sample seeds, so sample i never depends on the batch it is drawn in.

``z_shift`` / ``z_scale`` standardize the encoder output (z = (E(x) - shift) / scale). They are 0 / 1
for a model trained from scratch and DiffAE's latent statistics for image DiLED fine-tuned from
DiffAE, whose latent diffusion lives on standardized z.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from diled import objective as obj
from diled.diffusion import Schedule, ddim_sample, ddpm_sample, derive_seed, sample_timesteps, seeded_normal, timestep_subsequence

RECON_PROTOCOLS = ("random", "inverted")


class Autoencoding(nn.Module):
    """``reconstruct`` and ``interpolate`` composed from a model's ``encode``, ``mix`` and ``decode``.

    Reconstruction protocols (issue 10; the official scripts differ here):

    * ``random`` -- decode the encoding from a seeded random x_T (``reconstruction_bs.py`` of the paper);
    * ``inverted`` -- DiffAE's stochastic encoding: x_T is the DDIM inversion of x0 conditioned on the
      encoding, then decode (``..._withxT.py``), so x_T carries what z does not.

    The two differ only for models whose decoder draws its own noise (``stochastic_decoder``: DiffAE,
    DiLED). DDIM's encoding already is the inverted x_T and LDM's decoder is deterministic, so both
    protocols are the same computation for them; CM-CD's encoding is its noising at ``encode_t``.
    """

    stochastic_decoder = False

    def invert_decoder(self, x0: torch.Tensor, z: torch.Tensor, steps: int) -> torch.Tensor:
        """x_T of x0 under the decoder conditioned on z (``inverted`` protocol); only stochastic decoders have one."""
        raise NotImplementedError(f"{type(self).__name__} has no decoder noise to invert")

    def decode_from(self, z: torch.Tensor, steps: int, seeds: Sequence[int], x0: torch.Tensor, protocol: str) -> torch.Tensor:
        """Decode z under a reconstruction ``protocol``; x0 is the source whose x_T ``inverted`` recovers."""
        if protocol not in RECON_PROTOCOLS:
            raise ValueError(f"unknown reconstruction protocol {protocol!r}; choose one of {', '.join(RECON_PROTOCOLS)}")
        if protocol == "inverted" and self.stochastic_decoder:
            return self.decode(z, steps, seeds, x_T=self.invert_decoder(x0, z, steps))
        return self.decode(z, steps, seeds)

    @staticmethod
    def mix(za: torch.Tensor, zb: torch.Tensor, alpha: float) -> torch.Tensor:
        """Linear interpolation of two encodings (DiLED, DiffAE, LDM, CM-CD); DDIM overrides it with slerp."""
        return (1 - alpha) * za + alpha * zb

    @torch.no_grad()
    def reconstruct(self, x0: torch.Tensor, steps: int, seeds: Sequence[int], protocol: str = "random") -> torch.Tensor:
        """Decode the encoding of x0 under ``protocol`` (a stochastic encoder, such as CM-CD's noising, draws from ``seeds`` too)."""
        return self.decode_from(self.encode(x0, steps, seeds), steps, seeds, x0, protocol)

    @torch.no_grad()
    def interpolate(self, xa: torch.Tensor, xb: torch.Tensor, alpha: float, steps: int, seeds: Sequence[int],
                    seeds_b: Sequence[int] | None = None) -> torch.Tensor:
        """Decode ``mix(encode(xa), encode(xb), alpha)``; decoder noise depends only on ``seeds`` (shared x_T).

        ``seeds_b`` seed xb's encoding where the encoder is stochastic (default: ``seeds``).
        """
        za, zb = self.encode(xa, steps, seeds), self.encode(xb, steps, seeds if seeds_b is None else seeds_b)
        return self.decode(self.mix(za, zb, alpha), steps, seeds)


class LatentAutoencoder(Autoencoding):
    """Encoder + latent denoiser + decoder with the shared inference (DiffAE's and DiLED's): latent chain, then decode.

    Subclasses say how the parts train: DiffAE in two stages, DiLED jointly.
    """

    def __init__(self, encoder: nn.Module, denoiser: nn.Module, decoder: nn.Module, schedule: Schedule, z_dim: int):
        super().__init__()
        self.encoder, self.denoiser, self.decoder = encoder, denoiser, decoder
        self.schedule = schedule
        self.z_dim = z_dim
        self.register_buffer("z_shift", torch.zeros(z_dim))
        self.register_buffer("z_scale", torch.ones(z_dim))
        self.spacing = getattr(decoder, "spacing", "linspace")  # the latent chain's timesteps follow the pixel chain's

    # ------------------------------------------------------------------ latent <-> decoder space

    def encoder_mean(self, x0: torch.Tensor) -> torch.Tensor:
        """E(x0) in the standardized latent space."""
        return (self.encoder(x0) - self.z_shift) / self.z_scale

    def _decoder_cond(self, z: torch.Tensor) -> torch.Tensor:
        return self.z_shift + self.z_scale * z

    # ------------------------------------------------------------------ capabilities

    def _check_steps(self, steps: int) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")

    @torch.no_grad()
    def sample_latents(self, seeds: Sequence[int], steps: int) -> torch.Tensor:
        """Latent reverse chain x_T -> x1 (DDIM, eta = 0) with one seed per sample."""
        self._check_steps(steps)
        device = self.z_shift.device
        x_T = seeded_normal((self.z_dim,), [derive_seed(s, "latent-xT") for s in seeds], device)
        return ddim_sample(self.denoiser, x_T, self.schedule, timestep_subsequence(self.schedule.T, steps, self.spacing))

    @torch.no_grad()
    def sample_ancestral(self, seeds: Sequence[int]) -> torch.Tensor:
        """The ancestral latent chain over all T steps (DDPM), with one seed per sample."""
        device = self.z_shift.device
        x_T = seeded_normal((self.z_dim,), [derive_seed(s, "latent-xT") for s in seeds], device)
        noise = lambda i: seeded_normal((self.z_dim,), [derive_seed(s, "latent-step", i) for s in seeds], device)
        return ddpm_sample(self.denoiser, x_T, self.schedule, noise)

    def latent_loss(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """A two-stage model's latent DDPM: eps matching on fixed codes z (DiffAE's stage 2, LatentOps' latent stage)."""
        t = sample_timesteps(z.shape[0], self.schedule.T, z.device)
        eps = torch.randn_like(z)
        loss = (eps - self.denoiser(self.schedule.q_sample(z, t, eps), t)).pow(2).mean()
        return loss, {"latent": loss.item()}

    @torch.no_grad()
    def encode(self, x0: torch.Tensor, steps: int | None = None, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """Representation: the encoder mean (``steps`` and ``seeds`` are accepted for interface parity and unused)."""
        return self.encoder_mean(x0)

    @property
    def stochastic_decoder(self) -> bool:
        """A pixel-diffusion decoder draws its own x_T (and can invert); a likelihood decoder (tokens) cannot."""
        return hasattr(self.decoder, "invert")

    @torch.no_grad()
    def decode(self, z: torch.Tensor, steps: int, seeds: Sequence[int], x_T: torch.Tensor | None = None) -> torch.Tensor:
        """p(x0 | x1 = z); ``seeds`` fix the decoder's own noise (x_T of a pixel decoder) unless ``x_T`` is given."""
        self._check_steps(steps)
        if x_T is None:
            x_T = self.decoder.noise(seeds, z.device)
        return self.decoder.sample(x_T, steps, self._decoder_cond(z))

    @torch.no_grad()
    def invert_decoder(self, x0: torch.Tensor, z: torch.Tensor, steps: int) -> torch.Tensor:
        """DiffAE's stochastic encoding: DDIM inversion of x0 by the pixel decoder conditioned on z."""
        self._check_steps(steps)
        return self.decoder.invert(x0, steps, self._decoder_cond(z))

    @torch.no_grad()
    def generate(self, seeds: Sequence[int], steps: int) -> torch.Tensor:
        """Latent chain, then decode; one sample per seed."""
        return self.decode(self.sample_latents(seeds, steps), steps, seeds)


class DiLED(LatentAutoencoder):
    """Encoder + latent denoiser + decoder, one model that generates, reconstructs and represents."""

    def __init__(
        self,
        encoder: nn.Module,
        denoiser: nn.Module,
        decoder: nn.Module,
        schedule: Schedule,
        z_dim: int,
        w: float = 1.0,
        encoder_var: float = 0.008,
    ):
        if decoder.objective not in ("elbo", "image"):
            raise ValueError(f"decoder.objective must be 'elbo' or 'image', got {decoder.objective!r}")
        if encoder_var <= 0:
            raise ValueError(f"encoder_var must be > 0, got {encoder_var}")
        super().__init__(encoder, denoiser, decoder, schedule, z_dim)
        self.w = float(w)
        self.encoder_std = float(encoder_var) ** 0.5

    # ------------------------------------------------------------------ training

    def loss(self, x0: torch.Tensor, t: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Batch-mean DiLED loss and its parts; t (unless given), encoder and diffusion noise from torch's RNG."""
        total, parts, _ = self.loss_terms(x0, t)
        return total.mean(), parts

    def loss_terms(self, x0: torch.Tensor, t: torch.Tensor | None = None, w: float | None = None,
                   ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """(per-example loss, its parts as batch means, the encoder sample x1): what ``loss`` averages.

        Subclasses that add a term on the latent sample (the protein model's fitness regressor) read x1 here;
        ``w`` overrides ``self.w`` for this call (a warm-up schedule).
        """
        w = self.w if w is None else w
        if t is None:
            t = obj.sample_timesteps(x0.shape[0], self.schedule.T, x0.device)
        mean = self.encoder_mean(x0)
        x1 = mean + self.encoder_std * torch.randn_like(mean)
        eps = torch.randn_like(x1)
        x_t = self.schedule.q_sample(x1, t, eps)
        latent = obj.latent_term(self.schedule, t, x_t, eps, self.denoiser(x_t, t), mean)
        rec = self.decoder.loss(x0, self._decoder_cond(x1), t)
        if self.decoder.objective == "image":
            total = obj.image_loss(rec, latent, w)
        else:
            total = obj.elbo_loss(self.schedule, t, rec, latent, w)
        return total, {"latent": latent.mean().item(), "rec": rec.mean().item()}, x1
