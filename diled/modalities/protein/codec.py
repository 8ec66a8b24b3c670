"""The protein codec: token ids <-> LongTensors <-> residue strings, with each sequence's fitness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diled.codecs import DatasetCodec


class ProteinCodec(DatasetCodec):
    """int token ids (N, L) over ``ILVFMCAGPTSYWQNHEDKRXJ`` <-> LongTensors <-> residue strings (what the metrics read).

    Stored data pairs each sequence with its fitness: ``load`` returns (tokens, fitness) and
    ``to_model`` turns them into the (tokens, fitness) batch the protein models train on: ``load`` gives
    (int64 tokens (N, L), float32 fitness) of a split.
    """

    track = "protein"
    data_module = "diled.modalities.protein.data"

    def __init__(self, dataset: str, root: str | None = None):
        from diled.modalities.protein import data as protein

        if dataset not in protein.LENGTHS:
            raise ValueError(f"unknown protein dataset {dataset!r}; known: {sorted(protein.LENGTHS)}")
        self.dataset, self.root = dataset, root

    def prepare(self, out: str | Path, data_config: dict) -> dict:
        return self.data.prepare(out, self.dataset, data_config.get("root", self.root))

    def training_data(self, path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        """What the protein models train on: (tokens, fitness) of the training split."""
        return self.to_model(*self.load(path, "train"))

    @staticmethod
    def to_model(tokens: np.ndarray, fitness: np.ndarray | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Token ids -> LongTensor; with fitness, the (tokens, fitness) training pair."""
        x = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
        return x if fitness is None else (x, torch.from_numpy(np.asarray(fitness, dtype=np.float32)))

    def to_metric(self, x: torch.Tensor | np.ndarray, keep_pad: bool = True) -> list[str]:
        """Token ids -> residue strings (with the J pads, as the official metrics read them, or without)."""
        tokens = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
        return self.data.decode(tokens, keep_pad)
