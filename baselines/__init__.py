"""Baselines behind DiLED's capability interface (generate / encode / decode / mix / reconstruct / interpolate)."""

from baselines.ddim import DDIM
from baselines.diffae import DiffAE

__all__ = ["DDIM", "DiffAE"]
