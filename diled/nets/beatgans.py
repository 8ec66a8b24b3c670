"""DiffAE's networks (Preechakul et al. 2022), laid out so that its released checkpoints load by name.

The paper initialises DiLED from DiffAE's checkpoints, so the paper-scale configs use these modules.
Parameter names reproduce DiffAE's ``state_dict`` keys (``input_blocks.1.0.in_layers.2.weight``,
``time_embed.time_embed.0.weight``, ``latent_net.layers.3.cond_layers.1.weight``, ...); the computation is
described in ``../shared/notes/paper-scale.md`` and the class docstrings. ``baselines.released`` converts the
checkpoint files. Conventions these modules keep, because the released weights were trained with them:

- the networks take DiffAE's 0-indexed integer timestep (0..T-1); ``ShiftedTime`` adapts them to this
  suite's 1-indexed t (``diled.diffusion``: alphabar[t] with alphabar[0] = 1), an exact relabelling;
- sinusoidal embeddings put cos before sin; group norms run in float32 (so autocast leaves them exact);
- a ResBlock modulates with the time as ``h * (1 + scale) + shift`` after its second norm, then with z as
  ``h * (1 + W silu(z))`` (scale only); the decoder concatenates ``[h, skip]``;
- attention is single-head self-attention over the spatial positions, at the ``attn`` resolutions and in
  the middle block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def sinusoid(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """DiffAE's timestep embedding: [cos(t f), sin(t f)] with f = max_period^(-k / (dim / 2)), k < dim / 2."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class GroupNorm32(nn.GroupNorm):
    """GroupNorm(32 groups) computed in float32 whatever the input dtype (DiffAE's ``normalization``)."""

    def __init__(self, channels: int):
        super().__init__(min(32, channels), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


class ResBlock(nn.Module):
    """A residual block, optionally resampling (``"up"``: nearest x2, ``"down"``: 2x2 average pool).

    ``conditioned=False`` is the encoder's block: ``skip(x) + conv(silu(norm(x)))`` and nothing else.
    Otherwise the second half is norm -> time scale/shift -> z scale -> SiLU -> dropout -> conv.
    """

    def __init__(self, cin: int, cout: int, emb_dim: int = 512, cond_dim: int = 0, dropout: float = 0.0,
                 resample: str | None = None, conditioned: bool = True):
        super().__init__()
        if resample not in (None, "up", "down"):
            raise ValueError(f"resample must be None, 'up' or 'down', got {resample!r}")
        self.resample = resample
        self.in_layers = nn.Sequential(GroupNorm32(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.conditioned = conditioned
        if conditioned:
            self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * cout))
            if cond_dim:
                self.cond_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, cout))
            self.out_layers = nn.Sequential(GroupNorm32(cout), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        norm, act, conv = self.in_layers
        h = self._resample(act(norm(x)))  # resampled between the activation and the convolution, as the skip path is
        h = conv(h)
        x = self._resample(x)
        if self.conditioned:
            scale, shift = self.emb_layers(emb)[:, :, None, None].chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            if cond is not None and hasattr(self, "cond_emb_layers"):
                h = h * (1 + self.cond_emb_layers(cond)[:, :, None, None])
            h = self.out_layers[3](self.out_layers[2](self.out_layers[1](h)))
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H*W positions, residual; ``qkv`` and ``proj_out`` are 1x1 Conv1d."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        flat = x.reshape(b, c, -1)
        q, k, v = self.qkv(self.norm(flat)).chunk(3, dim=1)  # one head: [q | k | v] along channels
        attn = torch.softmax(torch.einsum("bct,bcs->bts", q, k).float() / math.sqrt(c), dim=-1).type(v.dtype)
        h = torch.einsum("bts,bcs->bct", attn, v)
        return (flat + self.proj_out(h)).reshape(b, c, *spatial)


def _run(block: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor | None, cond: torch.Tensor | None) -> torch.Tensor:
    for layer in block:
        h = layer(h, emb, cond) if isinstance(layer, ResBlock) else layer(h)
    return h


class _TimeStyle(nn.Module):
    """Holder that gives the autoencoder's time MLP DiffAE's key prefix ``time_embed.time_embed``."""

    def __init__(self, ch: int, emb_dim: int):
        super().__init__()
        self.time_embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))


