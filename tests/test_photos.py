"""Paper-scale image data: DiffAE's LMDB layouts and image folders, the training transforms, and streamed training
that equals in-memory training."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from diled.modalities.image import photos
from diled.modalities.image.codec import ImageCodec
from diled.train import StepBatches, TrainSpec, train


def _img(h: int, w: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def write_lmdb(path: Path, images: list[Image.Image], layout: str, fmt: str = "PNG") -> None:
    """An LMDB in DiffAE's layout: a 'length' key and one encoded image per '<prefix>-<zero-padded index>' record."""
    import lmdb

    prefix, pad = photos.LAYOUTS[layout]
    env = lmdb.open(str(path), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for i, img in enumerate(images):
            buf = io.BytesIO()
            img.save(buf, format=fmt)
            txn.put(f"{prefix}-{str(i).zfill(pad)}".encode(), buf.getvalue())
        txn.put(b"length", str(len(images)).encode())
    env.close()


def test_ffhq_layout_resizes_and_flips(tmp_path):
    imgs = [_img(64, 64, i) for i in range(5)]
    write_lmdb(tmp_path / "ffhq", imgs, "ffhq")  # lossless here, so pixels can be checked
    ds = photos.PhotoSet("lmdb", tmp_path / "ffhq", 32, "ffhq")
    assert len(ds) == 5
    want = np.asarray(imgs[3].resize((32, 32), Image.BILINEAR, reducing_gap=None))
    got = ds.image(3).transpose(1, 2, 0)
    assert got.shape == (32, 32, 3) and np.abs(got.astype(int) - want.astype(int)).max() <= 2  # antialiased bilinear
    x, mirrored = ds[3], ds[3 + len(ds)]
    assert x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
    assert torch.equal(mirrored, x.flip(-1))


def test_celeba_takes_the_d2c_crop(tmp_path):
    base = np.zeros((218, 178, 3), dtype=np.uint8)
    left, top, right, bottom = photos.CELEBA_D2C_BOX
    base[top:bottom, left:right] = 200  # only the D2C box is bright
    write_lmdb(tmp_path / "celeba", [Image.fromarray(base)], "celeba")
    img = photos.PhotoSet("lmdb", tmp_path / "celeba", 64, "celeba").image(0)
    assert img.shape == (3, 64, 64) and (img == 200).all()


def test_folder_of_mixed_sizes_and_bad_sources(tmp_path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    _img(40, 60, 0).save(tmp_path / "imgs" / "a.png")
    _img(50, 50, 1).save(tmp_path / "imgs" / "sub" / "b.jpg")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    ds = photos.PhotoSet("folder", tmp_path / "imgs", 16)
    assert len(ds) == 2 and all(ds.image(i).shape == (3, 16, 16) for i in range(2))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        photos.PhotoSet("folder", tmp_path / "missing", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .png"):
        photos.PhotoSet("folder", tmp_path / "empty", 16)
    import lmdb

    lmdb.open(str(tmp_path / "nolength")).close()
    with pytest.raises(ValueError, match="'length'"):
        photos.PhotoSet("lmdb", tmp_path / "nolength", 16, "ffhq")


def test_prepare_writes_the_first_images_as_reference_and_streams_the_rest(tmp_path):
    write_lmdb(tmp_path / "lsun", [_img(40, 48, i) for i in range(6)], "lsun", fmt="WEBP")
    codec = ImageCodec("lmdb", 16)
    cfg = {"dataset": "lmdb", "root": str(tmp_path / "lsun"), "layout": "lsun", "reference_size": 4, "split_seed": 0, "workers": 0}
    card = codec.prepare(tmp_path / "data.npz", cfg)
    ref, labels = codec.load(tmp_path / "data.npz", "reference")
    ds = codec.training_data(tmp_path / "data.npz")
    assert ref.shape == (4, 3, 16, 16) and (labels == -1).all() and not codec.labelled
    assert np.array_equal(ref[2], ds.image(2)) and len(ds) == 6 and card["split"]["train"] == 6
    with pytest.raises(ValueError, match="reference split"):
        codec.load(tmp_path / "data.npz", "train")
    with pytest.raises(ValueError, match="exceeds the 6 images"):
        codec.prepare(tmp_path / "big.npz", {**cfg, "reference_size": 7})
    assert not (tmp_path / "big.npz").exists()


def _loss(model: nn.Module, batch: torch.Tensor):
    return model(batch.flatten(1)).pow(2).mean(), {}


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_training_equals_in_memory_training(tmp_path, workers):
    imgs = [_img(12, 12, i) for i in range(10)]
    for i, img in enumerate(imgs):
        img.save(tmp_path / f"{i:02d}.png")
    ds = photos.PhotoSet("folder", tmp_path, 8, hflip=False)
    tensor = torch.stack([ds[i] for i in range(len(ds))])
    spec = TrainSpec(steps=4, batch_size=4, lr=0.01, ckpt_every=4, seed=1, workers=workers)
    weights = []
    for name, data in (("memory", tensor), ("streamed", ds)):
        torch.manual_seed(0)
        model = nn.Linear(3 * 8 * 8, 2)
        train(model, _loss, data, spec, tmp_path / name, progress=False)
        weights.append(model.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_flips_are_drawn_with_the_batch():
    spec = TrainSpec(steps=2, batch_size=64, lr=0.1)
    from diled.distributed import World

    plain, flipped = StepBatches(10, spec, 0, World()), StepBatches(10, spec, 0, World(), flips=True)
    a, b = plain.indices(1), flipped.indices(1)
    assert torch.equal(a, b % 10) and (b >= 10).any() and (b < 10).any()
    assert torch.equal(b, StepBatches(10, spec, 0, World(), flips=True).indices(1))  # reproducible
