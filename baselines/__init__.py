"""Baselines behind DiLED's capability interface (generate / encode / decode / mix / reconstruct / interpolate)."""

from baselines.cm import ConsistencyModel
from baselines.ddim import DDIM
from baselines.diffae import DiffAE
from baselines.ldm import LDM

__all__ = ["DDIM", "DiffAE", "LDM", "ConsistencyModel"]
