"""Latent arithmetic (the paper's manipulation protocol, transplanted to digits).

DiffAE-style manipulation: a linear classifier on the standardized latent gives a direction; the
encoder mean of a source image is moved along it by a few step sizes and decoded from the source's
own x_T (DDIM inversion conditioned on its z, as DiffAE manipulates images).
Here the "attribute" is the digit class: for a source of class a and target b = (a + 1) mod 10 the
direction is the difference of the two classes' weight vectors of a multinomial logistic
regression fit on standardized latents, normalized to unit length, so a step of s moves z by s
standard deviations of the latent. Success is judged by an *independent* classifier on pixels
(logistic regression on the training images, never shown a latent): how often the edit reaches the
target class; LPIPS to the source measures how much else changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def pixel_classifier(images: np.ndarray, labels: np.ndarray, seed: int = 0):
    """The independent judge: standardize + logistic regression on flattened uint8 pixels."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
    return clf.fit(images.reshape(len(images), -1).astype(np.float32) / 255.0, labels)


def judge(clf, images: np.ndarray) -> np.ndarray:
    """Predicted digit of uint8 images (N, 1, H, W)."""
    return clf.predict(images.reshape(len(images), -1).astype(np.float32) / 255.0)


def class_directions(z: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Unit directions (10, 10, D): ``dirs[a, b]`` moves the latent from class a towards class b."""
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(z, labels)
    w = clf.coef_  # (classes, D) on the standardized latent (the models' latents are standardized)
    diff = w[None, :, :] - w[:, None, :]
    norm = np.linalg.norm(diff, axis=-1, keepdims=True)
    return np.divide(diff, norm, out=np.zeros_like(diff), where=norm > 0)


@torch.no_grad()
def edit(model, x: torch.Tensor, source: np.ndarray, target: np.ndarray, dirs: np.ndarray, scales: Sequence[float],
         steps: int, seeds: Sequence[int]) -> dict[float, torch.Tensor]:
    """Decoded edits z + s * dirs[source, target] for each step size s (s = 0 is the plain reconstruction).

    A model whose decoder draws its own noise (DiffAE, DiLED) decodes every edit from the source's x_T by
    DDIM inversion conditioned on its unedited z (DiffAE's manipulation protocol, the ``inverted``
    reconstruction protocol), so what the edit does not touch stays the source's; ``seeds`` serve the others.
    """
    device = next(model.parameters()).device
    x = x.to(device)
    z = model.encode(x, steps)
    d = torch.as_tensor(dirs[source, target], dtype=z.dtype, device=device).view_as(z)  # directions live on flattened latents
    kw = {"x_T": model.invert_decoder(x, z, steps)} if getattr(model, "stochastic_decoder", False) else {}
    return {s: model.decode(z + s * d, steps, seeds, **kw).cpu() for s in scales}


def figure_examples(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to ``n`` examples for the figure, one per class in class order before any class repeats.

    The edited subset follows the split's order (sorted by class), so its first rows would all be zeros.
    """
    labels = np.asarray(labels)
    rank = np.empty(len(labels), dtype=np.int64)  # position of each example within its class
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rank[members] = np.arange(len(members))
    return np.lexsort((labels, rank))[:n]  # by rank, then class: a round robin over classes
