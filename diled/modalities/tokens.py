"""Toy tokens: a position-wise embedding encoder and a categorical decoder (the core tests' smallest DiLED).

The decoder reports a token negative log-likelihood, so DiLED trains it with the elbo form of the
objective (L_rec / (T lambda_t) + w l_t). Deliberately small: it demonstrates that the DiLED core
serves a categorical decoder; the paper-scale text models (BERT encoder, GPT-2 decoder) build on it.
"""

from __future__ import annotations

import torch
from torch import nn


class TokenEncoder(nn.Module):
    """Token ids (B, L) -> latent mean (B, z_dim): token embeddings concatenated over positions, then an MLP."""

    def __init__(self, vocab: int, length: int, z_dim: int, hidden: int = 128, embed: int = 16):
        super().__init__()
        self.tok = nn.Embedding(vocab, embed)
        self.head = nn.Sequential(nn.Linear(length * embed, hidden), nn.SiLU(), nn.Linear(hidden, z_dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.tok(ids).flatten(1))


class CategoricalDecoder(nn.Module):
    """p(x0 | x1) = prod_l Cat(x0_l | softmax(f(x1))_l); L_rec is the summed token NLL."""

    objective = "elbo"

    def __init__(self, vocab: int, length: int, z_dim: int, hidden: int = 256):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.SiLU(), nn.Linear(hidden, length * vocab))

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, self.length, self.vocab)

    def loss(self, x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Per-example -log p(x0 | z), summed over positions (t is unused: the decoder is one step)."""
        nll = nn.functional.cross_entropy(self.logits(z).transpose(1, 2), x0, reduction="none")
        return nll.sum(1)

    def noise(self, seeds, device) -> None:
        return None

    @torch.no_grad()
    def sample(self, x_T: None, steps: int, z: torch.Tensor) -> torch.Tensor:
        """Most likely tokens given z (``steps`` is irrelevant for a one-step decoder)."""
        return self.logits(z).argmax(-1)
