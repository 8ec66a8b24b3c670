"""The paper's image datasets, streamed: image folders and DiffAE's LMDB files (FFHQ, LSUN Bedroom, CelebA).

None of these can be bundled (tens of GB, their own licences): the user points ``image.data.root`` at a copy.
- ``folder``: every ``.png/.jpg/.jpeg/.webp/.bmp`` below ``root``, in sorted path order.
- ``lmdb``: DiffAE's layout (``phizaz/diffae: dataset.py``), a ``length`` key and one encoded image per record,
  keyed ``<resolution>-<index zero-padded>``: ``ffhq`` ``256-00000`` (JPEG), ``lsun`` ``256-0000000`` (WebP),
  ``celeba`` ``None-0000000`` (full-size aligned CelebA).
Training transforms are DiffAE's: resize the short side to ``size``, centre crop, random horizontal flip; for
``celeba`` first the D2C crop (a 128 x 128 box at top 57, left 25). Flips are drawn with the step's batch
indices (``diled.train.StepBatches``), so a streamed run is as reproducible as an in-memory one: index
``i + n`` means image ``i`` flipped.

``prepare`` writes what the evaluation reads into the workflow's ``.npz``: the first ``reference_size`` images
at model size as the FID / reconstruction reference (DiffAE scores against the first 50k training images),
and a description of the source from which ``training_set`` streams the training images.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from diled.fileio import atomic_path

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LAYOUTS = {"ffhq": ("256", 5), "lsun": ("256", 7), "celeba": ("None", 7)}  # (key prefix, zero padding)
CELEBA_D2C_BOX = (25, 57, 25 + 128, 57 + 128)  # (left, top, right, bottom) of PIL's crop


def _to_array(img, size: int, d2c: bool, where: str) -> np.ndarray:
    """PIL image -> uint8 (3, size, size): optional D2C crop, short side to ``size``, centre crop."""
    import torchvision.transforms.functional as TF

    from diled.metrics.images import check_pixels

    check_pixels(img, where)
    img = img.convert("RGB")
    if d2c:
        img = img.crop(CELEBA_D2C_BOX)
    img = TF.center_crop(TF.resize(img, size), size)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


_ENVS: dict[str, tuple[int, object]] = {}  # root -> (pid that opened it, read-only environment)


def _open_lmdb(root: str):
    """A read-only LMDB handle per path and process. LMDB refuses a second open in one process and a handle should not
    cross a fork: a forked DataLoader worker opens its own, and only if LMDB insists that the parent's inherited
    handle is still the process's (it may after a fork) is that one read from (read-only, no locks)."""
    import os

    import lmdb

    pid, held = os.getpid(), _ENVS.get(root)
    if held is not None and held[0] == pid:
        return held[1]
    try:
        env = lmdb.open(root, readonly=True, lock=False, readahead=False, meminit=False, max_readers=64)
    except lmdb.Error as exc:
        if held is not None and "already open" in str(exc):
            env = held[1]
        else:
            raise ValueError(f"image.data.root: {root} is not a readable LMDB ({exc})") from exc
    _ENVS[root] = (pid, env)
    return env


def _close_lmdb(root: str) -> None:
    held = _ENVS.pop(root, None)
    if held is not None:
        held[1].close()


