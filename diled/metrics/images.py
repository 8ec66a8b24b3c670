"""Image sets for evaluation: folders, array/tensor files and in-memory generator outputs, one format.

Every source yields uint8 batches of shape (B, 3, H, W), streamed (a folder is never held in
memory at once), and a content hash of exactly those bytes, so a folder of PNGs and the in-memory
tensor they were saved from hash, and score, identically.

Accepted inputs and how they are handled (anything else is refused with ``ImageInputError``):

- folders of ``.png .jpg .jpeg .bmp .webp .tif .tiff`` files (sorted by name; dotfiles ignored);
  modes L and 1 (grayscale) are repeated to RGB, P without transparency is converted to RGB, RGB is
  used as is; RGBA/LA/PA or P with transparency (alpha: compositing is a choice we will not make for
  you), 16-bit and float modes (I;16, I, F: quantization is a choice too) and CMYK/YCbCr are refused;
  a file with another extension, an unreadable or truncated image, and mixed sizes are errors;
- ``.npy`` / ``.npz`` (key ``arr_0``, the guided-diffusion sample format) / ``.pt`` arrays of shape
  (N, C, H, W) or (N, H, W, C) with C in {1, 3}: uint8 used as is, floats taken to be in [-1, 1],
  clipped, and quantized as the protocol says; NaN or inf is an error;
- in memory: numpy arrays or torch tensors with the same rules.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from diled.fileio import memory_limit_bytes, npz_header, regular_file

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
ARRAY_EXTENSIONS = {".npy", ".npz", ".pt"}
DECODE_BUDGET = 1 << 30  # bytes of decoded pixels one folder batch holds at most (whatever the batch size asks)


class ImageInputError(ValueError):
    """An image set that cannot be evaluated as given."""


def quantize(x: np.ndarray, mode: str) -> np.ndarray:
    """Float images in [-1, 1] -> uint8: ``round`` (PNG-like) or ``truncate`` (``.to(uint8)``-like)."""
    if not np.isfinite(x).all():
        raise ImageInputError("images contain NaN or inf")
    u = (np.clip(x.astype(np.float64), -1.0, 1.0) + 1.0) * 127.5
    if mode == "round":
        u = np.round(u)
    elif mode == "truncate":
        u = np.floor(u)
    else:
        raise ValueError(f"unknown quantization {mode!r}")
    return u.astype(np.uint8)


def _check_layout(shape: tuple[int, ...], dtype: np.dtype, where: str) -> bool:
    """Whether images of ``shape`` are (N, C, H, W) (else (N, H, W, C)); refuses any other shape or a dtype that is
    neither uint8 nor float. Needs only what an array file's header says, so a bad file is refused before it inflates."""
    if len(shape) != 4:
        raise ImageInputError(f"{where}: expected 4-D images (N, C, H, W) or (N, H, W, C), got shape {tuple(shape)}")
    if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
        raise ImageInputError(f"{where}: images must be uint8 or float in [-1, 1], got {dtype}")
    if shape[1] in (1, 3):
        return True
    if shape[-1] in (1, 3):
        return False
    raise ImageInputError(f"{where}: no channel axis of size 1 or 3 in shape {tuple(shape)}")


def _to_nchw(arr: np.ndarray, where: str) -> np.ndarray:
    return arr if _check_layout(arr.shape, arr.dtype, where) else arr.transpose(0, 3, 1, 2)


class ImageSource:
    """A finite, ordered set of images streamed as uint8 (B, 3, H, W) batches."""

    description: str = "images"

    def __len__(self) -> int:
        raise NotImplementedError

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def head(self, n: int) -> ImageSource:
        """The first ``n`` images (the protocol's sample count)."""
        if n > len(self):
            raise ImageInputError(f"{self.description}: protocol wants {n} images, only {len(self)} given")
        return _Head(self, n)

    def content_hash(self, batch_size: int = 50) -> str:
        """sha256 of the uint8 (N, 3, H, W) bytes this source yields, with their shape (computed once per source; the
        same whatever the batches). It decodes every image ``batch_size`` at a time, so it is also the check that the
        whole set can be read."""
        if getattr(self, "_content_hash", None) is None:
            h = hashlib.sha256()
            for i, b in enumerate(self.batches(batch_size)):
                if i == 0:  # every image of a set has one shape: hashed once, so the batching does not change the hash
                    h.update(f"{b.shape[1:]}".encode())
                h.update(np.ascontiguousarray(b).tobytes())
            h.update(f"n={len(self)}".encode())
            self._content_hash = h.hexdigest()
        return self._content_hash


