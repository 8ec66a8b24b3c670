"""DiffAE's released checkpoints: our networks reproduce its key layout, and the converter reads a file written in
that layout (Lightning objects and all) without running anything in it."""

from __future__ import annotations

import collections
import sys
import types
from pathlib import Path

import pytest
import torch

from baselines import ddim, diffae, released
from diled.diffusion import timestep_subsequence
from diled.nets import beatgans

SMALL = {"image_size": 32, "ch": 32, "mults": (1, 2, 2), "encoder_mults": (1, 2, 2, 2), "latent_layers": 3}


class _Exploit:
    """Pickles as a call of ``exec``: a restricted reader must never run it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _lightning_module() -> types.ModuleType:
    """Stand-ins for pytorch_lightning classes, importable while the file is written, gone when it is read."""
    mod = types.ModuleType("fake_pytorch_lightning")

    class ModelCheckpoint:
        pass

    class AttributeDict(dict):
        pass

    for cls in (ModelCheckpoint, AttributeDict):
        cls.__module__, cls.__qualname__ = mod.__name__, cls.__name__
        setattr(mod, cls.__name__, cls)
    return mod


def write_released(path: Path, preset: dict, marker: Path, latent: bool = True, seed: int = 0, half: bool = False) -> dict:
    """A Lightning 1.4-style ``last.ckpt`` in DiffAE's layout with random weights; returns the EMA weights written."""
    torch.manual_seed(seed)
    unet = beatgans.autoencoder(preset)
    parts = {f"{k}": v for k, v in unet.state_dict().items()}
    if latent:
        parts.update({f"latent_net.{k}": v for k, v in beatgans.DiffAELatentNet(512, 2048, preset["latent_layers"]).state_dict().items()})
    ema = {k: torch.randn_like(v) * 0.02 for k, v in parts.items()}  # EMA differs from the raw weights
    for k in [k for k in ema if ".cond_layers.1." in k]:  # one Linear under two names in DiffAE's latent net
        ema[k] = ema[k.replace(".cond_layers.1.", ".linear_emb.")]
    cast = (lambda t: t.half()) if half else (lambda t: t)
    sd = collections.OrderedDict()
    for k, v in parts.items():
        sd[f"model.{k}"] = cast(v)
    for k, v in ema.items():
        sd[f"ema_model.{k}"] = cast(v)
    sd["x_T"] = torch.randn(2, 3, preset["image_size"], preset["image_size"])
    if latent:
        sd["conds_mean"], sd["conds_std"] = torch.randn(1, 512), torch.rand(1, 512) + 0.5
    mod = _lightning_module()
    sys.modules[mod.__name__] = mod
    try:
        torch.save({"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.4.5", "state_dict": sd,
                    "callbacks": {mod.ModelCheckpoint: {"best_model_score": None}}, "optimizer_states": [{"lr": 1e-4}],
                    "hyper_parameters": mod.AttributeDict(net_ch=preset["ch"], trap=_Exploit(marker))}, path)
    finally:
        del sys.modules[mod.__name__]
    return {"ema": ema, "sd": sd}


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("released")
    written = write_released(d / "last.ckpt", SMALL, d / "pwned")
    return d, written


def test_reading_never_runs_code_or_needs_lightning(small_ckpt):
    d, written = small_ckpt
    sd = released.read_checkpoint(d / "last.ckpt")
    assert not (d / "pwned").exists()  # the exec in hyper_parameters was never called
    assert sd.keys() == written["sd"].keys()
    assert all(torch.equal(sd[k], written["sd"][k]) for k in sd)


def test_converted_model_holds_the_ema_weights_and_samples(small_ckpt):
    d, written = small_ckpt
    model = diffae.from_release(d / "last.ckpt", SMALL)
    unet, latent = model.decoder.unet.net, model.denoiser.net
    for k, v in unet.state_dict().items():
        assert torch.equal(v, written["ema"][k]), k
    for k, v in latent.state_dict().items():
        assert torch.equal(v, written["ema"][f"latent_net.{k}"]), k
    assert torch.equal(model.z_shift, written["sd"]["conds_mean"][0]) and torch.equal(model.z_scale, written["sd"]["conds_std"][0])
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, written["ema"][f"encoder.{k}"]), k
    x = model.generate([0, 1], steps=2)
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all() and x.abs().max() <= 1
    raw = diffae.from_release(d / "last.ckpt", SMALL, ema=False)
    assert torch.equal(raw.decoder.unet.net.out[2].weight, written["sd"]["model.out.2.weight"])


