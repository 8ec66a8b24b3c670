"""NVAE baseline (Vahdat & Kautz 2020): a deep hierarchical VAE, at the embedded size.

What is kept of NVAE: a bottom-up residual encoder and a top-down residual decoder that share the
hierarchy; latent groups at several scales, sampled top-down, each prior conditioned on the groups
above it; the residual normal posterior (q = N(mu_p + dmu, sigma_p * dsigma), so the KL of a group
is the KL of the residual); squeeze-and-excitation in every cell; KL warm-up (the KL weight ramps
from ``1e-4`` to 1 over ``kl_warmup`` steps, its clock a buffer saved and resumed with the weights)
with KL balancing across groups while it ramps; spectral regularisation of every convolution as an
option; sampling at a temperature; a Bernoulli decoder on [0, 1] intensities, NVAE's MNIST
likelihood (images are its means).

What is not: the discretized-logistic mixture of its colour models, depthwise inverted-residual
decoder cells, normalizing flows, BatchNorm re-estimation before sampling (GroupNorm here has no
batch statistics) and its mixed-precision tricks.

Behind the capability interface: ``generate`` samples the prior (``temperature``); ``encode`` is the
posterior mean of every group, flattened top-down (the probe's representation); ``decode`` runs the
decoder on a full code, so ``reconstruct`` decodes the posterior means (deterministic: both
reconstruction protocols are the same computation); ``mix`` mixes every group (``interpolate: all``,
the default, as the other models mix their whole code), or only the top group, the groups below taken
at their prior's means given it (``top``). ``steps`` is accepted and ignored: one decoder pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from diled.diffusion import seeded_normal
from diled.model import Autoencoding
from diled.stages import StagePlan

KL_FLOOR = 1e-4  # NVAE's kl_const_coeff: the KL weight at step 0


def _soft_clamp(x: torch.Tensor, bound: float = 5.0) -> torch.Tensor:
    """NVAE's soft clamp of log-scales: smooth, bounded to (-bound, bound)."""
    return bound * torch.tanh(x / bound)


def balanced_kl(kl: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """NVAE's KL balancing during warm-up: per image, sum_g c_g KL_g with c_g proportional to group g's mean KL over
    the batch (+ 0.01) divided by ``alpha_g`` (its share of its scale's dimensions), normalised to mean 1 and not
    differentiated. A group that carries little information is penalised less, so it is not switched off early.
    """
    coeff = (kl.detach().abs().mean(0) + 0.01) / alpha
    return (kl * (coeff / coeff.mean())).sum(1)


def residual_kl(dmu: torch.Tensor, dlogsig: torch.Tensor, logsig_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_p + dmu, s_p ds) || N(mu_p, s_p)) per dimension: 0.5 (dmu^2 / s_p^2 + ds^2) - log ds - 0.5 (NVAE eq. 2)."""
    return 0.5 * (dmu.pow(2) * (-2 * logsig_p).exp() + (2 * dlogsig).exp()) - dlogsig - 0.5


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3)))[:, :, None, None]


class Cell(nn.Module):
    """NVAE's residual cell: norm - Swish - conv3x3 - norm - Swish - conv3x3 - SE, added to its input."""

    def __init__(self, channels: int):
        super().__init__()
        groups = min(8, channels)
        self.body = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1), SqueezeExcite(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.body(x)  # NVAE scales the residual branch by 0.1


def _down(channels: int) -> nn.Module:
    return nn.Conv2d(channels, channels, 3, stride=2, padding=1)


def _up(channels: int) -> nn.Module:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1))


