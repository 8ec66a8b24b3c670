"""The image codec: uint8 images <-> model tensors in [-1, 1] <-> what FID, LPIPS and PNGs read; and the image datasets.

A config names its dataset (``image.data.dataset``); the codec loads that dataset's module on first use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diled.codecs import DatasetCodec

# Dataset name -> module with prepare(out, reference_size, split_seed) -> card, write_card(card, path),
# load(path, split), reference_images(path, which, seed) and TOTAL (images before the split).
DATASETS = {"mnist32": "diled.modalities.image.mnist", "folder": "diled.modalities.image.photos", "lmdb": "diled.modalities.image.photos"}
STREAMED = ("folder", "lmdb")  # paper-scale sets: the reference split in the .npz, training images streamed from the source


class ImageCodec(DatasetCodec):
    """uint8 images (N, C, H, W) <-> float tensors in [-1, 1] <-> uint8 images (what FID, LPIPS and PNGs read);
    ``load`` gives (uint8 images, labels) of a split."""

    track = "image"

    def __init__(self, dataset: str, size: int | None = None):
        if dataset not in DATASETS:
            raise ValueError(f"unknown image dataset {dataset!r}; known: {sorted(DATASETS)}")
        self.dataset, self.size = dataset, size

    @property
    def streamed(self) -> bool:
        """Training images stream from a user's copy (``diled.modalities.image.photos``) instead of living in the .npz."""
        return self.dataset in STREAMED

    @property
    def labelled(self) -> bool:
        """Whether images carry class labels (the digit judge, probe and editing need them)."""
        from diled.config.views import LABELLED_IMAGE_DATASETS

        return self.dataset in LABELLED_IMAGE_DATASETS

    @property
    def data_module(self) -> str:
        return DATASETS[self.dataset]

    # stored data
    def prepare(self, out: str | Path, data_config: dict) -> dict:
        """Write the prepared dataset (``<track>.data`` of the config) and return its card."""
        if self.streamed:
            return self.data.prepare(out, data_config, self.size)
        return self.data.prepare(out, data_config["reference_size"], data_config["split_seed"])

    def train_size(self, data_config: dict) -> int:
        """Images in the training split the config's data section gives (the embedded set; a streamed set counts its source)."""
        if self.streamed:
            return len(self.data.source_of(data_config, self.size))
        return self.data.TOTAL - data_config["reference_size"]

    def training_data(self, path: str | Path) -> torch.Tensor | torch.utils.data.Dataset:
        """What the image models train on: the training split's images in model space (a streamed Dataset for photos)."""
        if self.streamed:
            return self.data.training_set(path)
        return self.to_model(self.load(path, "train")[0])

    def reference_images(self, path: str | Path, which: str = "held-out", seed: int = 0) -> np.ndarray:
        return self.data.reference_images(path, which, seed)

    # model space
    @staticmethod
    def to_model(images: np.ndarray) -> torch.Tensor:
        """uint8 images -> float32 tensor in [-1, 1]."""
        return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0)

    @staticmethod
    def to_metric(x: torch.Tensor) -> np.ndarray:
        """[-1, 1] tensor -> uint8 array, rounding to nearest (what saving a PNG does)."""
        return ((x.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