class BeatGANsEncoder(nn.Module):
    """DiffAE's semantic encoder: the UNet's downward half without time, then norm, SiLU, average pool, 1x1 conv to z."""

    def __init__(self, image_size: int, in_ch: int = 3, ch: int = 128, mults: Sequence[int] = (1, 1, 2, 3, 4, 4),
                 num_res_blocks: int = 2, attn: Sequence[int] = (16,), z_dim: int = 512):
        super().__init__()
        blocks, width, res = _down_path(image_size, in_ch, ch, mults, num_res_blocks, attn,
                                        lambda a, b, **kw: ResBlock(a, b, conditioned=False, **kw))
        self.input_blocks = blocks
        self.middle_block = nn.ModuleList([ResBlock(width, width, conditioned=False), AttentionBlock(width),
                                           ResBlock(width, width, conditioned=False)])
        self.out = nn.Sequential(GroupNorm32(width), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, z_dim, 1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for block in self.input_blocks:
            h = _run(block, h, None, None)
        return self.out(_run(self.middle_block, h, None, None))


def _down_path(image_size, in_ch, ch, mults, num_res_blocks, attn, make_res):
    """Input blocks of a BeatGANs UNet / encoder: (ModuleList, final width, per-block skip widths)."""
    width = ch * mults[0]
    blocks = nn.ModuleList([nn.ModuleList([nn.Conv2d(in_ch, width, 3, padding=1)])])
    skips, res = [width], image_size
    for level, mult in enumerate(mults):
        for _ in range(num_res_blocks):
            layers = [make_res(width, ch * mult)]
            width = ch * mult
            if res in attn:
                layers.append(AttentionBlock(width))
            blocks.append(nn.ModuleList(layers))
            skips.append(width)
        if level != len(mults) - 1:
            blocks.append(nn.ModuleList([make_res(width, width, resample="down")]))
            skips.append(width)
            res //= 2
    return blocks, width, skips


class BeatGANsUNet(nn.Module):
    """DiffAE's eps-prediction UNet (``BeatGANsUNetModel``), or with ``z_dim`` its autoencoder (``BeatGANsAutoencModel``).

    With ``z_dim > 0`` every ResBlock takes z as a scale, the time MLP sits under ``time_embed.time_embed``
    and, when ``encoder_mults`` is given, the semantic encoder is ``self.encoder``. ``forward(x, t, z)`` takes
    DiffAE's 0-indexed t and returns eps.
    """

    def __init__(self, image_size: int, in_ch: int = 3, ch: int = 128, mults: Sequence[int] = (1, 1, 2, 3, 4),
                 num_res_blocks: int = 2, attn: Sequence[int] = (16,), dropout: float = 0.1, emb_dim: int = 512,
                 z_dim: int = 0, encoder_mults: Sequence[int] | None = None):
        super().__init__()
        self.ch, self.z_dim, self.cond_dim = ch, z_dim, z_dim
        time_mlp = _TimeStyle(ch, emb_dim)
        self.time_embed = time_mlp if z_dim else time_mlp.time_embed

        def res(a: int, b: int, **kw) -> ResBlock:
            return ResBlock(a, b, emb_dim, z_dim, dropout, **kw)

        self.input_blocks, width, skips = _down_path(image_size, in_ch, ch, mults, num_res_blocks, attn, res)
        self.middle_block = nn.ModuleList([res(width, width), AttentionBlock(width), res(width, width)])
        self.output_blocks = nn.ModuleList()
        resolution = image_size // 2 ** (len(mults) - 1)
        for level, mult in reversed(list(enumerate(mults))):
            for i in range(num_res_blocks + 1):
                layers = [res(width + skips.pop(), ch * mult)]
                width = ch * mult
                if resolution in attn:
                    layers.append(AttentionBlock(width))
                if level and i == num_res_blocks:
                    layers.append(res(width, width, resample="up"))
                    resolution *= 2
                self.output_blocks.append(nn.ModuleList(layers))
        self.out = nn.Sequential(GroupNorm32(width), nn.SiLU(), nn.Conv2d(width, in_ch, 3, padding=1))
        if encoder_mults is not None:
            self.encoder = BeatGANsEncoder(image_size, in_ch, ch, encoder_mults, num_res_blocks, attn, z_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        mlp = self.time_embed.time_embed if self.z_dim else self.time_embed
        emb = mlp(sinusoid(t, self.ch))
        hs, h = [], x
        for block in self.input_blocks:
            h = _run(block, h, emb, z)
            hs.append(h)
        h = _run(self.middle_block, h, emb, z)
        for block in self.output_blocks:
            h = _run(block, torch.cat([h, hs.pop()], dim=1), emb, z)
        return self.out(h)


class _MLPLayer(nn.Module):
    """Linear -> (x (1 + W silu(t_emb)) when conditioned) -> LayerNorm -> SiLU; the last layer is the linear alone."""

    def __init__(self, cin: int, cout: int, emb_dim: int, last: bool):
        super().__init__()
        self.linear = nn.Linear(cin, cout)
        self.last = last
        if not last:
            self.linear_emb = nn.Linear(emb_dim, cout)
            self.cond_layers = nn.Sequential(nn.SiLU(), self.linear_emb)  # the same Linear twice, as DiffAE registers it
            self.norm = nn.LayerNorm(cout)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.linear(h)
        if self.last:
            return h
        return F.silu(self.norm(h * (1 + self.cond_layers(emb))))


class DiffAELatentNet(nn.Module):
    """DiffAE's latent DDIM denoiser (``MLPSkipNet``): ``layers`` x ``hidden``, the input re-concatenated before every layer but the first."""

    def __init__(self, dim: int = 512, hidden: int = 2048, layers: int = 10, time_dim: int = 64):
        super().__init__()
        self.time_dim = time_dim
        self.time_embed = nn.Sequential(nn.Linear(time_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.layers = nn.ModuleList(
            [_MLPLayer(dim if i == 0 else hidden + dim, dim if i == layers - 1 else hidden, dim, i == layers - 1) for i in range(layers)]
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(sinusoid(t, self.time_dim))
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h if i == 0 else torch.cat([h, x], dim=1), emb)
        return h


class ShiftedTime(nn.Module):
    """A DiffAE network under this suite's 1-indexed t: ``net(x, t - 1, ...)`` (DiffAE's index i is our t = i + 1)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.cond_dim = getattr(net, "cond_dim", 0)

    def forward(self, x: torch.Tensor, t: torch.Tensor, *cond: torch.Tensor | None) -> torch.Tensor:
        return self.net(x, t - 1, *cond)


# The released networks' shapes (phizaz/diffae templates.py; ../shared/notes/paper-scale.md)
PRESETS: dict[str, dict] = {
    "ffhq128": {"image_size": 128, "ch": 128, "mults": (1, 1, 2, 3, 4), "encoder_mults": (1, 1, 2, 3, 4, 4), "latent_layers": 10},
    "bedroom128": {"image_size": 128, "ch": 128, "mults": (1, 1, 2, 3, 4), "encoder_mults": (1, 1, 2, 3, 4, 4), "latent_layers": 20},
    "horse128": {"image_size": 128, "ch": 128, "mults": (1, 1, 2, 3, 4), "encoder_mults": (1, 1, 2, 3, 4, 4), "latent_layers": 20},
    "celeba64": {"image_size": 64, "ch": 64, "mults": (1, 2, 4, 8), "encoder_mults": (1, 2, 4, 8, 8), "latent_layers": 10},
}


def autoencoder(preset: str | dict, with_encoder: bool = True) -> BeatGANsUNet:
    """DiffAE's autoencoder (decoder UNet + semantic encoder) of a preset name or a dict of its fields."""
    p = PRESETS[preset] if isinstance(preset, str) else preset
    return BeatGANsUNet(p["image_size"], 3, p["ch"], p["mults"], z_dim=512, encoder_mults=p["encoder_mults"] if with_encoder else None)


def ddpm(preset: str | dict) -> BeatGANsUNet:
    """DiffAE's unconditional DDPM baseline of the same shape (the ``*_ddpm`` checkpoints)."""
    p = PRESETS[preset] if isinstance(preset, str) else preset
    return BeatGANsUNet(p["image_size"], 3, p["ch"], p["mults"])
