"""DDIM baseline: an unconditional pixel diffusion. With no encoder, its latent is x_T by DDIM inversion."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from baselines import released
from diled.diffusion import GaussianDiffusion, slerp
from diled.model import Autoencoding
from diled.stages import StagePlan


class DDIM(Autoencoding):
    """Unconditional pixel UNet; reconstruction and interpolation go through DDIM inversion of x_T."""

    def __init__(self, pixel: GaussianDiffusion, interpolation: str = "slerp"):
        super().__init__()
        if pixel.unet.cond_dim:
            raise ValueError("the DDIM baseline needs an unconditional UNet (cond_dim = 0)")
        if interpolation not in ("slerp", "lerp"):
            raise ValueError(f"DDIM interpolation must be slerp or lerp, got {interpolation!r}")
        self.pixel = pixel
        self.interpolation = interpolation

    def loss(self, x0: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Simple eps-matching loss (Ho et al. 2020)."""
        loss = self.pixel.loss(x0).mean()
        return loss, {"eps": loss.item()}

    @torch.no_grad()
    def encode(self, x0: torch.Tensor, steps: int | None = None, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """x_T by deterministic DDIM inversion with ``steps`` steps (the paper's stand-in for an encoder)."""
        if steps is None:
            raise ValueError("DDIM's representation is the inverted x_T: pass the number of steps")
        return self.pixel.invert(x0, steps)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, steps: int, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """Deterministic DDIM from x_T = z."""
        return self.pixel.sample(z, steps)

    def mix(self, za: torch.Tensor, zb: torch.Tensor, alpha: float) -> torch.Tensor:
        """``slerp`` (default: x_T is Gaussian noise, whose norm a lerp would shrink) or ``lerp`` (the official script)."""
        return slerp(za, zb, alpha) if self.interpolation == "slerp" else (1 - alpha) * za + alpha * zb

    @torch.no_grad()
    def generate(self, seeds: Sequence[int], steps: int) -> torch.Tensor:
        """Decode seeded x_T."""
        return self.decode(self.pixel.noise(seeds, next(self.parameters()).device), steps)


def build(cfg: dict) -> DDIM:
    from diled.modalities.image.model import pixel_diffusion

    return DDIM(pixel_diffusion(cfg, 0), cfg["models"]["ddim"].get("interpolation", "slerp"))


def train(ctx):
    """Stage ``train``: the simple eps loss on pixels (or, with ``models.ddim.released``, DiffAE's released ``*_ddpm``)."""
    if ctx.cfg["models"]["ddim"].get("released"):
        return released.stage_from_release(ctx, "ddim", released.load_ddpm)
    return StagePlan(ctx.build().to(ctx.device), lambda m, x: m.loss(x), ctx.data)


def from_release(path: str | Path, preset: str | dict, ema: bool = True, spacing: str = "ddim") -> DDIM:
    """A released ``*_ddpm`` checkpoint as the DDIM baseline."""
    from diled.modalities.image.model import pixel_diffusion

    return released.load_ddpm(DDIM(pixel_diffusion(released.preset_config(preset, spacing), 0)), path, ema).eval()
