"""Representation quality: a linear probe (scikit-learn logistic regression on a fixed split) on each
model's representation, and a 2-D projection of the latents coloured by class.

Representations come from the capability interface (``model.encode``): the encoder mean for
DiffAE/DiLED (standardized latent), the DDIM-inverted x_T for DDIM (flattened). The probe is fit on
a seeded subset of the training split and scored on the held-out split, after standardizing each
feature with the training statistics (``StandardScaler``), so no model gains from its latent scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def representations(model: torch.nn.Module, x: torch.Tensor, steps: int, batch_size: int, desc: str = "encode") -> np.ndarray:
    """(N, D) float32 representations of images ``x`` in [-1, 1] through ``model.encode``."""
    from diled.stages import encode_all

    device = next(model.parameters()).device
    return encode_all(lambda b: model.encode(b.to(device), steps).flatten(1).float().cpu(), x, batch_size, desc).numpy()


def linear_probe(train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray, test_y: np.ndarray, seed: int = 0) -> dict:
    """Fit standardize + multinomial logistic regression on train; accuracy on test (and on train)."""
    if len(np.unique(train_y)) < 2:
        raise ValueError("the probe needs at least two classes in its training set")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    clf.fit(train_z, train_y)
    return {"test_accuracy": float(clf.score(test_z, test_y)), "train_accuracy": float(clf.score(train_z, train_y)),
            "train_size": int(len(train_y)), "test_size": int(len(test_y)), "dim": int(train_z.shape[1])}


def subset(n_total: int, n: int, seed: int) -> np.ndarray:
    """Sorted seeded subset of indices (the probe's fixed training split)."""
    if not 0 < n <= n_total:
        raise ValueError(f"probe train size must lie in 1..{n_total}, got {n}")
    return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))


def probe_table(results: Sequence[dict]):
    """DataFrame of probe accuracies, one row per model."""
    import pandas as pd

    return pd.DataFrame([{k: r[k] for k in ("model", "representation", "dim", "train_size", "test_size", "train_accuracy", "test_accuracy")}
                         for r in results])
