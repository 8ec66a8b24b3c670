"""Our protocols against the libraries they stand for, on the same PNG folders of real digits:
`pytorch-fid` vs stock pytorch-fid's calculate_fid_given_paths, `adm` vs torch-fidelity's own FID."""

from __future__ import annotations

import os

import numpy as np
import pytest

from diled import weights
from diled.metrics import fid, images
from diled.modalities.image import mnist

TOLERANCE = 1e-3  # absolute, on FID values of ~100


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """16 vs 20 real MNIST digits (the embedded data's source), as PNG folders (small: the agreement, not the value, is tested)."""
    x = mnist.pad32(mnist.load_source()[0][:36])[:, None]
    root = tmp_path_factory.mktemp("agree")
    images.save_folder(x[:16], root / "a")
    images.save_folder(x[16:], root / "b")
    return root / "a", root / "b"


@pytest.fixture(autouse=True)
def _fresh_feature_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DILED_FEATURE_CACHE", str(tmp_path / "features"))


def test_pytorch_fid_protocol_equals_stock_pytorch_fid(folders, tmp_path, monkeypatch):
    from pytorch_fid.fid_score import calculate_fid_given_paths

    hub = tmp_path / "torch" / "hub" / "checkpoints"  # stock pytorch-fid finds the verified file where torch.hub looks
    hub.mkdir(parents=True)
    os.symlink(weights.resolve(weights.FID_INCEPTION), hub / weights.FID_INCEPTION.filename)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    stock = calculate_fid_given_paths([str(folders[0]), str(folders[1])], 50, "cpu", 2048, 0)
    ours = fid.fid(folders[0], folders[1], fid.PYTORCH_FID)["fid"]
    print(f"pytorch-fid stock {stock:.6f} ours {ours:.6f} diff {ours - stock:.2e}")
    assert ours == pytest.approx(stock, abs=TOLERANCE)


def test_adm_protocol_equals_torch_fidelity(folders, tmp_path):
    import torch_fidelity

    stock = torch_fidelity.calculate_metrics(
        input1=str(folders[0]), input2=str(folders[1]), fid=True, cuda=False, verbose=False, cache=False,
        feature_extractor_weights_path=str(weights.resolve(weights.TORCH_FIDELITY_INCEPTION)), save_cpu_ram=True,
    )["frechet_inception_distance"]
    ref = fid.statistics(folders[1], fid.ADM, role="reference")
    fid.save_reference_batch(np.zeros((1, 3, 2, 2), np.uint8), ref, tmp_path / "ref.npz")  # precomputed mu/sigma
    ours = fid.fid(folders[0], tmp_path / "ref.npz", fid.ADM)["fid"]
    print(f"adm: torch-fidelity {stock:.6f} ours {ours:.6f} diff {ours - stock:.2e}")
    assert ours == pytest.approx(stock, abs=TOLERANCE)
