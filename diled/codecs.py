"""One codec per modality (``diled.modalities.<track>.codec``): stored data <-> model tensors <-> what the metrics read.

Workflow scripts talk to data only through a codec, so no script imports a dataset module and the
conversions (e.g. uint8 quantisation of images) are written once. A track's config names its
dataset (``<track>.data.dataset``); the codec loads that dataset's module on first use.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

CODECS = {"image": "ImageCodec", "protein": "ProteinCodec", "text": "TextCodec"}  # track -> class in its codec module


class DatasetCodec:
    """What every codec shares: its dataset module (``data_module``, imported on first use) writes the dataset card and
    loads a split; each track's codec adds preparation and the conversions to and from model space."""

    track: str
    data_module: str

    @property
    def data(self) -> ModuleType:
        return importlib.import_module(self.data_module)

    def write_card(self, card: dict, path: str | Path) -> None:
        self.data.write_card(card, path)

    def load(self, path: str | Path, split: str) -> Any:
        """A split as the dataset module stores it (each codec's docstring says what that is).

        A file that is not a prepared dataset (truncated, foreign, holding pickled objects or lacking the split) is a
        ``ValueError`` naming it; an ``OSError`` or ``MemoryError`` (the file cannot be read *now*) passes unchanged,
        and nothing is deleted either way."""
        try:
            return self.data.load(path, split)
        except (zipfile.BadZipFile, EOFError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a prepared {self.track} dataset with a {split!r} split ({type(exc).__name__}: "
                             f"{exc}); delete it and rerun: the prepare_data job rebuilds it") from exc


def for_track(track: str, track_config: dict) -> Any:
    """The codec of a track, for the dataset its config names."""
    if track not in CODECS:
        raise ValueError(f"no codec for track {track!r}; known: {sorted(CODECS)}")
    cls = getattr(importlib.import_module(f"diled.modalities.{track}.codec"), CODECS[track])
    data = track_config["data"]
    if track == "protein":
        return cls(data["dataset"], data["root"])
    if track == "text":
        return cls(data["dataset"], track_config["net"]["encoder"], (data.get("pool") or {}).get("rated_copies", 1))
    return cls(data["dataset"], track_config.get("net", {}).get("size"))
