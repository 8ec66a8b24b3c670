"""The independent digit judge: a small CNN trained once, by its own job, on the training split's digits.

It scores what Table 6's rows claim about their images without ever seeing a model's latent: the share of
reconstructions that keep their source's digit (latent health), the share of edits that reach the target digit
(editing), and whether generated samples are digits at all (generation health: the share the judge classifies with
confidence >= ``CONFIDENT``, and the entropy of its predicted class histogram, 1 when every digit is equally
frequent). A judge at the level of the models it judges says nothing; this one reaches about 99% on the held-out
digits (the pixel logistic regression it replaces: 0.83-0.87, so its "class kept" topped out there). The previous
judge is kept beside it for one release (``PixelJudge``) so the change of numbers is visible in the tables.

Stored as plain arrays in one ``.npz`` (the CNN's tensors by name, the pixel judge's coefficients, a JSON record):
loading rebuilds the network and copies tensors in, so nothing in the file can run.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from diled.fileio import atomic_path, regular_file

CONFIDENT = 0.9  # a sample is "recognisable" when the judge gives its top class at least this probability
FORMAT = "diled-digit-judge/1"


class DigitCNN(nn.Module):
    """Two conv blocks (``width``, 2 x ``width`` channels; each two 3x3 convs with batch norm and a 2x2 max-pool) and a
    128-wide head, on 1 x 32 x 32."""

    def __init__(self, width: int = 16):  # 16: 98.4% held-out in 12 epochs; 32 costs 2x for 98.0%
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                    nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

        self.features = nn.Sequential(*block(1, width), *block(width, 2 * width), nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 16, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _as_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, 1, 32, 32) in [0, 1] (RGB averaged: generated sets may repeat the channel)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    if x.ndim != 4:
        raise ValueError(f"the digit judge takes uint8 images (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != 1:
        x = x.mean(1, keepdim=True)
    if x.shape[-2:] != (32, 32):
        x = nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    return x


def _shifted(x: torch.Tensor, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Each image translated by a random whole number of pixels in [-max_shift, max_shift] per axis (zero fill)."""
    n = len(x)
    padded = nn.functional.pad(x, (max_shift,) * 4)
    dy, dx = (torch.randint(0, 2 * max_shift + 1, (n,), generator=gen) for _ in range(2))
    rows = (dy[:, None] + torch.arange(x.shape[-2]))[:, None, :, None].expand(n, 1, x.shape[-2], padded.shape[-1])
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(x.shape[-1]))[:, None, None, :].expand(n, 1, x.shape[-2], x.shape[-1])
    return out.gather(3, cols)


