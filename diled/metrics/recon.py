"""Reconstruction metrics as DiffAE reports them: LPIPS, MSE, PSNR and SSIM.

- LPIPS v0.1 from the ``lpips`` package (its linear layers ship in the wheel); the ImageNet backbone
  (AlexNet by default, VGG16 optional) is resolved offline-capably by ``diled.weights`` and loaded
  into the package's own network, so the metric is the reference implementation's. Inputs in [-1, 1],
  spatial mean, one value per image.
- MSE on [0, 1] images, mean over pixels; PSNR = 10 log10(1 / MSE) per image, then averaged
  (DiffAE's convention: the mean of per-image PSNRs, not the PSNR of the mean MSE).
- SSIM from ``pytorch_msssim`` (Gaussian window 11, sigma 1.5, data range 1), as DiffAE uses it.

Grayscale images are repeated to three channels for LPIPS (ImageNet backbones expect RGB); MSE,
PSNR and SSIM use the channels as they are.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from diled import weights

_BACKBONES = {"alex": weights.LPIPS_ALEX, "vgg": weights.LPIPS_VGG}


def load_lpips(net: str = "alex", device: torch.device | str = "cpu") -> torch.nn.Module:
    """``lpips.LPIPS`` v0.1 with its backbone loaded from the verified weight chain (no torchvision download)."""
    import lpips

    if net not in _BACKBONES:
        raise ValueError(f"unknown LPIPS backbone {net!r}; known: {sorted(_BACKBONES)}")
    with warnings.catch_warnings():  # lpips 0.1.4 calls torchvision's deprecated `pretrained=`; the backbone is ours
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(weights.resolve(_BACKBONES[net]), map_location="cpu", weights_only=True)
    loaded = 0
    for block in model.net.children():
        for idx, module in block.named_children():  # lpips keeps torchvision's ``features`` indices as names
            if isinstance(module, torch.nn.Conv2d):
                module.weight.data.copy_(state[f"features.{idx}.weight"])
                module.bias.data.copy_(state[f"features.{idx}.bias"])
                loaded += 1
    expected = len(weights._TORCHVISION_CONVS["AlexNet_0" if net == "alex" else "VGG16_0"])
    if loaded != expected:
        raise weights.WeightsError(f"LPIPS-{net}: loaded {loaded} backbone convolutions, expected {expected}")
    return model.eval().requires_grad_(False).to(device)


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float64 in [0, 1] (exact MSE/PSNR; LPIPS and SSIM run in float32)."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images (N, C, H, W), got {images.dtype} {images.shape}")
    return torch.from_numpy(images).double() / 255.0


def lpips(a: torch.Tensor, b: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """Per-image LPIPS of one batch in [-1, 1], differentiable in the inputs (LDM's perceptual loss); grayscale repeated to RGB."""
    if a.shape != b.shape:
        raise ValueError(f"LPIPS needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[1] == 1:
        a, b = a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)
    return model(a, b).flatten()


@torch.no_grad()
def lpips_distance(a: torch.Tensor, b: torch.Tensor, model: torch.nn.Module, batch_size: int = 100) -> torch.Tensor:
    """Per-image LPIPS of images in [-1, 1] (N, C, H, W), in batches on the model's device."""
    if a.shape != b.shape:
        raise ValueError(f"LPIPS needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    device = next(model.parameters()).device
    return torch.cat([lpips(a[i : i + batch_size].to(device), b[i : i + batch_size].to(device), model).cpu()
                      for i in range(0, len(a), batch_size)])


@torch.no_grad()
def per_image_metrics(rec: np.ndarray, source: np.ndarray, lpips_model: torch.nn.Module) -> dict[str, np.ndarray]:
    """LPIPS, MSE, PSNR and SSIM of each uint8 reconstruction against its uint8 source (float64 arrays)."""
    from pytorch_msssim import ssim

    if rec.shape != source.shape:
        raise ValueError(f"reconstructions {rec.shape} and sources {source.shape} differ in shape")
    x, y = to_unit(rec), to_unit(source)
    mse = ((x - y) ** 2).flatten(1).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp(min=1e-10))  # identical images: capped at 100 dB
    per_image = {
        "lpips": lpips_distance(2 * x.float() - 1, 2 * y.float() - 1, lpips_model),
        "mse": mse,
        "psnr": psnr,
        "ssim": ssim(x.float(), y.float(), data_range=1.0, size_average=False),
    }
    return {k: v.double().cpu().numpy() for k, v in per_image.items()}


def summarize(per_image: dict[str, np.ndarray]) -> dict[str, float]:
    """Each metric's mean over images and its standard error (``<metric>_sem``); per-image arrays of several shards
    concatenated give exactly the unsharded summary."""
    out = {k: float(v.mean()) for k, v in per_image.items()}
    out.update({f"{k}_sem": float(v.std(ddof=1) / len(v) ** 0.5) if len(v) > 1 else float("nan")
                for k, v in per_image.items()})
    return out


def reconstruction_metrics(rec: np.ndarray, source: np.ndarray, lpips_model: torch.nn.Module) -> dict[str, float]:
    """Mean LPIPS, MSE, PSNR and SSIM of uint8 reconstructions against their uint8 sources, and each mean's
    standard error over images (``<metric>_sem``: what decides whether two rows differ)."""
    return summarize(per_image_metrics(rec, source, lpips_model))
