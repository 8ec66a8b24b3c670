"""Sharded evaluation: shards of a set concatenate to the unsharded set, and merged per-shard results equal the whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_objective import _unzero_output_layers, image_diled

from diled.metrics import recon
from diled.metrics.fid import Statistics, frechet_distance
from diled.metrics.protocols import get_protocol
from diled.modalities.image.model import evaluation_sets


@pytest.mark.parametrize("interp_protocol", ["random", "inverted"])
def test_shards_concatenate_to_the_unsharded_sets(interp_protocol):
    torch.manual_seed(0)
    model = image_diled().eval()
    _unzero_output_layers(model)
    ref = np.random.default_rng(0).integers(0, 256, (9, 1, 8, 8), dtype=np.uint8)
    kw = dict(steps=2, n=7, alphas=[0.5], seed=3, batch_size=1, interp_protocol=interp_protocol)  # batch 1: same arithmetic per row
    whole = evaluation_sets(model, ref, **kw)
    parts = [evaluation_sets(model, ref, lo=lo, hi=hi, **kw) for lo, hi in ((0, 3), (3, 4), (4, 7))]
    assert set(parts[0]) == set(whole)
    for key, value in whole.items():
        assert np.array_equal(np.concatenate([p[key] for p in parts]), value), key
    with pytest.raises(ValueError, match="within 0..7"):
        evaluation_sets(model, ref, lo=5, hi=8, **kw)


def test_merged_shard_features_and_recon_equal_the_whole():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(60, 16))
    ref = Statistics.of(rng.normal(size=(80, 16)) + 0.3, get_protocol("pytorch-fid"))
    whole = frechet_distance(Statistics.of(feats, get_protocol("pytorch-fid")), ref)
    merged = frechet_distance(Statistics.of(np.concatenate([feats[:25], feats[25:]]), get_protocol("pytorch-fid")), ref)
    assert merged == pytest.approx(whole, rel=1e-10)
    per = {"mse": rng.random(10), "ssim": rng.random(10)}
    shards = [{k: v[:4] for k, v in per.items()}, {k: v[4:] for k, v in per.items()}]
    assert recon.summarize({k: np.concatenate([s[k] for s in shards]) for k in per}) == recon.summarize(per)
    assert recon.summarize(per)["mse_sem"] == pytest.approx(per["mse"].std(ddof=1) / np.sqrt(10))
