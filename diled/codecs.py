"""One codec per modality: stored data <-> model tensors <-> what the metrics read.

Workflow scripts talk to data only through a codec, so no script imports a dataset module and the
conversions (e.g. uint8 quantisation of images) are written once. A track's config names its
dataset (``<track>.data.dataset``); the codec loads that dataset's module on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

# Dataset name -> module with prepare(out, reference_size, split_seed) -> card, write_card(card, path),
# load(path, split), reference_images(path, which, seed) and TOTAL (images before the split).
DATASETS = {"mnist32": "diled.data.mnist", "folder": "diled.data.photos", "lmdb": "diled.data.photos"}
STREAMED = ("folder", "lmdb")  # paper-scale sets: the reference split in the .npz, training images streamed from the source


class ImageCodec:
    """uint8 images (N, C, H, W) <-> float tensors in [-1, 1] <-> uint8 images (what FID, LPIPS and PNGs read)."""

    track = "image"

    def __init__(self, dataset: str, size: int | None = None):
        if dataset not in DATASETS:
            raise ValueError(f"unknown image dataset {dataset!r}; known: {sorted(DATASETS)}")
        self.dataset, self.size = dataset, size

    @property
    def streamed(self) -> bool:
        """Training images stream from a user's copy (``diled.data.photos``) instead of living in the .npz."""
        return self.dataset in STREAMED

    @property
    def labelled(self) -> bool:
        """Whether images carry class labels (the digit judge, probe and editing need them)."""
        return not self.streamed

    @property
    def data(self) -> ModuleType:
        return importlib.import_module(DATASETS[self.dataset])

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

    def write_card(self, card: dict, path: str | Path) -> None:
        self.data.write_card(card, path)

    def load(self, path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images, labels) of a split."""
        return self.data.load(path, split)

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


class ProteinCodec:
    """int token ids (N, L) over ``ILVFMCAGPTSYWQNHEDKRXJ`` <-> LongTensors <-> residue strings (what the metrics read).

    Stored data pairs each sequence with its fitness: ``load`` returns (tokens, fitness) and
    ``to_model`` turns them into the (tokens, fitness) batch the protein models train on.
    """

    track = "protein"

    def __init__(self, dataset: str, root: str | None = None):
        from diled.data import protein

        if dataset not in protein.LENGTHS:
            raise ValueError(f"unknown protein dataset {dataset!r}; known: {sorted(protein.LENGTHS)}")
        self.dataset, self.root = dataset, root

    @property
    def data(self) -> ModuleType:
        return importlib.import_module("diled.data.protein")

    def prepare(self, out: str | Path, data_config: dict) -> dict:
        return self.data.prepare(out, self.dataset, data_config.get("root", self.root))

    def write_card(self, card: dict, path: str | Path) -> None:
        self.data.write_card(card, path)

    def load(self, path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(int64 tokens (N, L), float32 fitness) of a split."""
        return self.data.load(path, split)

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


class TextCodec:
    """Sentences <-> the model-space tuple (frozen encoder features, decoder ids, labels, noised features) <-> strings.

    The prepared ``.npz`` (``diled.data.text``) holds each split's sentences, labels, decoder token ids, the
    frozen encoder's pooled features and the decoder tokenizer, so no job but ``prepare_data`` runs the
    pretrained encoder.
    """

    track = "text"

    def __init__(self, dataset: str, encoder: str = "minilm"):
        if dataset not in ("snippets", "yelp"):
            raise ValueError(f"unknown text dataset {dataset!r}; known: snippets, yelp")
        self.dataset, self.encoder = dataset, encoder

    @property
    def data(self) -> ModuleType:
        return importlib.import_module("diled.data.text")

    def prepare(self, out: str | Path, data_config: dict) -> dict:
        return self.data.prepare(out, data_config, data_config.get("encoder", self.encoder))

    def write_card(self, card: dict, path: str | Path) -> None:
        self.data.write_card(card, path)

    def load(self, path: str | Path, split: str) -> dict[str, np.ndarray]:
        return self.data.load(path, split)

    def to_model(self, arrays: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
        """A split's arrays -> (features, ids, labels, noised features (N, K, H); K = 0 where none are stored)."""
        feats = torch.from_numpy(arrays["features"])
        noised = sorted(k for k in arrays if k.startswith("features_noised"))
        stack = torch.from_numpy(np.stack([arrays[k] for k in noised], 1)) if noised else feats.new_zeros(len(feats), 0, feats.shape[1])
        return feats, torch.from_numpy(arrays["ids"]), torch.from_numpy(arrays["labels"]), stack

    def training_data(self, path: str | Path, pool: bool = False) -> tuple[torch.Tensor, ...]:
        """The rated training split; with ``pool``, followed by the unlabeled pool (label -1) where the data has one:
        what the pre-training stages read (the LM's first stage, the shared autoencoder). Labels count only where >= 0."""
        train = self.to_model(self.load(path, "train"))
        pool = self.load(path, "pool") if pool else None
        if not pool:
            return train
        return tuple(torch.cat([a, b]) for a, b in zip(train, self.to_model(pool)))

    def tokenizer(self, path: str | Path):
        return self.data.tokenizer_of(path)

    def to_metric(self, ids: torch.Tensor | np.ndarray, tokenizer) -> list[str]:
        """Decoder token rows -> sentences (up to ``<eos>``)."""
        rows = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else ids
        return self.data.decode_ids(tokenizer, rows)


CODECS = {"image": ImageCodec, "protein": ProteinCodec, "text": TextCodec}


def for_track(track: str, track_config: dict) -> ImageCodec | ProteinCodec | TextCodec:
    """The codec of a track, for the dataset its config names."""
    if track not in CODECS:
        raise ValueError(f"no codec for track {track!r}; known: {sorted(CODECS)}")
    data = track_config["data"]
    if track == "protein":
        return ProteinCodec(data["dataset"], data["root"])
    if track == "text":
        return TextCodec(data["dataset"], track_config["net"]["encoder"])
    return ImageCodec(data["dataset"], track_config.get("net", {}).get("size"))
