"""The released consistency model's adapter, with a stand-in pipeline (the real weights are a 2 GB hub download):
official timesteps, per-sample seeding independent of the batch, PIL resize to 128."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from baselines.released_cm import TIMESTEPS, ReleasedConsistency, resize_uint8


class StubPipeline:
    """Mimics ConsistencyModelPipeline.__call__: scales the given latents, adds one draw per generator, returns np images."""

    device = torch.device("cpu")

    def __init__(self):
        self.unet = SimpleNamespace(config=SimpleNamespace(in_channels=3, sample_size=16))
        self.calls = []

    def __call__(self, batch_size, timesteps, generator, latents, output_type):
        self.calls.append(list(timesteps))
        assert len(generator) == batch_size == len(latents) and output_type == "np"
        noise = torch.stack([torch.randn(latents.shape[1:], generator=g) for g in generator])
        x = torch.sigmoid(latents + 0.1 * noise)  # deterministic given latents and generators
        return SimpleNamespace(images=x.permute(0, 2, 3, 1).numpy())


def test_samples_depend_on_their_seed_only_and_use_the_official_steps():
    model = ReleasedConsistency(StubPipeline(), size=8)
    together = model.generate([1, 2, 3])
    apart = np.concatenate([model.generate([1]), model.generate([2, 3])])
    assert together.shape == (3, 3, 8, 8) and together.dtype == np.uint8
    assert np.array_equal(together, apart)
    assert not np.array_equal(together[0], together[1])
    assert model.pipe.calls[0] == list(TIMESTEPS) == [17, 0]
    with pytest.raises(ValueError, match="timesteps"):
        model.generate([1], steps=1)


def test_resize_matches_pil_default():
    from PIL import Image

    img = np.random.default_rng(0).random((1, 16, 16, 3))
    u8 = (img * 255).round().astype(np.uint8)
    want = np.asarray(Image.fromarray(u8[0]).resize((8, 8)))
    assert np.array_equal(resize_uint8(img, 8)[0].transpose(1, 2, 0), want)
    assert np.array_equal(resize_uint8(img, 16)[0].transpose(1, 2, 0), u8[0])  # no resize at the native size
