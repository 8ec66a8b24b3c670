"""The protein track: ReLSO's encoder, conv decoder and fitness regressor, and protein DiLED built from them.

Networks follow the official protein code (``guangyliu/EDDPM: Protein/codes/nn``, itself ReLSO's):

    encoder    Embedding(22, 100) + sinusoidal positions; 6 post-LayerNorm blocks (fused qkv, 4 heads,
               FFN 100 -> 200 -> 100 with dropout before the ReLU, residual dropout); attention pooling
               (softmax over positions of Linear(100, 1)); Linear(100, 30) to the latent mean
    decoder    Linear(30, L x 100) -> (B, 100, L) -> residual conv block 100 -> 200 -> Conv1d(200, 22, 3)
    regressor  Linear(30, 64) -> BatchNorm -> ReLU -> Linear(64, 1), on the latent sample

The official attention mask is inverted (query i sees only keys j > i; the last query attends
uniformly): ``attention_mask: upstream`` reproduces it, ``none`` lets every query see every key.
Protein DiLED is the DiLED core (``diled.model.DiLED``) with the elbo-form objective, the
pad-weighted cross entropy averaged over positions as L_rec, plus MSE(regressor(x1), fitness).
Generation runs the ancestral latent chain over all T steps, then decodes greedily.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from diled.diffusion import Schedule, derive_seed
from diled.modalities.protein.data import PAD, VOCAB
from diled.model import DiLED
from diled.nets import MLPSkipNet
from diled.stages import StagePlan

MASKS = ("upstream", "none")

# ----------------------------------------------------------------------------- networks


def positional_encoding(length: int, dim: int) -> torch.Tensor:
    """The transformer sinusoid (sin on even, cos on odd features), (length, dim)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe


def attention_bias(length: int, mask: str) -> torch.Tensor | None:
    """Additive attention bias: ``upstream`` blocks keys j <= i (the official code's inverted mask), ``none`` nothing."""
    if mask == "none":
        return None
    if mask == "upstream":
        blocked = torch.ones(length, length).tril().bool()  # j <= i: filled with -9e15 upstream, as here
        return torch.zeros(length, length).masked_fill(blocked, -9e15)
    raise ValueError(f"attention_mask must be one of {MASKS}, got {mask!r}")


class EncoderBlock(nn.Module):
    """Post-LayerNorm transformer block: x = LN(x + drop(attn(x))); x = LN(x + drop(FFN(x)))."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.Dropout(dropout), nn.ReLU(), nn.Linear(ffn, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, s, d = x.shape
        # per head: [q | k | v] columns, as the official fused projection lays them out
        q, k, v = self.qkv(x).view(b, s, self.heads, -1).transpose(1, 2).chunk(3, dim=-1)
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if bias is not None:
            logits = logits + bias
        return self.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(b, s, d))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attention(x, bias)))
        return self.norm2(x + self.drop(self.ffn(x)))


class SequenceEncoder(nn.Module):
    """ReLSO's transformer encoder: token ids (B, L) -> latent mean (B, z_dim)."""

    def __init__(self, length: int, z_dim: int = 30, dim: int = 100, heads: int = 4, ffn: int = 200, layers: int = 6,
                 dropout: float = 0.2, attention_mask: str = "upstream", vocab: int = len(VOCAB)):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.register_buffer("pe", positional_encoding(length, dim), persistent=False)
        bias = attention_bias(length, attention_mask)
        self.register_buffer("bias", bias if bias is not None else torch.zeros(0), persistent=False)
        self.blocks = nn.ModuleList([EncoderBlock(dim, heads, ffn, dropout) for _ in range(layers)])
        self.pool = nn.Linear(dim, 1)
        self.mean = nn.Linear(dim, z_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens) + self.pe[: tokens.shape[1]]
        bias = self.bias if self.bias.numel() else None
        for block in self.blocks:
            h = block(h, bias)
        weights = self.pool(h).softmax(dim=1)  # (B, L, 1): attention pooling over positions (pads included, as upstream)
        return self.mean((weights * h).sum(1))


class _ResBlock1d(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm1d(cout), nn.ReLU(),
                                  nn.Conv1d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm1d(cout))
        self.skip = nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ConvSequenceDecoder(nn.Module):
    """ReLSO's decoder: z (B, z_dim) -> logits (B, vocab, L)."""

    def __init__(self, length: int, z_dim: int = 30, dim: int = 100, hidden: int = 200, vocab: int = len(VOCAB)):
        super().__init__()
        self.length, self.dim = length, dim
        self.inp = nn.Linear(z_dim, length * dim)
        self.block = _ResBlock1d(dim, hidden)
        self.out = nn.Conv1d(hidden, vocab, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(self.inp(z).view(-1, self.dim, self.length)))


