"""FID maths and statistics: Frechet distance vs pytorch-fid, square-root edge cases, constant-memory
accumulation, protocol tagging, feature cache, folder vs in-memory paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from diled.metrics import fid, images, protocols


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


def test_small_sets_take_the_gram_form_with_the_root_forms_value():
    """At most d rows: the rows are kept and the Gram form answers; it equals the d x d root form (same moments,
    rows dropped) and pytorch-fid. More rows than d: no rows kept, the root form answers."""
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(40, 64)) * rng.uniform(0.2, 2, 64), rng.normal(size=(64, 64)) + 0.3
    sa, sb = _stats(a), _stats(b)
    assert sa.features is not None and sb.features is not None and _stats(np.vstack([b, b[:1]])).features is None
    gram = fid.frechet_distance(sa, sb)
    root = fid.frechet_distance(*(fid.Statistics(s.mu, s.sigma, s.count, s.protocol) for s in (sa, sb)))
    ref = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert gram == pytest.approx(root, rel=1e-7) and gram == pytest.approx(ref, rel=1e-6)  # root: ~1e-8 of clipped round-off


def test_fid_of_set_against_itself_is_zero():
    a = np.random.default_rng(2).normal(size=(500, 32))
    assert abs(fid.frechet_distance(_stats(a), _stats(a))) < 1e-8


def test_gaussians_closed_form():
    """Isotropic Gaussians: FID = ||mu_a - mu_b||^2 + d (s_a - s_b)^2."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(200_000, 4)) * 1.0
    b = rng.normal(size=(200_000, 4)) * 2.0 + 1.0
    assert fid.frechet_distance(_stats(a), _stats(b)) == pytest.approx(4 * 1.0 + 4 * 1.0, rel=0.02)


def test_singular_covariance_closed_form():
    """Rank-1 covariances (a degenerate set): tr((S_a S_b)^1/2) from the closed form, no NaN."""
    u, v = np.eye(16)[0], np.eye(16)[1]
    a = fid.Statistics(np.zeros(16), 4 * np.outer(u, u), 10, "p")
    b = fid.Statistics(np.ones(16), 9 * np.outer(u, u) + np.outer(v, v), 10, "p")
    # S_a S_b = 36 u u^T: trace of its root is 6; FID = 16 + 4 + 10 - 12
    assert fid.frechet_distance(a, b) == pytest.approx(18.0, abs=1e-9)


def test_tiny_negative_eigenvalues_are_clipped():
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    sigma = (q * np.array([1, 0.5, 0.2, 0.1, 0, 0, -1e-12, -1e-14])) @ q.T  # PSD up to round-off
    s = fid.Statistics(np.zeros(8), sigma, 10, "p")
    assert np.isfinite(s.sigma_sqrt).all()
    assert fid.frechet_distance(s, s) == pytest.approx(0.0, abs=1e-6)  # sqrt of round-off: ~1e-8


