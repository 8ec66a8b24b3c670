"""FID: agreement with pytorch-fid's Frechet distance, protocol tagging, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance

from diled.metrics import fid


def _stats(feats, protocol=fid.PYTORCH_FID):
    return fid.Statistics.of(feats, protocol)


def test_frechet_distance_equals_pytorch_fid():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 64))
    b = rng.normal(size=(200, 64)) @ rng.normal(size=(64, 64)) * 0.3 + 0.2
    ours = fid.frechet_distance(_stats(a), _stats(b))
    ref = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert ours == pytest.approx(ref, rel=1e-6)


def test_rank_deficient_covariances():
    """Fewer samples than dimensions (as in small-sample FID): still finite, equal to pytorch-fid."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 128)), rng.normal(size=(30, 128)) + 0.5
    ours = fid.frechet_distance(_stats(a), _stats(b))
    ref = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert np.isfinite(ours) and ours == pytest.approx(ref, rel=1e-4)


def test_fid_of_set_against_itself_is_zero():
    a = np.random.default_rng(2).normal(size=(500, 32))
    assert abs(fid.frechet_distance(_stats(a), _stats(a))) < 1e-8


def test_gaussians_closed_form():
    """Isotropic Gaussians: FID = ||mu_a - mu_b||^2 + d (s_a - s_b)^2."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(200_000, 4)) * 1.0
    b = rng.normal(size=(200_000, 4)) * 2.0 + 1.0
    assert fid.frechet_distance(_stats(a), _stats(b)) == pytest.approx(4 * 1.0 + 4 * 1.0, rel=0.02)


def test_protocol_mismatch_is_an_error():
    other = fid.FIDProtocol(**{**fid.PYTORCH_FID.__dict__, "resize": "PIL bicubic"})
    a = np.random.default_rng(4).normal(size=(10, 8))
    with pytest.raises(fid.ProtocolMismatch, match="different FID protocols"):
        fid.frechet_distance(_stats(a), _stats(a, other))


def test_statistics_round_trip(tmp_path):
    s = _stats(np.random.default_rng(5).normal(size=(10, 8)))
    s.save(tmp_path / "s.npz")
    back = fid.Statistics.load(tmp_path / "s.npz")
    assert back.protocol == s.protocol and back.count == 10 and np.array_equal(back.sigma, s.sigma)
    assert not list(tmp_path.glob("*.partial*"))


def test_unknown_protocol():
    with pytest.raises(ValueError, match="known: \\['pytorch-fid'\\]"):
        fid.get_protocol("clean-fid")


@pytest.mark.parametrize("images", [
    np.zeros((4, 1, 8, 8), dtype=np.float32),
    np.zeros((1, 1, 8, 8), dtype=np.uint8),
    np.zeros((4, 2, 8, 8), dtype=np.uint8),
])
def test_bad_images_are_refused(images):
    with pytest.raises(ValueError):
        fid.features(images, net=None)


def test_inception_features_of_identical_sets_give_zero_fid():
    net = fid.load_inception("cpu")
    images = np.random.default_rng(6).integers(0, 256, size=(6, 1, 32, 32), dtype=np.uint8)
    f1 = fid.features(images, net, batch_size=3)
    f2 = fid.features(images[::-1].copy(), net, batch_size=6)
    assert f1.shape == (6, 2048)
    np.testing.assert_allclose(np.sort(f1, 0), np.sort(f2, 0), rtol=1e-4, atol=1e-5)
