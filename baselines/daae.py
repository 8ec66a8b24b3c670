"""Optimus-DAAE: a denoising adversarial autoencoder on the text encoder and z-conditioned GPT-2.

Follows EDDPM's ``Text/code/examples/big_ae/modules/daae.py`` (notes in ``../shared/notes/text-track.md``):
z = encoder mean (deterministic) of an input with 15% of its words deleted (the first kept; the frozen
encoder's features of ``noised_copies`` such inputs per sentence are prepared with the data, and each
step picks one copy per example); loss = NLL / sentence length + ``adv_weight`` * BCE(D(z), real); the
discriminator (1x1 convolutions z_dim -> 86 -> 45 -> 4 with LeakyReLU, Linear(4, 1), sigmoid) learns to
tell z from N(0, I) samples. Named fix: the BCE terms take D's logits (``binary_cross_entropy_with_logits``);
upstream's sigmoid-then-BCE clamps the log at -100, so a saturated D gives the encoder no gradient at all. One optimiser serves both players: the generator's term reads D through
detached weights and D's term reads a detached z, so each player gets only its own gradient.
Generation decodes z ~ N(0, I).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from diled.diffusion import derive_seed, seeded_normal
from diled.modalities.text import model as T
from diled.model import LatentAutoencoder
from diled.stages import StagePlan


class Discriminator(nn.Module):
    """D(z) in (0, 1): is z a draw of the N(0, I) prior?"""

    def __init__(self, z_dim: int):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv1d(z_dim, 86, 1), nn.LeakyReLU(0.2), nn.Conv1d(86, 45, 1), nn.LeakyReLU(0.2),
                                   nn.Conv1d(45, 4, 1), nn.LeakyReLU(0.2))
        self.out = nn.Linear(4, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The logit of D(z) (the losses take logits: numerically stable where D saturates)."""
        return self.out(self.convs(z[:, :, None]).squeeze(-1)).squeeze(-1)

    def probability(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(z))


class DAAE(T.LatentTextModel, LatentAutoencoder):
    def __init__(self, encoder: T.TextEncoder, decoder: T.LatentGPT2, z_dim: int, adv_weight: float):
        super().__init__(encoder, nn.Identity(), decoder, None, z_dim)
        self.disc = Discriminator(z_dim)
        self.adv_weight = float(adv_weight)

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        feats, ids = batch[0], batch[1]
        noised = batch[3] if len(batch) > 3 and batch[3].shape[1] > 0 else None
        if noised is not None:  # one word-deleted copy per example
            pick = torch.randint(0, noised.shape[1], (feats.shape[0],), device=feats.device)
            feats = noised[torch.arange(feats.shape[0], device=feats.device), pick]
        z = self.encoder(feats)
        rec = self.decoder.nll(ids, z) / T.sentence_length(ids)
        frozen = {k: v.detach() for k, v in self.disc.named_parameters()}
        # upstream: sigmoid, then BCE, whose log is clamped at -100; once D saturates the generator's gradient is exactly 0
        # and the codes drift without bound (norm ~300 in 800 steps here). The same loss on logits keeps its gradient.
        bce = nn.functional.binary_cross_entropy_with_logits
        gen = bce(functional_call(self.disc, frozen, (z,)), torch.ones(len(z), device=z.device))
        prior = torch.randn_like(z)
        d_real, d_fake = self.disc(prior), self.disc(z.detach())
        disc = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        loss = rec.mean() + self.adv_weight * gen + disc
        return loss, {"rec": rec.mean().item(), "adv": gen.item(), "disc": disc.item()}

    @torch.no_grad()
    def sample_latents(self, seeds: Sequence[int], steps: int) -> torch.Tensor:
        """z ~ N(0, I), one seed per sample (the prior the discriminator pushed the codes towards)."""
        return seeded_normal((self.z_dim,), [derive_seed(s, "latent-xT") for s in seeds], self.z_shift.device)


def build(cfg: dict) -> DAAE:
    z = int(cfg["net"]["z_dim"])
    return DAAE(T.build_encoder(cfg, z), T.LatentGPT2(T.decoder_net(cfg, "daae"), T.vocab_size(cfg), z), z,
                cfg["models"]["daae"]["adv_weight"])


def train(ctx):
    model = T.init_from_autoencoder(ctx.build(), ctx.init, ctx.cfg["net"]["decoder"]["fix"]).to(ctx.device)
    return StagePlan(model, lambda m, batch: m.loss(batch), ctx.data)