def train(images: np.ndarray, labels: np.ndarray, seed: int, epochs: int = 8, batch_size: int = 64, lr: float = 3e-3,
          progress: bool = False) -> DigitCNN:
    """A ``DigitCNN`` trained with Adam on ``images`` (uint8 (N, C, H, W)) and their digit ``labels``, with random
    shifts of up to 2 px as augmentation; seeded (batches, shifts, dropout, initialisation), so two runs on one
    machine give the same weights. The learning rate decays by cosine to zero over the run."""
    x, y = _as_input(images), torch.as_tensor(np.asarray(labels), dtype=torch.long)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitCNN()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        steps = epochs * math.ceil(len(x) / batch_size)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        model.train()
        for epoch in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch_size):
                idx = order[i : i + batch_size]
                loss = nn.functional.cross_entropy(model(_shifted(x[idx], gen)), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            if progress:
                print(f"digit judge: epoch {epoch + 1}/{epochs}, last loss {loss.item():.4f}", flush=True)
    return model.eval()


@torch.inference_mode()
def predict(model: DigitCNN, images: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(predicted digit, its probability) for each uint8 image (N, C, H, W)."""
    labels, conf = [], []
    for i in range(0, len(images), batch_size):
        p = model(_as_input(images[i : i + batch_size])).softmax(1)
        c, k = p.max(1)
        labels.append(k.numpy())
        conf.append(c.numpy())
    return (np.concatenate(labels), np.concatenate(conf)) if labels else (np.zeros(0, np.int64), np.zeros(0, np.float32))


def generation_health(labels: np.ndarray, confidence: np.ndarray, threshold: float = CONFIDENT) -> dict[str, float]:
    """Are generated images digits, and are all digits there: ``recognisable`` (share with confidence >= threshold)
    and ``class_entropy`` (entropy of the predicted-class histogram over log 10: 1 = every digit equally often,
    0 = one digit only)."""
    hist = np.bincount(np.asarray(labels, dtype=np.int64), minlength=10)[:10].astype(np.float64)
    p = hist / max(hist.sum(), 1.0)
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum() / math.log(10))
    return {"recognisable": float((np.asarray(confidence) >= threshold).mean()) if len(confidence) else float("nan"),
            "class_entropy": entropy}


def assess(model: DigitCNN, pixel: PixelJudge, images: np.ndarray, labels: np.ndarray, settings: dict) -> dict[str, Any]:
    """What the judge's record says of it: held-out accuracy (and the pixel judge's), and the generation-health
    diagnostics of real held-out digits (the level a generator's samples are compared with)."""
    pred, conf = predict(model, images)
    return {"accuracy": float((pred == labels).mean()), "pixel_accuracy": float((pixel.predict(images) == labels).mean()),
            "held_out": len(labels), "real": generation_health(pred, conf), "confident": CONFIDENT,
            "settings": dict(settings), "network": f"DigitCNN ({sum(p.numel() for p in model.parameters()):,} parameters)"}


# ----------------------------------------------------------------------------- the previous judge, kept one release


@dataclass(frozen=True)
class PixelJudge:
    """The judge before the CNN: standardisation + multinomial logistic regression on flattened pixels (scikit-learn),
    kept as its arrays so its verdicts can be shown beside the new judge's for one release."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def fit(cls, images: np.ndarray, labels: np.ndarray, seed: int) -> PixelJudge:
        from diled.editing import pixel_classifier

        clf = pixel_classifier(images, labels, seed % 2**32)  # scikit-learn takes 32-bit seeds
        scaler, lr = clf[0], clf[-1]
        return cls(scaler.mean_, scaler.scale_, lr.coef_, lr.intercept_)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The fitted pipeline's verdicts, step for step as scikit-learn computes them (pixels / 255 in float32,
        standardised in place, then the linear decision function in float64)."""
        z = images.reshape(len(images), -1).astype(np.float32) / 255.0
        z -= self.mean
        z /= self.scale
        return (z @ self.coef.T + self.intercept).argmax(1)


# ----------------------------------------------------------------------------- storage: plain arrays only


def save(path: str | Path, model: DigitCNN, pixel: PixelJudge, record: dict[str, Any]) -> None:
    """The CNN's tensors, the pixel judge's arrays and ``record`` (JSON) in one ``.npz``, written atomically."""
    arrays = {f"cnn.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    arrays.update({f"pixel.{k}": getattr(pixel, k) for k in ("mean", "scale", "coef", "intercept")})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, record=np.array(json.dumps({"format": FORMAT, **record}, sort_keys=True)))


def load(path: str | Path) -> tuple[DigitCNN, PixelJudge, dict[str, Any]]:
    """(CNN in eval mode, pixel judge, record) from a file ``save`` wrote; anything else is a ``ValueError`` naming it."""
    path = regular_file(path, "digit judge file")
    model = DigitCNN()
    wanted = model.state_dict()
    try:
        with np.load(path, allow_pickle=False) as f:
            record = json.loads(str(f["record"]))
            if not isinstance(record, dict) or record.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            state = {k: torch.from_numpy(f[f"cnn.{k}"]) for k in wanted}
            pixel = PixelJudge(*(f[f"pixel.{k}"] for k in ("mean", "scale", "coef", "intercept")))
    except (KeyError, ValueError, EOFError, zipfile.BadZipFile, RecursionError) as exc:  # an OSError (read it again) passes
        raise ValueError(f"{path}: not a digit judge file ({type(exc).__name__}: {str(exc)[:200]}); delete it and rerun: "
                         "the image_judge job rebuilds it") from exc
    bad = [k for k in wanted if state[k].shape != wanted[k].shape]
    if bad:
        raise ValueError(f"{path}: tensors {bad[:3]} have other shapes than the judge's network")
    model.load_state_dict(state)
    return model.eval(), pixel, record
