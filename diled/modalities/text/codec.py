"""The text codec: prepared sentences <-> the model-space tuple <-> strings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diled.codecs import DatasetCodec


class TextCodec(DatasetCodec):
    """Sentences <-> the model-space tuple (frozen encoder features, decoder ids, labels, noised features) <-> strings.

    The prepared ``.npz`` (``diled.modalities.text.data``) holds each split's sentences, labels, decoder token ids, the
    frozen encoder's pooled features and the decoder tokenizer, so no job but ``prepare_data`` runs the
    pretrained encoder; ``load`` gives a split's arrays by name.
    """

    track = "text"
    data_module = "diled.modalities.text.data"

    def __init__(self, dataset: str, encoder: str = "minilm", rated_copies: int = 1):
        if dataset not in ("snippets", "yelp"):
            raise ValueError(f"unknown text dataset {dataset!r}; known: snippets, yelp")
        if int(rated_copies) < 1:
            raise ValueError(f"text.data.pool.rated_copies must be at least 1, got {rated_copies}")
        self.dataset, self.encoder, self.rated_copies = dataset, encoder, int(rated_copies)

    def prepare(self, out: str | Path, data_config: dict) -> dict:
        return self.data.prepare(out, data_config, data_config.get("encoder", self.encoder))

    def to_model(self, arrays: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
        """A split's arrays -> (features, ids, labels, noised features (N, K, H); K = 0 where none are stored)."""
        feats = torch.from_numpy(arrays["features"])
        noised = sorted(k for k in arrays if k.startswith("features_noised"))
        stack = torch.from_numpy(np.stack([arrays[k] for k in noised], 1)) if noised else feats.new_zeros(len(feats), 0, feats.shape[1])
        return feats, torch.from_numpy(arrays["ids"]), torch.from_numpy(arrays["labels"]), stack

    def training_data(self, path: str | Path, pool: bool = False) -> tuple[torch.Tensor, ...]:
        """The rated training split; with ``pool``, followed by the unlabeled pool (label -1) where the data has one:
        what the pre-training stages read (the LM's first stage, the shared autoencoder). Labels count only where >= 0.

        Beside a pool the rated rows come ``rated_copies`` times (``text.data.pool.rated_copies``): in-domain
        oversampling, since the rated snippets are 2% of the embedded pool and the test split is drawn from them."""
        train = self.to_model(self.load(path, "train"))
        pool = self.load(path, "pool") if pool else None
        if not pool:
            return train
        return tuple(torch.cat([a] * self.rated_copies + [b]) for a, b in zip(train, self.to_model(pool)))

    def tokenizer(self, path: str | Path):
        return self.data.tokenizer_of(path)

    def to_metric(self, ids: torch.Tensor | np.ndarray, tokenizer) -> list[str]:
        """Decoder token rows -> sentences (up to ``<eos>``)."""
        rows = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else ids
        return self.data.decode_ids(tokenizer, rows)