class _Head(ImageSource):
    def __init__(self, src: ImageSource, n: int):
        self.src, self.n = src, n
        self.description = f"first {n} of {src.description}"

    def __len__(self) -> int:
        return self.n

    def head(self, n: int) -> ImageSource:
        return self if n == self.n else super().head(n)  # the same head again keeps its computed content hash

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        left = self.n
        for b in self.src.batches(batch_size):
            if left <= 0:
                return
            yield b[:left]
            left -= len(b[:left])


class ArraySource(ImageSource):
    """In-memory images: uint8 used as given; floats in [-1, 1] quantized by ``quantization``."""

    def __init__(self, images: np.ndarray | torch.Tensor, quantization: str = "round", description: str = "array"):
        arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        arr = _to_nchw(arr, description)
        if arr.dtype != np.uint8:
            if not np.issubdtype(arr.dtype, np.floating):
                raise ImageInputError(f"{description}: images must be uint8 or float in [-1, 1], got {arr.dtype}")
            arr = quantize(arr, quantization)
        if len(arr) < 2:
            raise ImageInputError(f"{description}: FID needs at least 2 images, got {len(arr)}")
        self.images = arr
        self.description = description

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        for i in range(0, len(self.images), batch_size):
            b = self.images[i : i + batch_size]
            yield np.repeat(b, 3, axis=1) if b.shape[1] == 1 else b


