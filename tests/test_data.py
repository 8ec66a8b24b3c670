"""The embedded MNIST-32 dataset: provenance, split, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from diled import codecs
from diled.modalities.image import mnist
from diled.modalities.image.codec import ImageCodec


def test_prepare_is_deterministic_and_stratified(tmp_path):
    a = mnist.prepare(tmp_path / "a.npz", 500, seed=0)
    b = mnist.prepare(tmp_path / "b.npz", 500, seed=0)
    assert a["sha256"] == b["sha256"]
    assert a["class_counts"]["reference"] == [50] * 10 and a["class_counts"]["train"] == [450] * 10
    images, labels = mnist.load(tmp_path / "a.npz", "reference")
    assert images.shape == (500, 1, 32, 32) and images.dtype == np.uint8 and len(labels) == 500
    # padding is 2 zero pixels on every side; the digits themselves are untouched
    assert images[:, :, :2].max() == 0 and images[:, :, :, -2:].max() == 0
    src, _ = mnist.load_source()
    train, _ = mnist.load(tmp_path / "a.npz", "train")
    assert {im[0, 2:30, 2:30].tobytes() for im in np.concatenate([train, images])} == {im.tobytes() for im in src}


def test_split_depends_on_seed(tmp_path):
    a = mnist.prepare(tmp_path / "a.npz", 100, seed=0)
    b = mnist.prepare(tmp_path / "b.npz", 100, seed=1)
    assert a["sha256"] != b["sha256"]


def test_card_mentions_provenance(tmp_path):
    card = mnist.prepare(tmp_path / "d.npz", 100, seed=0)
    mnist.write_card(card, tmp_path / "card.md")
    text = (tmp_path / "card.md").read_text()
    assert mnist.SOURCE_SHA256 in text and card["sha256"] in text and "CC BY-SA 3.0" in text


@pytest.mark.parametrize("n", [0, 5000])
def test_bad_reference_size(tmp_path, n):
    with pytest.raises(ValueError, match="reference size"):
        mnist.prepare(tmp_path / "x.npz", n, seed=0)
    assert not list(tmp_path.iterdir())


def test_bad_split_name(tmp_path):
    mnist.prepare(tmp_path / "d.npz", 100, seed=0)
    with pytest.raises(ValueError, match="split"):
        mnist.load(tmp_path / "d.npz", "test")


def test_uint8_round_trip():
    x = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    codec = ImageCodec("mnist32")
    assert np.array_equal(codec.to_metric(codec.to_model(x)), x)
    assert codec.to_model(x).min() == -1 and codec.to_model(x).max() == 1


def test_codec_reads_the_dataset_its_config_names(tmp_path):
    codec = codecs.for_track("image", {"data": {"dataset": "mnist32", "reference_size": 100, "split_seed": 0}})
    card = codec.prepare(tmp_path / "d.npz", {"reference_size": 100, "split_seed": 0})
    assert card["split"]["train"] == codec.train_size({"reference_size": 100}) == 4900
    images, labels = codec.load(tmp_path / "d.npz", "reference")
    assert images.shape == (100, 1, 32, 32) and images.dtype == np.uint8 and len(labels) == 100
    with pytest.raises(ValueError, match="unknown image dataset 'cifar'"):
        ImageCodec("cifar")