def test_asymmetric_round_off_gives_a_real_value():
    """scipy's sqrtm leaves complex residue on such inputs (pytorch-fid then drops .imag); ours is real."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(50, 32))
    sig = np.cov(x, rowvar=False)
    noisy = sig + 1e-13 * rng.normal(size=sig.shape)  # not exactly symmetric
    val = fid.frechet_distance(fid.Statistics(x.mean(0), noisy, 50, "p"), fid.Statistics(x.mean(0) + 0.1, sig, 50, "p"))
    ref = calculate_frechet_distance(x.mean(0), noisy, x.mean(0) + 0.1, sig)
    assert isinstance(val, float) and val == pytest.approx(ref, rel=1e-5)


def test_accumulator_equals_numpy_cov_in_any_batching():
    rng = np.random.default_rng(9)
    feats = rng.normal(size=(103, 2048)) * 0.3 + 0.5
    acc = fid._Accumulator()
    for i in range(0, 103, 17):
        acc.add(feats[i : i + 17])
    s = acc.statistics(fid.PYTORCH_FID, {})
    np.testing.assert_allclose(s.mu, feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.sigma, np.cov(feats, rowvar=False), rtol=1e-9, atol=1e-12)


def test_protocol_mismatch_names_both_protocols():
    a = np.random.default_rng(4).normal(size=(10, 8))
    other = fid.PYTORCH_FID.variant(resize="pil-bicubic")
    with pytest.raises(fid.ProtocolMismatch, match=r"pytorch-fid \(4a8f.*vs pytorch-fid\+resize=pil-bicubic"):
        fid.frechet_distance(_stats(a), _stats(a, other))


def test_statistics_round_trip(tmp_path):
    s = _stats(np.random.default_rng(5).normal(size=(10, fid.DIM)))  # files hold pool3 statistics: 2048-d (checked on load)
    s.save(tmp_path / "s.npz")
    back = fid.Statistics.load(tmp_path / "s.npz")
    assert back.protocol == s.protocol and back.protocol_name == "pytorch-fid" and back.count == 10
    assert np.array_equal(back.sigma, s.sigma)
    assert not list(tmp_path.glob("*.partial*"))


def test_protocol_digests():
    p = protocols
    assert len({x.digest for x in p.PRESETS.values()}) == 3
    assert p.get_protocol("pytorch-fid@128").resolution == 128
    assert p.get_protocol("pytorch-fid@128").digest != p.PYTORCH_FID.digest
    assert p.PYTORCH_FID.variant(resize="pil-bicubic").digest == p.CLEAN_FID.digest  # the name is not hashed
    assert p.PYTORCH_FID.variant(sample_count=5).feature_digest == p.PYTORCH_FID.feature_digest
    assert p.PYTORCH_FID.variant(quantization="truncate").feature_digest != p.PYTORCH_FID.feature_digest
    with pytest.raises(ValueError, match="known: .*adm.*clean-fid.*pytorch-fid"):
        p.get_protocol("torchmetrics")
    with pytest.raises(ValueError, match="resize 'lanczos' not in"):
        p.PYTORCH_FID.variant(resize="lanczos")


def test_quantization_round_and_truncate():
    x = np.array([-1.5, -1.0, 0.0, 0.999, 1.0, 3.0]).reshape(1, 1, 1, 6)
    assert images.quantize(x, "round").ravel().tolist() == [0, 0, 128, 255, 255, 255]
    assert images.quantize(x, "truncate").ravel().tolist() == [0, 0, 127, 254, 255, 255]
    with pytest.raises(images.ImageInputError, match="NaN"):
        images.quantize(np.full((2, 1, 2, 2), np.nan), "round")


@pytest.fixture(scope="module")
def digits():
    """Twelve real-looking images: seeded blobs on 32 x 32 (fast; Inception runs on CPU)."""
    rng = np.random.default_rng(10)
    yy, xx = np.mgrid[:32, :32]
    out = []
    for _ in range(12):
        cy, cx, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(3, 9)
        out.append((255 * (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r)).astype(np.uint8))
    return np.stack(out)[:, None]


@pytest.fixture
def no_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DILED_FEATURE_CACHE", str(tmp_path / "features"))
    return tmp_path / "features"


def test_folder_memory_float_paths_give_identical_statistics(digits, tmp_path, no_cache):
    images.save_folder(digits, tmp_path / "png")
    as_float = torch.from_numpy(digits.astype(np.float32) / 127.5 - 1.0)  # what a generator returns
    s_mem = fid.statistics(digits, fid.PYTORCH_FID, cache=False)
    s_png = fid.statistics(tmp_path / "png", fid.PYTORCH_FID, cache=False)
    s_float = fid.statistics(as_float, fid.PYTORCH_FID, cache=False)
    np.save(tmp_path / "x.npy", digits.transpose(0, 2, 3, 1))  # NHWC file
    s_npy = fid.statistics(tmp_path / "x.npy", fid.PYTORCH_FID, cache=False)
    for s in (s_png, s_float, s_npy):
        assert s.manifest["content_sha256"] == s_mem.manifest["content_sha256"]
        np.testing.assert_array_equal(s.mu, s_mem.mu)
        np.testing.assert_array_equal(s.sigma, s_mem.sigma)
    assert fid.frechet_distance(s_png, s_mem) == pytest.approx(0.0, abs=1e-3)  # rank-11 covariances: ~1e-5 round-off


def test_feature_cache_hit_is_exact_and_reused_across_references(digits, no_cache):
    first = fid.statistics(digits, fid.PYTORCH_FID)
    assert first.manifest["features"] == "computed (cached)" and len(list(no_cache.rglob("*.npy"))) == 1
    again = fid.statistics(digits, fid.PYTORCH_FID.variant(reference_set="train"))  # same features, other reference
    assert again.manifest["features"].startswith("cache:")
    np.testing.assert_array_equal(again.sigma, first.sigma)
    assert again.protocol != first.protocol
    fid.statistics(digits, fid.PYTORCH_FID.variant(quantization="truncate"))  # uint8 input: same bytes, new features key
    assert len(list(no_cache.rglob("*.npy"))) == 2


def test_sample_count_takes_the_first_images(digits, no_cache):
    p = fid.PYTORCH_FID.variant(sample_count=5)
    s = fid.statistics(digits, p)
    ref = fid.statistics(digits[:5], fid.PYTORCH_FID)
    assert s.count == 5 and np.array_equal(s.mu, ref.mu)
    assert fid.statistics(digits, p, role="reference").count == 12
    with pytest.raises(images.ImageInputError, match="wants 20 images, only 12"):
        fid.statistics(digits, fid.PYTORCH_FID.variant(sample_count=20))


def test_fid_of_a_set_against_itself_is_zero_under_every_preset(digits, no_cache, tmp_path):
    for name in ("pytorch-fid", "pytorch-fid@16", "clean-fid"):
        assert fid.fid(digits, digits, protocols.get_protocol(name))["fid"] == pytest.approx(0.0, abs=1e-3)
    ref = fid.statistics(digits, fid.ADM, role="reference")
    fid.save_reference_batch(digits, ref, tmp_path / "ref.npz")
    assert fid.fid(digits, tmp_path / "ref.npz", fid.ADM)["fid"] == pytest.approx(0.0, abs=1e-3)


def test_settings_move_the_score(digits, no_cache):
    """Different resize kernels give different features for the same images (the table's premise)."""
    a = {name: fid.statistics(digits, protocols.get_protocol(name)).mu for name in ("pytorch-fid", "clean-fid")}
    assert np.abs(a["pytorch-fid"] - a["clean-fid"]).max() > 1e-3


def test_precomputed_reference_is_bound_by_sha256(digits, no_cache, tmp_path):
    ref = fid.statistics(digits, fid.ADM, role="reference")
    sha = fid.save_reference_batch(digits, ref, tmp_path / "ref.npz")
    assert sha == fid.save_reference_batch(digits, ref, tmp_path / "again.npz")  # deterministic bytes
    stats, bound = fid.load_reference(tmp_path / "ref.npz", fid.ADM)
    assert bound.reference_sha256 == sha and stats.protocol == bound.digest != fid.ADM.digest
    pinned = fid.ADM.variant(name="adm", reference_sha256="0" * 64)
    with pytest.raises(fid.ProtocolMismatch, match=f"expected {'0' * 64}, found {sha}"):
        fid.load_reference(tmp_path / "ref.npz", pinned)
    with pytest.raises(fid.ProtocolMismatch, match="carries no protocol digest.*on the fly"):
        fid.load_reference(tmp_path / "ref.npz", fid.PYTORCH_FID)
    ours = fid.statistics(digits, fid.PYTORCH_FID, role="reference")
    ours.save(tmp_path / "ours.npz")
    with pytest.raises(fid.ProtocolMismatch, match="was made under protocol pytorch-fid .*not clean-fid"):
        fid.load_reference(tmp_path / "ours.npz", fid.CLEAN_FID)


def test_nan_features_are_an_error(digits, no_cache, monkeypatch):
    monkeypatch.setattr(fid.FeatureExtractor, "__call__", lambda self, b: np.full((len(b), 2048), np.nan))
    monkeypatch.setattr(fid.FeatureExtractor, "__init__", lambda self, p, d="cpu": None)
    with pytest.raises(ValueError, match="NaN"):
        fid.statistics(digits, fid.PYTORCH_FID, cache=False)
