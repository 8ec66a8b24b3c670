"""ReLSO (Castro et al. 2022) on the protein track: the deterministic autoencoder and the VAE variant EDDPM trains.

``ReLSO`` (``variational=False``) is the original model: z = E(x) (no noise), loss = weighted-mean CE
(pad weight 0.8; torch's ``reduction='mean'``, divided by the sum of the weights) + alpha * MSE(f(z), y)
+ eta * mean(||z||^2 / 2), alpha = 1, eta = 0.001. It has no prior, so it does not generate.

``ReLSO-VAE`` (``variational=True``, EDDPM's ``--only_vae``): the same networks, z = mu + sqrt(0.008) eps
with the variance fixed as in protein DiLED, loss = CE averaged over positions (EDDPM's form) + KL to
N(0, I) with weight 1 (with a fixed variance: ||mu||^2 / 2 plus a constant) + MSE(f(z), y);
generation decodes z ~ N(0, I).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from diled.diffusion import derive_seed, seeded_normal
from diled.modalities.protein.model import ConvSequenceDecoder, Regressor, SequenceEncoder, relso_networks, weighted_ce
from diled.model import Autoencoding
from diled.stages import StagePlan


class ReLSO(Autoencoding):
    """Transformer encoder + conv decoder + fitness regressor; deterministic or with a fixed-variance posterior."""

    def __init__(self, encoder: SequenceEncoder, decoder: ConvSequenceDecoder, regressor: Regressor, z_dim: int,
                 variational: bool = False, encoder_var: float = 0.008, pad_weight: float = 0.8, fitness_weight: float = 1.0,
                 z_weight: float = 0.001, kl_weight: float = 1.0):
        super().__init__()
        self.encoder, self.decoder, self.regressor = encoder, decoder, regressor
        self.z_dim, self.variational = z_dim, bool(variational)
        self.encoder_std = float(encoder_var) ** 0.5
        self.pad_weight, self.fitness_weight = float(pad_weight), float(fitness_weight)
        self.z_weight, self.kl_weight = float(z_weight), float(kl_weight)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        tokens, fitness = batch
        mu = self.encoder(tokens)
        if self.variational:
            z = mu + self.encoder_std * torch.randn_like(mu)
            rec = weighted_ce(self.decoder(z), tokens, self.pad_weight, over="positions").mean()
            var = self.encoder_std**2
            reg = 0.5 * (mu.pow(2) + var - 1.0 - torch.log(torch.tensor(var))).sum(1).mean()  # KL(N(mu, var) || N(0, I))
            reg_weight = self.kl_weight
        else:
            z = mu
            rec = weighted_ce(self.decoder(z), tokens, self.pad_weight, over="weights").mean()
            reg = 0.5 * z.pow(2).sum(1).mean()
            reg_weight = self.z_weight
        fit = nn.functional.mse_loss(self.regressor(z), fitness)
        total = rec + reg_weight * reg + self.fitness_weight * fit
        return total, {"rec": rec.item(), "kl" if self.variational else "z_l2": reg.item(), "fitness": fit.item()}

    # ------------------------------------------------------------------ capabilities

    @torch.no_grad()
    def encode(self, x0: torch.Tensor, steps: int | None = None, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """The encoder mean (the representation; the optimisers move it)."""
        return self.encoder(x0)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, steps: int | None = None, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """Greedy decoding (argmax per position)."""
        return self.decoder(z).argmax(1)

    def fitness(self, z: torch.Tensor) -> torch.Tensor:
        return self.regressor(z)

    @torch.no_grad()
    def generate(self, seeds: Sequence[int], steps: int | None = None) -> torch.Tensor:
        """Decode z ~ N(0, I) (the VAE's prior; the deterministic ReLSO has none)."""
        if not self.variational:
            raise NotImplementedError("the deterministic ReLSO has no prior to sample from (use ReLSO-VAE)")
        device = next(self.parameters()).device
        return self.decode(seeded_normal((self.z_dim,), [derive_seed(s, "latent-xT") for s in seeds], device))


def _build(cfg: dict, name: str, variational: bool) -> ReLSO:
    net, m = cfg["net"], cfg["models"][name]
    enc, dec = relso_networks(net)
    return ReLSO(enc, dec, Regressor(net["z_dim"]), net["z_dim"], variational=variational, encoder_var=m.get("encoder_var", 0.008),
                 pad_weight=m["pad_weight"], fitness_weight=m["fitness_weight"], z_weight=m.get("z_weight", 0.001),
                 kl_weight=m.get("kl_weight", 1.0))


def build(cfg: dict) -> ReLSO:
    return _build(cfg, "relso", variational=False)


def build_vae(cfg: dict) -> ReLSO:
    return _build(cfg, "relso_vae", variational=True)


def train(ctx):
    """Stage ``train`` of either variant: all parts jointly."""
    return StagePlan(ctx.build().to(ctx.device), lambda m, batch: m.loss(batch), ctx.data)