class PhotoSet(Dataset):
    """Map-style dataset of uint8 images at ``size``; ``set[i]`` is float in [-1, 1], ``set[i + len]`` its mirror."""

    def __init__(self, kind: str, root: str | Path, size: int, layout: str | None = None, hflip: bool = True):
        self.kind, self.root, self.size, self.layout, self.hflip = kind, Path(root), int(size), layout, bool(hflip)
        if not self.root.exists():
            raise FileNotFoundError(f"image.data.root: {self.root} does not exist (see config/README.md, 'Paper-scale data')")
        if kind == "folder":
            self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in EXTENSIONS)
            if not self.files:
                raise ValueError(f"image.data.root: no {'/'.join(EXTENSIONS)} files below {self.root}")
            self.n = len(self.files)
        elif kind == "lmdb":
            if layout not in LAYOUTS:
                raise ValueError(f"image.data.layout must be one of {sorted(LAYOUTS)} for an LMDB, got {layout!r}")
            with self._txn() as txn:
                raw = txn.get(b"length")
            _close_lmdb(str(self.root))  # opened again where images are read (often a DataLoader worker)
            if raw is None:
                raise ValueError(f"{self.root}: no 'length' key: not an LMDB in DiffAE's layout")
            self.n = int(raw.decode())
        else:
            raise ValueError(f"unknown photo dataset kind {kind!r}; choose folder or lmdb")

    def _txn(self):
        return _open_lmdb(str(self.root)).begin(write=False)

    def __len__(self) -> int:
        return self.n

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 (3, size, size), unflipped."""
        from PIL import Image

        if not 0 <= i < self.n:
            raise IndexError(f"image {i} of {self.n}")
        if self.kind == "folder":
            with Image.open(self.files[i]) as img:
                return _to_array(img, self.size, False, str(self.files[i]))
        prefix, pad = LAYOUTS[self.layout]
        key = f"{prefix}-{str(i).zfill(pad)}".encode()
        with self._txn() as txn:
            raw = txn.get(key)
        if raw is None:
            raise KeyError(f"{self.root}: record {key.decode()} missing (length says {self.n})")
        with Image.open(io.BytesIO(raw)) as img:
            return _to_array(img, self.size, self.layout == "celeba", f"{self.root} record {key.decode()}")

    def __getitem__(self, k: int) -> torch.Tensor:
        i, flip = k % self.n, k >= self.n
        x = torch.from_numpy(self.image(i)).float() / 127.5 - 1.0
        return x.flip(-1) if flip else x

    def describe(self) -> dict:
        return {"kind": self.kind, "root": str(self.root.resolve()), "size": self.size, "layout": self.layout,
                "hflip": self.hflip, "length": self.n}


class _Uint8(Dataset):
    def __init__(self, photos: PhotoSet, n: int):
        self.photos, self.n = photos, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        return self.photos.image(i)


def first_images(photos: PhotoSet, n: int, workers: int = 4, batch_size: int = 256) -> np.ndarray:
    """The first ``n`` images as uint8 (n, 3, size, size), decoded by ``workers`` processes, with progress."""
    from tqdm import tqdm

    loader = DataLoader(_Uint8(photos, n), batch_size=batch_size, num_workers=workers, collate_fn=np.stack)
    return np.concatenate(list(tqdm(loader, desc="reference images", mininterval=5.0)))


def source_of(data_config: dict, size: int) -> PhotoSet:
    return PhotoSet(data_config["dataset"], data_config["root"], size, data_config.get("layout"), data_config.get("hflip", True))


def prepare(out: str | Path, data_config: dict, size: int) -> dict:
    """Write ``out`` (.npz: the reference images and the source's description) and return the dataset card."""
    photos = source_of(data_config, size)
    n_ref = data_config["reference_size"]
    if n_ref > len(photos):
        raise ValueError(f"image.data.reference_size ({n_ref}) exceeds the {len(photos)} images in {photos.root}")
    ref = first_images(photos, n_ref, data_config.get("workers", 4))
    source = photos.describe()
    out = Path(out)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, reference_images=ref, reference_labels=np.full(len(ref), -1), source=json.dumps(source))
    return {
        "name": f"{source['kind']}:{source['layout'] or Path(source['root']).name}@{size}",
        "source": source["root"], "source_sha256": "not hashed (a user-provided copy; its length and first records are recorded)",
        "license": "the dataset's own (FFHQ: CC BY-NC-SA 4.0; LSUN and CelebA: research use only)",
        "preprocessing": ("D2C crop (128 box at top 57, left 25), " if source["layout"] == "celeba" else "")
        + f"short side resized to {size} (bilinear, antialiased), centre crop; training adds random horizontal flips",
        "split": {"seed": None, "method": "train on all images; the reference set is the first reference_size of them (DiffAE's FID protocol)",
                  "train": len(photos), "reference": n_ref},
        "reference_digest": hashlib.sha256(ref.tobytes()).hexdigest(),
        "file": out.name, "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }


def write_card(card: dict, path: str | Path) -> None:
    lines = [f"# Dataset card: {card['name']}", "", f"- Source: {card['source']}", f"- License: {card['license']}",
             f"- Preprocessing: {card['preprocessing']}", f"- Split: {card['split']['method']}: {card['split']['train']} train, "
             f"{card['split']['reference']} reference (pixels sha256 `{card['reference_digest']}`)",
             f"- Prepared file: `{card['file']}`, sha256 `{card['sha256']}`", "", "```json", json.dumps(card, indent=2), "```", ""]
    Path(path).write_text("\n".join(lines))


def load(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, labels = -1) of the reference split; the training split streams (``training_set``)."""
    if split != "reference":
        raise ValueError(f"{path}: a streamed photo dataset holds only its reference split in memory (asked for {split!r})")
    with np.load(path, allow_pickle=False) as f:
        return f["reference_images"], f["reference_labels"]


def training_set(path: str | Path) -> PhotoSet:
    """The streamed training images the prepared file describes."""
    with np.load(path, allow_pickle=False) as f:
        s = json.loads(str(f["source"]))
    return PhotoSet(s["kind"], s["root"], s["size"], s["layout"], s["hflip"])


def reference_images(path: str | Path, which: str = "held-out", seed: int = 0) -> np.ndarray:
    if which != "held-out":
        raise ValueError(f"{path}: a photo dataset has one reference set (the first images); asked for {which!r}")
    return load(path, "reference")[0]