class Regressor(nn.Module):
    """Fitness from a latent: Linear(z, 64) -> BatchNorm -> ReLU -> Linear(64, 1)."""

    def __init__(self, z_dim: int = 30, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


def weighted_ce(logits: torch.Tensor, tokens: torch.Tensor, pad_weight: float, over: str = "positions") -> torch.Tensor:
    """Per-sequence cross entropy with the pad class weighted by ``pad_weight``.

    ``over="positions"``: the weighted NLL averaged over the L positions (the EDDPM protein code);
    ``"weights"``: divided by the sum of the weights (torch's weighted ``reduction='mean'``, ReLSO's).
    """
    w = torch.ones(logits.shape[1], device=logits.device)
    w[PAD] = pad_weight
    nll = nn.functional.cross_entropy(logits, tokens, weight=w, reduction="none")  # (B, L) = w[y] * nll
    if over == "positions":
        return nll.mean(1)
    return nll.sum(1) / w[tokens].sum(1)


class SequenceDecoder(nn.Module):
    """DiLED's last reverse step for sequences: p(x0 | x1) = prod_l Cat(softmax(decoder(x1))_l), greedy decoding."""

    objective = "elbo"

    def __init__(self, net: ConvSequenceDecoder, pad_weight: float = 0.8):
        super().__init__()
        self.net, self.pad_weight = net, float(pad_weight)

    def loss(self, x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Per-example pad-weighted CE averaged over positions (t unused: the decoder is one step)."""
        return weighted_ce(self.net(z), x0, self.pad_weight)

    def noise(self, seeds: Sequence[int], device: torch.device | str) -> None:
        return None

    @torch.no_grad()
    def sample(self, x_T: None, steps: int, z: torch.Tensor) -> torch.Tensor:
        """Most likely residue at each position (``steps`` is irrelevant for a one-step decoder)."""
        return self.net(z).argmax(1)


# ----------------------------------------------------------------------------- protein DiLED


class ProteinDiLED(DiLED):
    """DiLED on sequences with a jointly trained fitness regressor on the latent sample (``--joint_regressor``)."""

    def __init__(self, encoder: nn.Module, denoiser: nn.Module, decoder: SequenceDecoder, regressor: Regressor,
                 schedule: Schedule, z_dim: int, w: float = 1.0, encoder_var: float = 0.008, fitness_weight: float = 1.0):
        super().__init__(encoder, denoiser, decoder, schedule, z_dim, w=w, encoder_var=encoder_var)
        self.regressor = regressor
        self.fitness_weight = float(fitness_weight)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor], t: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        tokens, fitness = batch
        total, parts, x1 = self.loss_terms(tokens, t)
        fit = nn.functional.mse_loss(self.regressor(x1), fitness)
        return total.mean() + self.fitness_weight * fit, {**parts, "fitness": fit.item()}

    @torch.no_grad()
    def sample_latents(self, seeds: Sequence[int], steps: int) -> torch.Tensor:
        """The ancestral latent chain over all T steps (``steps`` must be T), one seed per sample."""
        if steps != self.schedule.T:
            raise ValueError(f"protein DiLED samples with the ancestral chain over all T = {self.schedule.T} steps, got {steps}")
        return self.sample_ancestral(seeds)

    def fitness(self, z: torch.Tensor) -> torch.Tensor:
        """The model's own fitness prediction for latents (what its latent optimisation climbs)."""
        return self.regressor(z)


def relso_networks(net: dict) -> tuple[SequenceEncoder, ConvSequenceDecoder]:
    """ReLSO's encoder and decoder sized by the track's ``net`` section (shared by DiLED and ReLSO).

    The regressor is built by the caller: its place in the construction order fixes the seeded initialisation.
    """
    enc = SequenceEncoder(net["length"], net["z_dim"], net["dim"], net["heads"], net["ffn"], net["layers"], net["dropout"],
                          net["attention_mask"])
    return enc, ConvSequenceDecoder(net["length"], net["z_dim"], net["dim"], net["decoder_hidden"])


def build_diled(cfg: dict) -> ProteinDiLED:
    net, lat, d = cfg["net"], cfg["latent"], cfg["models"]["diled"]
    enc, dec_net = relso_networks(net)
    dec = SequenceDecoder(dec_net, d["pad_weight"])
    mlp = MLPSkipNet(net["z_dim"], lat["mlp"]["hidden"], lat["mlp"]["layers"], lat["mlp"]["time_dim"],
                     time_scale=1.0 / lat["T"] if lat["time_input"] == "t_over_T" else 1.0)
    sched = Schedule.make("constant", lat["T"], shift=lat["alphabar_shift"], value=lat["beta"])
    return ProteinDiLED(enc, mlp, dec, Regressor(net["z_dim"]), sched, net["z_dim"], w=d["w"], encoder_var=d["encoder_var"],
                        fitness_weight=d["fitness_weight"])


def train_diled(ctx):
    """Joint training of encoder, latent denoiser, decoder and regressor from scratch."""
    return StagePlan(ctx.build().to(ctx.device), lambda m, batch: m.loss(batch), ctx.data)


# ----------------------------------------------------------------------------- generation sets


@torch.no_grad()
def generate_tokens(model: nn.Module, n: int, steps: int, seed: int, batch_size: int) -> np.ndarray:
    """``n`` generated sequences (int64 token ids), sample i from its own seed."""
    seeds = [derive_seed(seed, "protein-gen", i) for i in range(n)]
    out = [model.generate(seeds[i : i + batch_size], steps).cpu().numpy() for i in range(0, n, batch_size)]
    return np.concatenate(out).astype(np.int64)
