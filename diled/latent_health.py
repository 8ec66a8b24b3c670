"""Latent health: does a model's decoder use z, and has its encoder collapsed? (issue 10)

Three diagnostics, for any model with the capability interface:

* ``code_spread`` -- the std over images of the standardized encoder mean, averaged over dimensions.
  DiffAE's standardization makes it about 1 on training images; an encoder that collapses towards
  one code (what an unchecked L_latent does to DiLED's) drives it towards 0.
* ``eps_gain`` -- for a z-conditioned pixel decoder, its eps-MSE with a shuffled z over its eps-MSE with
  the true z at several t, with the same x_t and noise (1.0: the decoder ignores z).
* ``class_preservation`` -- the share of reconstructions that an independent pixel classifier (the
  editing table's judge, never shown a latent) assigns the source's digit, per protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from diled.diffusion import derive_seed, seeded_normal
from diled.modalities.image.codec import ImageCodec

EPS_GAIN_TS = (20, 300, 500, 900)


@torch.no_grad()
def code_spread(z: torch.Tensor) -> float:
    """Mean over dimensions of the std over images of the (standardized) codes ``z`` (N, ...)."""
    return float(z.flatten(1).std(0).mean())


@torch.no_grad()
def eps_gain(model, x: torch.Tensor, ts: Sequence[int] = EPS_GAIN_TS, seed: int = 0) -> dict[int, float] | None:
    """MSE(shuffled z) / MSE(true z) of a z-conditioned pixel decoder at each t (None: no such decoder)."""
    decoder = getattr(model, "decoder", None)
    if decoder is None or not getattr(getattr(decoder, "unet", None), "cond_dim", 0):
        return None
    cond = model._decoder_cond(model.encode(x))
    shuffled = cond.roll(1, dims=0)  # every image gets another image's code
    seeds = [derive_seed(seed, "eps-gain", i) for i in range(len(x))]
    eps = seeded_normal(x.shape[1:], seeds, x.device)
    out = {}
    for t in ts:
        tt = torch.full((len(x),), int(t), dtype=torch.long, device=x.device)
        x_t = decoder.schedule.q_sample(x, tt, eps)
        true = (eps - decoder.unet(x_t, tt, cond)).pow(2).mean()
        other = (eps - decoder.unet(x_t, tt, shuffled)).pow(2).mean()
        out[int(t)] = float(other / true)
    return out


def class_preservation(judge: Callable[[np.ndarray], np.ndarray], reconstructions: np.ndarray, labels: np.ndarray) -> float:
    """Share of uint8 reconstructions the judge assigns their source's label."""
    return float((judge(reconstructions) == np.asarray(labels)).mean())


@torch.no_grad()
def model_diagnostics(model, x: torch.Tensor, seed: int = 0, ts: Sequence[int] = EPS_GAIN_TS) -> dict | None:
    """``code_spread`` and ``eps_gain`` of a model with a semantic encoder (DiffAE, DiLED); None for any other."""
    from diled.model import LatentAutoencoder

    if not isinstance(model, LatentAutoencoder):
        return None
    x = x.to(next(model.parameters()).device)
    return {"n": len(x), "code_spread": code_spread(model.encode(x)), "eps_gain": eps_gain(model, x, ts, seed)}


@torch.no_grad()
def diagnose(model, x: torch.Tensor, labels: np.ndarray, judge, steps: int, seed: int = 0,
             ts: Sequence[int] = EPS_GAIN_TS, protocols: Sequence[str] = ("random",)) -> dict:
    """Every diagnostic of one model on images ``x`` (model space) with digit ``labels``; ``judge`` is a fitted pixel classifier."""
    from diled.editing import judge as judge_fn

    device = next(model.parameters()).device
    x = x.to(device)
    seeds = [derive_seed(seed, "health", i) for i in range(len(x))]
    out = {**(model_diagnostics(model, x, seed, ts) or {}), "steps": steps}
    for protocol in protocols:
        rec = ImageCodec.to_metric(model.reconstruct(x, steps, seeds, protocol=protocol))
        out[f"class_preservation_{protocol}"] = class_preservation(lambda im: judge_fn(judge, im), rec, labels)
    return out