class NVAE(Autoencoding):
    """Hierarchical VAE: ``groups[s]`` latent groups of ``latent_channels`` at scale s (top, coarsest, first)."""

    def __init__(self, image_channels: int, size: int, channels: int = 32, latent_channels: int = 8,
                 groups: Sequence[int] = (2, 2), kl_warmup: int = 0, spectral_reg: float = 0.0, temperature: float = 1.0,
                 interpolate: str = "all"):
        super().__init__()
        if interpolate not in ("top", "all"):
            raise ValueError(f"NVAE interpolate must be 'top' or 'all', got {interpolate!r}")
        scales = len(groups)
        if size % 2 ** (scales + 1):
            raise ValueError(f"a {size} px image cannot be halved {scales + 1} times (net.size, models.nvae.groups)")
        self.groups, self.latent_channels = [int(g) for g in groups], int(latent_channels)
        self.kl_warmup, self.spectral_reg, self.temperature = int(kl_warmup), float(spectral_reg), float(temperature)
        self.interpolate_mode = interpolate
        self.top_size = size // 2 ** (scales + 1)
        # (channels, h, w) of each latent group, top-down, and its number of dimensions
        self.shapes = [(self.latent_channels, self.top_size * 2**s, self.top_size * 2**s) for s, g in enumerate(self.groups) for _ in range(g)]
        self.sizes = [c * h * w for c, h, w in self.shapes]
        per_scale = [count for count in self.groups for _ in range(count)]
        alpha = torch.tensor([h * w / count for (_, h, w), count in zip(self.shapes, per_scale)])
        self._alpha = alpha / alpha.min()  # each group's share of its scale's dimensions (NVAE's alpha_i)
        c, lc = channels, self.latent_channels
        self.stem = nn.Conv2d(image_channels, c, 3, padding=1)
        self.pre = nn.Sequential(_down(c), Cell(c))  # full size -> size/2: no latents at the two finest scales
        self.enc_down = nn.ModuleList(_down(c) for _ in range(scales))  # bottom-up: finest latent scale first
        self.enc_cells = nn.ModuleList(nn.ModuleList(Cell(c) for _ in range(g)) for g in reversed(self.groups))
        self.h0 = nn.Parameter(torch.zeros(1, c, self.top_size, self.top_size))
        n = sum(self.groups)
        self.dec_cells = nn.ModuleList(Cell(c) for _ in range(n))
        self.dec_up = nn.ModuleList(_up(c) for _ in range(scales - 1))
        self.prior = nn.ModuleList(nn.Conv2d(c, 2 * lc, 3, padding=1) for _ in range(n))  # group 0's prior is N(0, I)
        self.posterior = nn.ModuleList(nn.Conv2d(2 * c, 2 * lc, 3, padding=1) for _ in range(n))
        self.combine = nn.ModuleList(nn.Conv2d(c + lc, c, 1) for _ in range(n))
        self.post = nn.Sequential(_up(c), Cell(c), _up(c), nn.GroupNorm(min(8, c), c), nn.SiLU(),
                                  nn.Conv2d(c, image_channels, 3, padding=1))
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))  # the KL warm-up's clock

    # ------------------------------------------------------------------ the hierarchy

    def group_shapes(self) -> list[tuple[int, int, int]]:
        """(channels, h, w) of each latent group, top-down."""
        return list(self.shapes)

    def _bottom_up(self, x0: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's feature for each group, in top-down order."""
        h = self.pre(self.stem(x0))
        feats: list[torch.Tensor] = []
        for down, cells in zip(self.enc_down, self.enc_cells):
            h = down(h)
            scale = []
            for cell in cells:
                h = cell(h)
                scale.append(h)
            feats = scale[::-1] + feats  # a scale's last cell meets the top-down pass first
        return feats

    def _top_down(self, n: int, feats: list[torch.Tensor] | None = None, given: list[torch.Tensor | None] | None = None,
                  eps: list[torch.Tensor] | None = None, temperature: float = 1.0, sample_posterior: bool = False):
        """Run the decoder down the hierarchy; returns (logits, per-group KL or None, the latents used).

        Each group's latent is ``given[i]`` when set; else the posterior's (``feats``: its mean, or a sample with
        ``sample_posterior``); else the prior's at ``temperature`` with the noise ``eps[i]`` (its mean without).
        """
        h = self.h0.expand(n, -1, -1, -1)
        kls, used, i = [], [], 0
        for s, count in enumerate(self.groups):
            if s:
                h = self.dec_up[s - 1](h)
            for _ in range(count):
                if i:
                    mu_p, logsig_p = self.prior[i](h).chunk(2, 1)
                    logsig_p = _soft_clamp(logsig_p)
                else:
                    mu_p = torch.zeros(n, *self.shapes[0], device=h.device, dtype=h.dtype)
                    logsig_p = torch.zeros_like(mu_p)
                if given is not None and given[i] is not None:
                    z = given[i]
                elif feats is not None:
                    dmu, dlogsig = self.posterior[i](torch.cat([h, feats[i]], 1)).chunk(2, 1)
                    dlogsig = _soft_clamp(dlogsig)
                    mu_q, logsig_q = mu_p + dmu, logsig_p + dlogsig
                    z = mu_q + logsig_q.exp() * torch.randn_like(mu_q) if sample_posterior else mu_q
                    kls.append(residual_kl(dmu, dlogsig, logsig_p).flatten(1).sum(1))
                else:
                    noise = eps[i] if eps is not None else torch.zeros_like(mu_p)
                    z = mu_p + temperature * logsig_p.exp() * noise
                used.append(z)
                h = self.dec_cells[i](self.combine[i](torch.cat([h, z], 1)))
                i += 1
        return self.post(h), (torch.stack(kls, 1) if kls else None), used

    def _split(self, z: torch.Tensor) -> list[torch.Tensor]:
        """A flat code (B, D) as the groups' latents."""
        return [part.reshape(len(z), *shape) for part, shape in zip(z.split(self.sizes, 1), self.shapes)]

    def _noise(self, seeds: Sequence[int], device: torch.device) -> list[torch.Tensor]:
        """Every group's standard normal for each seed (one generator per sample)."""
        return self._split(seeded_normal((sum(self.sizes),), seeds, device))

    # ------------------------------------------------------------------ training

    def balance_weights(self) -> torch.Tensor:
        """Each group's share of the latent dimensions at its scale, relative to the smallest (NVAE's alpha_i)."""
        return self._alpha

    def kl_weight(self) -> float:
        """The warm-up's KL weight: ``KL_FLOOR`` at step 0, linear to 1 over ``kl_warmup`` steps."""
        if not self.kl_warmup:
            return 1.0
        return max(KL_FLOOR, min(1.0, int(self.steps_done) / self.kl_warmup))

    def spectral_penalty(self) -> torch.Tensor:
        """Sum of the largest singular values of every convolution's (out, in * k * k) matrix (NVAE's L_SR)."""
        return sum(torch.linalg.matrix_norm(m.weight.flatten(1).float(), ord=2) for m in self.modules() if isinstance(m, nn.Conv2d))

    def loss(self, x0: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The negative ELBO per pixel, KL weighted by the warm-up (+ ``spectral_reg`` * L_SR)."""
        logits, kl, _ = self._top_down(len(x0), self._bottom_up(x0), sample_posterior=True)
        target = (x0.float() + 1) / 2  # [-1, 1] -> [0, 1]
        rec = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none").flatten(1).sum(1)
        beta = self.kl_weight()
        pixels = x0[0].numel()
        kl = kl.float()
        loss = (rec + beta * (balanced_kl(kl, self.balance_weights().to(kl.device)) if beta < 1 else kl.sum(1))).mean() / pixels
        parts = {"rec": rec.mean().item(), "kl": kl.sum(1).mean().item(), "beta": beta}
        if self.spectral_reg:
            sr = self.spectral_penalty()
            loss = loss + self.spectral_reg * beta * sr  # NVAE scales L_SR with the KL weight too
            parts["sr"] = sr.item()
        if self.training:
            self.steps_done += 1
        return loss, parts

    @torch.no_grad()
    def active_groups(self, x0: torch.Tensor, threshold: float = 0.01) -> list[float]:
        """The mean KL per latent dimension of each group (nats) on ``x0``: a group under ``threshold`` has collapsed."""
        _, kl, _ = self._top_down(len(x0), self._bottom_up(x0))
        dims = torch.tensor(self.sizes, dtype=kl.dtype, device=kl.device)
        return (kl.mean(0) / dims).tolist()

    # ------------------------------------------------------------------ capabilities

    def _image(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float()) * 2 - 1  # the Bernoulli means, in model space

    @torch.no_grad()
    def encode(self, x0: torch.Tensor, steps: int | None = None, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """Every group's posterior mean, flattened top-down: (B, D)."""
        _, _, used = self._top_down(len(x0), self._bottom_up(x0))
        return torch.cat([z.flatten(1) for z in used], 1)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, steps: int | None = None, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """The image of a full code (deterministic: one decoder pass)."""
        return self._image(self._top_down(len(z), given=self._split(z))[0])

    @torch.no_grad()
    def generate(self, seeds: Sequence[int], steps: int | None = None) -> torch.Tensor:
        """Ancestral samples of the prior at ``temperature`` (one seed per image)."""
        eps = self._noise(seeds, self.h0.device)
        return self._image(self._top_down(len(seeds), eps=eps, temperature=self.temperature)[0])

    def mix(self, za: torch.Tensor, zb: torch.Tensor, alpha: float) -> torch.Tensor:
        """``all``: every group mixed linearly; ``top``: the top group mixed, the groups below their prior's means given it
        (what the top latent alone says), so a code between two images is decoded as the hierarchy would generate it."""
        mixed = (1 - alpha) * za + alpha * zb
        if self.interpolate_mode == "all":
            return mixed
        with torch.no_grad():
            top = self._split(mixed)[0]
            _, _, used = self._top_down(len(top), given=[top] + [None] * (sum(self.groups) - 1))
        return torch.cat([z.flatten(1) for z in used], 1)

def build(cfg: dict) -> NVAE:
    net, m = cfg["net"], cfg["models"]["nvae"]
    return NVAE(net["channels"], net["size"], m["channels"], m["latent_channels"], m["groups"], m["kl_warmup"],
                m.get("spectral_reg", 0.0), m.get("temperature", 1.0), m.get("interpolate", "all"))


def train(ctx):
    """Stage ``train``: the warmed-up negative ELBO on the training images."""
    return StagePlan(ctx.build().to(ctx.device), lambda m, x: m.loss(x), ctx.data)
