"""The capability interface every model implements, as ``typing.Protocol``s with one signature per method.

Evaluation code asks a model for these and never which model it holds. Randomness at inference comes
from per-sample ``seeds``, so sample i never depends on the batch it is drawn in. ``steps`` counts
the sampling steps of every chain the model runs (DDIM steps, or consistency steps for CM-CD); a
deterministic encoder or decoder accepts ``steps`` and ``seeds`` and ignores them. A model without a
capability does not define the method; its registry entry (``diled.registry``) lists what it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Generates(Protocol):
    def generate(self, seeds: Sequence[int], steps: int) -> torch.Tensor:
        """One sample per seed, in model space."""
        ...


@runtime_checkable
class Encodes(Protocol):
    def encode(self, x0: torch.Tensor, steps: int | None = None, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """The representation of x0 (an encoder mean, or an inverted x_T)."""
        ...

    def decode(self, z: torch.Tensor, steps: int, seeds: Sequence[int]) -> torch.Tensor:
        """Data from a representation; ``seeds`` fix the decoder's own noise."""
        ...

    def mix(self, za: torch.Tensor, zb: torch.Tensor, alpha: float) -> torch.Tensor:
        """The representation between za (alpha = 0) and zb (alpha = 1)."""
        ...


@runtime_checkable
class Autoencodes(Encodes, Protocol):
    def reconstruct(self, x0: torch.Tensor, steps: int, seeds: Sequence[int], protocol: str = "random") -> torch.Tensor: ...

    def interpolate(self, xa: torch.Tensor, xb: torch.Tensor, alpha: float, steps: int, seeds: Sequence[int],
                    seeds_b: Sequence[int] | None = None) -> torch.Tensor: ...


PROTOCOLS = {"generate": Generates, "encode": Encodes, "represent": Encodes, "edit": Encodes,
             "reconstruct": Autoencodes, "interpolate": Autoencodes}


def missing(model: object, capabilities: Sequence[str]) -> list[str]:
    """The listed capabilities whose methods ``model`` lacks (empty when it has them all)."""
    return [c for c in capabilities if c in PROTOCOLS and not isinstance(model, PROTOCOLS[c])]