def check_pixels(img: Image.Image, where: str | Path) -> None:
    """Refuse an image larger than PIL's decompression-bomb threshold (``PIL.Image.MAX_IMAGE_PIXELS``, about 89 MP)
    from its header, before decoding it: PIL itself only warns up to twice that size, and decodes it whole."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.width * img.height > limit:
        raise ImageInputError(f"{where}: refused as a decompression bomb before decoding: {img.width}x{img.height} px "
                              f"({img.width * img.height / 1e6:.0f} MP) exceeds the {limit / 1e6:.0f} MP of PIL.Image.MAX_IMAGE_PIXELS")


def read_image(path: Path) -> np.ndarray:
    """One image file -> uint8 (3, H, W), converting or refusing modes as the module docstring says."""
    try:
        with warnings.catch_warnings():  # PIL only warns below twice its limit; check_pixels refuses instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            check_pixels(img, path)
            img.load()
            mode = img.mode
            if mode == "P" and "transparency" in img.info:
                raise ImageInputError(f"{path}: palette image with transparency (alpha is refused; composite it first)")
            if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
                raise ImageInputError(f"{path}: image has an alpha channel ({mode}); composite it onto a background first")
            if mode.startswith("I") or mode == "F":
                raise ImageInputError(f"{path}: {mode} image (16-bit or float); convert it to 8-bit first")
            if mode not in ("L", "1", "P", "RGB"):
                raise ImageInputError(f"{path}: unsupported image mode {mode}; convert it to RGB first")
            arr = np.asarray(img.convert("RGB"))
    except ImageInputError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageInputError(f"{path}: not an image file PIL can identify") from exc
    except Image.DecompressionBombError as exc:
        raise ImageInputError(f"{path}: refused as a decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError(f"{path}: unreadable or truncated image ({exc})") from exc
    return arr.transpose(2, 0, 1)


class FolderSource(ImageSource):
    """Image files of one folder, sorted by name, decoded lazily batch by batch."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if not folder.is_dir():
            raise ImageInputError(f"{folder}: not a folder")
        files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        others = [p.name for p in files if p.is_dir() or p.suffix.lower() not in IMAGE_EXTENSIONS]
        if not others and (special := [p.name for p in files if not p.is_file()]):  # FIFOs, sockets, devices: reads would block
            raise ImageInputError(f"{folder}: entries that are not regular files {special[:3]}{' ...' if len(special) > 3 else ''} "
                                  "(a FIFO, socket, device or broken link); an image folder holds image files only")
        if others:
            raise ImageInputError(
                f"{folder}: non-image entries {others[:3]}{' ...' if len(others) > 3 else ''} "
                f"(allowed extensions: {' '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        if not files:
            raise ImageInputError(f"{folder}: no images in this folder")
        if len(files) < 2:
            raise ImageInputError(f"{folder}: FID needs at least 2 images, found {len(files)}")
        self.files = files
        self.description = str(folder)
        self._size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """At most ``batch_size`` images a batch, and fewer where their decoded pixels would pass ``DECODE_BUDGET``
        (a few very large images never pile up in memory)."""
        out: list[np.ndarray] = []
        for p in self.files:
            img = read_image(p)
            if self._size is None:
                self._size = img.shape[1:]
            elif img.shape[1:] != self._size:
                raise ImageInputError(
                    f"{p}: size {img.shape[2]}x{img.shape[1]} differs from the folder's first image "
                    f"({self._size[1]}x{self._size[0]}); all images of a set must have one size"
                )
            out.append(img)
            if len(out) == batch_size or (len(out) + 1) * img.nbytes > DECODE_BUDGET:
                yield np.stack(out)
                out = []
        if out:
            yield np.stack(out)


def load_array_file(path: str | Path, quantization: str = "round") -> ArraySource:
    """``.npy`` / ``.npz`` (``arr_0``) / ``.pt`` image array -> ``ArraySource``."""
    path = regular_file(path, "image array file", ImageInputError)

    def check(shape: tuple[int, ...], dtype: np.dtype) -> None:  # from the header, before a byte of pixels is read
        _check_layout(shape, dtype, str(path))
        claimed, limit = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize, memory_limit_bytes()
        if claimed > limit:
            raise ImageInputError(f"{path}: images {tuple(shape)} {dtype} would take {claimed / 2**30:.1f} GiB in memory, more than "
                                  f"half of this machine's ({limit / 2**30:.1f} GiB): pass the images as a folder, which is streamed")

    try:
        if path.suffix == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)  # the header only, until it passes
            check(arr.shape, arr.dtype)
            arr = np.array(arr)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                if "arr_0" not in f.files:
                    raise ImageInputError(f"{path}: .npz image files need an 'arr_0' array (found {f.files})")
                check(*npz_header(f, "arr_0"))  # a compressed member can claim far more than the file's size
                arr = f["arr_0"]
        elif path.suffix == ".pt":
            arr = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(arr, torch.Tensor):
                raise ImageInputError(f"{path}: expected one tensor, got {type(arr).__name__}")
        else:
            raise ImageInputError(f"{path}: unknown array format (use {' '.join(sorted(ARRAY_EXTENSIONS))})")
    except ImageInputError:
        raise
    except Exception as exc:  # corrupt file: numpy/torch raise many kinds
        raise ImageInputError(f"{path}: unreadable array file ({type(exc).__name__}: {exc})") from exc
    return ArraySource(arr, quantization, description=str(path))


def open_source(src: str | Path | np.ndarray | torch.Tensor | ImageSource, quantization: str = "round") -> ImageSource:
    """Any accepted input -> ``ImageSource``."""
    if isinstance(src, ImageSource):
        return src
    if isinstance(src, (np.ndarray, torch.Tensor)):
        return ArraySource(src, quantization)
    path = Path(src)
    if not path.exists():
        raise ImageInputError(f"{path}: no such file or folder")
    if path.is_dir():
        return FolderSource(path)
    return load_array_file(path, quantization)  # refuses a FIFO, socket or device before opening it


def downscale(batch: np.ndarray, size: int) -> np.ndarray:
    """uint8 (B, 3, H, W) -> (B, 3, size, size) with PIL bicubic (antialiased when shrinking)."""
    out = [np.asarray(Image.fromarray(img.transpose(1, 2, 0)).resize((size, size), Image.BICUBIC)) for img in batch]
    return np.stack(out).transpose(0, 3, 1, 2)


def save_folder(images: np.ndarray, folder: str | Path) -> None:
    """uint8 (N, C, H, W) images -> numbered PNGs (for tests and for other tools to read)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        hwc = img.transpose(1, 2, 0)
        Image.fromarray(hwc[..., 0] if hwc.shape[-1] == 1 else hwc).save(folder / f"{i:06d}.png")