def test_released_time_convention_is_an_exact_relabelling(small_ckpt):
    """Our t = DiffAE's 0-indexed i + 1, and ddim spacing feeds the network DiffAE's {0, 100, ..., 900}."""
    d, _ = small_ckpt
    model = diffae.from_release(d / "last.ckpt", SMALL)
    seen = []
    net = model.decoder.unet.net
    hook = net.register_forward_pre_hook(lambda m, args: seen.append(args[1][0].item()))
    z = model.sample_latents([0], steps=10)
    model.decode(z, 10, [0])
    hook.remove()
    assert seen == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert timestep_subsequence(1000, 20, "ddim")[:3] == [1, 51, 101]


def test_wrong_preset_or_file_is_named(small_ckpt, tmp_path):
    d, _ = small_ckpt
    wrong = dict(SMALL, ch=64)
    with pytest.raises(released.CheckpointFormatError, match="shape mismatch"):
        diffae.from_release(d / "last.ckpt", wrong)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(released.CheckpointFormatError, match="not a readable"):
        released.read_checkpoint(junk)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        released.read_checkpoint(tmp_path / "missing.ckpt")
    tampered = released.read_checkpoint(d / "last.ckpt")
    tampered["ema_model.latent_net.layers.0.cond_layers.1.bias"] = tampered["ema_model.latent_net.layers.0.cond_layers.1.bias"] + 1
    torch.save({"state_dict": tampered}, tmp_path / "tampered.ckpt")
    with pytest.raises(released.CheckpointFormatError, match="linear_emb"):
        diffae.from_release(tmp_path / "tampered.ckpt", SMALL)
    write_released(tmp_path / "ae.ckpt", SMALL, tmp_path / "pwned", latent=False)
    with pytest.raises(released.CheckpointFormatError, match="autoenc_latent"):
        diffae.from_release(tmp_path / "ae.ckpt", SMALL)


def test_ddpm_baseline_loads_its_layout(tmp_path):
    torch.manual_seed(1)
    unet = beatgans.ddpm(SMALL)
    sd = {f"ema_model.{k}": v for k, v in unet.state_dict().items()} | {f"model.{k}": v for k, v in unet.state_dict().items()}
    torch.save({"state_dict": sd}, tmp_path / "ddpm.ckpt")
    model = ddim.from_release(tmp_path / "ddpm.ckpt", SMALL)
    assert model.generate([0], steps=2).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("name,keys,params", [
    # DiffAE's own modules at HEAD give these counts (autoencoder incl. encoder; DDPM)
    ("ffhq128", 608, 128_545_155), ("celeba64", 506, 90_839_235),
])
def test_preset_sizes_match_diffae(name, keys, params):
    net = beatgans.autoencoder(name)
    assert len(net.state_dict()) == keys and sum(p.numel() for p in net.parameters()) == params
    if name == "ffhq128":
        ddpm = beatgans.ddpm(name)
        assert len(ddpm.state_dict()) == 432 and sum(p.numel() for p in ddpm.parameters()) == 98_618_499
        lat = beatgans.DiffAELatentNet(512, 2048, 10)
        assert len(lat.state_dict()) == 78 and sum(p.numel() for p in lat.parameters()) == 54_109_696


def test_full_ffhq128_checkpoint_loads(tmp_path):
    """The released FFHQ128 autoencoder + latent net shape end to end (fp16 file to keep it at ~0.7 GB)."""
    written = write_released(tmp_path / "last.ckpt", beatgans.PRESETS["ffhq128"], tmp_path / "pwned", half=True)
    model = diffae.from_release(tmp_path / "last.ckpt", "ffhq128")
    assert not (tmp_path / "pwned").exists()
    assert torch.equal(model.encoder.state_dict()["out.3.weight"], written["ema"]["encoder.out.3.weight"].half().float())
    with torch.no_grad():
        eps = model.decoder.unet(torch.zeros(1, 3, 128, 128), torch.tensor([1]), torch.zeros(1, 512))
    assert eps.shape == (1, 3, 128, 128)
