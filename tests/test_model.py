"""DiLED and the baselines behind one capability interface: behaviour, determinism, learning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_objective import image_diled

from baselines import DDIM
from diled.diffusion import GaussianDiffusion, Schedule
from diled.modalities.tokens import CategoricalDecoder, TokenEncoder
from diled.model import DiLED
from diled.nets import MLPSkipNet, UNet
from diled.train import TrainSpec, train

SEEDS = [11, 12, 13, 14]


def test_categorical_diled_learns_to_reconstruct_and_generate(tmp_path):
    """Four token sequences: after training, reconstruction is exact and generations are training sequences."""
    torch.manual_seed(0)
    data = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1], [7, 7, 8, 8, 9, 9], [10, 0, 10, 0, 10, 0]])
    sched = Schedule.make("constant", 200, value=0.03)
    model = DiLED(TokenEncoder(11, 6, 4, 32), MLPSkipNet(4, 64, 3, 16), CategoricalDecoder(11, 6, 4, 64), sched, 4, w=8.0)
    res = train(model, lambda m, x: m.loss(x), data.repeat(8, 1), TrainSpec(steps=400, batch_size=16, lr=3e-3, ema_decay=0.9, ckpt_every=400), tmp_path, progress=False)
    ema = res.ema
    assert torch.equal(ema.reconstruct(data, steps=1, seeds=[0] * 4), data)
    samples = ema.generate(list(range(32)), steps=50)
    rows = {tuple(r) for r in data.tolist()}
    hits = sum(tuple(s) in rows for s in samples.tolist())
    assert hits >= 24, f"only {hits}/32 generations are training sequences"


def test_image_capabilities_shapes_and_per_sample_seeds():
    model = image_diled().eval()
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    gen = model.generate(SEEDS, steps=3)
    assert gen.shape == (4, 1, 8, 8) and gen.abs().max() <= 1
    torch.testing.assert_close(model.generate(SEEDS[1:3], steps=3), gen[1:3])
    assert model.encode(x).shape == (4, 4)
    rec = model.reconstruct(x, 3, SEEDS)
    torch.testing.assert_close(model.interpolate(x, x.flip(0), 0.0, 3, SEEDS), rec)
    torch.testing.assert_close(model.interpolate(x, x.flip(0), 1.0, 3, SEEDS), model.reconstruct(x.flip(0), 3, SEEDS))
    with pytest.raises(ValueError):
        model.generate(SEEDS, steps=0)


def test_ddim_baseline_uses_inversion_for_its_latent():
    torch.manual_seed(0)
    ddim = DDIM(GaussianDiffusion(UNet(1, 8, (1, 2)), Schedule.make("linear", 1000), (1, 8, 8))).eval()
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    z = ddim.encode(x, steps=5)
    assert z.shape == x.shape
    torch.testing.assert_close(ddim.reconstruct(x, 5, [0, 1]), ddim.decode(z, 5))
    with pytest.raises(ValueError):
        ddim.encode(x)
    with pytest.raises(ValueError):
        DDIM(GaussianDiffusion(UNet(1, 8, (1, 2), cond_dim=4), Schedule.make("linear", 10), (1, 8, 8)))


def test_standardization_round_trips_through_decoder_conditioning():
    model = image_diled()
    model.z_shift.fill_(3.0)
    model.z_scale.fill_(2.0)
    x = torch.rand(2, 1, 8, 8)
    raw = model.encoder(x)
    torch.testing.assert_close(model.encode(x), (raw - 3) / 2)
    torch.testing.assert_close(model._decoder_cond(model.encode(x)), raw)


def test_training_stage_is_deterministic(tmp_path):
    """Two runs of a stage from scratch (fresh process state) give bit-identical weights."""

    from diled import stages
    from diled.config import load_config, track_view
    from diled.diffusion import derive_seed

    cfg = track_view(load_config(Path(__file__).resolve().parent.parent / "config/smoke.yaml"), "image")
    cfg["models"]["ddim"]["train"]["steps"] = 3
    data = torch.rand(32, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    weights = []
    for run in ("a", "b"):
        torch.manual_seed(derive_seed(run))  # whatever the global RNG holds before must not matter
        model, _, _ = stages.train_stage("image", "ddim", "train", cfg, data, tmp_path / run, torch.device("cpu"))
        weights.append(model.state_dict())
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k


def test_stage_config_holds_each_model_and_what_it_starts_from():
    """What keys a run directory: a model's own section and its parents', never a sibling's."""

    from diled import registry
    from diled.config import load_config, stage_config, track_view

    cfg = track_view(load_config(Path(__file__).resolve().parent.parent / "config/smoke.yaml"), "image")
    assert set(stage_config(cfg, "image", "ddim")["models"]) == {"ddim"}
    assert set(stage_config(cfg, "image", "diled")["models"]) == {"diffae", "diled"}
    assert set(stage_config(cfg, "image", "cmcd")["models"]) == {"ddim", "cmcd"}  # the teacher shapes the student
    assert set(stage_config(cfg, "image", "diled_w0.5")["models"]) == {"diffae", "diled"}  # a variant keys like its base
    assert "latent" in stage_config(cfg, "image", "diffae") and "latent" not in stage_config(cfg, "image", "ldm")
    for name in registry.names("image"):
        assert stage_config(cfg, "image", name)["seed"] == cfg["seed"]
    with pytest.raises(KeyError, match="no model 'vae' in track 'image'"):
        stage_config(cfg, "image", "vae")
