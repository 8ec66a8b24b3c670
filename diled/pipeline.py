"""The image track of the workflow as functions: build models from config, train each stage, sample sets.

Workflow scripts are thin adapters over these functions, so everything here runs (and is tested)
without Snakemake. Model names: ``ddim``, ``diffae``, ``diled``, ``ldm``, ``cmcd``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from baselines import DDIM, LDM, ConsistencyModel, DiffAE
from diled.data import mnist
from diled.diffusion import Schedule, derive_seed
from diled.files import atomic_path
from diled.modalities.image import PixelDiffusion
from diled.model import DiLED
from diled.nets import ConvDecoder, ConvEncoder, KLEncoder, MLPSkipNet, UNet
from diled.train import TrainResult, TrainSpec, train

MODELS = ("ddim", "diffae", "diled", "ldm", "cmcd")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without a GPU is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config asks for device 'cuda' but no CUDA device is available")
    return torch.device(name)


def setup_torch(threads: int, device: torch.device) -> None:
    """Threads from the rule, deterministic kernels, no TF32 (results must not depend on the GPU generation)."""
    torch.set_num_threads(max(1, int(threads)))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False


# ----------------------------------------------------------------------------- construction


def _pixel(cfg: dict, cond_dim: int) -> PixelDiffusion:
    im = cfg["image"]
    unet = UNet(im["channels"], im["unet"]["base"], im["unet"]["mults"], cond_dim=cond_dim)
    sched = Schedule.make(im["pixel_schedule"], im["pixel_T"])
    return PixelDiffusion(unet, sched, (im["channels"], im["size"], im["size"]))


def _latent_parts(cfg: dict) -> tuple[nn.Module, nn.Module, Schedule]:
    im, lat = cfg["image"], cfg["latent"]
    enc = ConvEncoder(im["channels"], im["encoder"]["base"], im["encoder"]["mults"], im["z_dim"])
    mlp = MLPSkipNet(im["z_dim"], lat["mlp"]["hidden"], lat["mlp"]["layers"], lat["mlp"]["time_dim"])
    sched = Schedule.make("constant", lat["T"], shift=lat["alphabar_shift"], value=lat["beta"])
    return enc, mlp, sched


def _ldm(cfg: dict) -> LDM:
    im, m = cfg["image"], cfg["models"]["ldm"]
    net = m["autoencoder_net"]
    f = 2 ** (len(net["mults"]) - 1)
    enc = KLEncoder(im["channels"], net["base"], net["mults"], net["latent_channels"])
    dec = ConvDecoder(im["channels"], net["base"], net["mults"], net["latent_channels"])
    unet = UNet(net["latent_channels"], m["unet"]["base"], m["unet"]["mults"])
    shape = (net["latent_channels"], im["size"] // f, im["size"] // f)
    latent = PixelDiffusion(unet, Schedule.make(im["pixel_schedule"], im["pixel_T"]), shape, clip=None)
    return LDM(enc, dec, latent, m["kl_weight"], m["perceptual_weight"] if m["perceptual"] else 0.0)


def build(name: str, cfg: dict) -> nn.Module:
    """A freshly initialised model of the named kind, sized by the config."""
    if name == "ddim":
        return DDIM(_pixel(cfg, 0))
    if name == "ldm":
        return _ldm(cfg)
    if name == "cmcd":
        c = cfg["models"]["cmcd"]
        return ConsistencyModel(_pixel(cfg, 0), c["sigma_data"], c["encode_t"], c["intermediate_ts"], c["grid"])
    if name in ("diffae", "diled"):
        enc, mlp, sched = _latent_parts(cfg)
        cls = DiffAE if name == "diffae" else DiLED
        kw = {"w": cfg["models"]["diled"]["w"], "encoder_var": cfg["models"]["diled"]["encoder_var"]} if name == "diled" else {}
        return cls(enc, mlp, _pixel(cfg, cfg["image"]["z_dim"]), sched, cfg["image"]["z_dim"], **kw)
    raise ValueError(f"unknown model {name!r}; known: {MODELS}")


def save_model(model: nn.Module, name: str, cfg: dict, path: str | Path, info: dict[str, Any]) -> None:
    """Checkpoint with everything needed to rebuild it: name, config, weights, training info."""
    with atomic_path(path) as tmp:
        torch.save({"name": name, "config": cfg, "state_dict": model.state_dict(), "info": info}, tmp)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode, checkpoint record)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build(ckpt["name"], ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


def with_w(cfg: dict, w: float) -> dict:
    """A copy of the config with DiLED's w replaced (the w ablation trains DiLED under each)."""
    out = copy.deepcopy(cfg)
    out["models"]["diled"]["w"] = float(w)
    return out


# Config sections each model's training reads (its own, plus those of the models it starts from).
_TRAINED_FROM = {"ddim": ("ddim",), "diffae": ("diffae",), "diled": ("diffae", "diled"), "ldm": ("ldm",), "cmcd": ("ddim", "cmcd")}


def stage_config(cfg: dict, name: str) -> dict:
    """The part of the config that shapes a model's training, and nothing else.

    The workflow keys each run directory (and so Snakemake's rerun decision) by this: changing
    ``models.cmcd`` re-distills CM-CD but leaves the DDIM teacher, DiffAE, DiLED and LDM runs alone.
    """
    if name not in _TRAINED_FROM:
        raise ValueError(f"unknown model {name!r}; known: {MODELS}")
    keys = {k: cfg[k] for k in ("seed", "data", "image", "device")}
    if name in ("diffae", "diled"):
        keys["latent"] = cfg["latent"]
    keys["models"] = {m: cfg["models"][m] for m in _TRAINED_FROM[name]}
    return keys


def train_spec(section: dict, seed: int) -> TrainSpec:
    """TrainSpec from a config section such as ``models.ddim.train``."""
    return TrainSpec(seed=seed, **section)


# ----------------------------------------------------------------------------- training stages


def train_stage(name: str, stage: str, cfg: dict, data: torch.Tensor, run_dir: Path, device: torch.device, init: nn.Module | None = None) -> tuple[nn.Module, TrainResult]:
    """Run one training stage and return (EMA model, result).

    Stages: ddim/train; diffae/autoencoder; diffae/latent (needs ``init``: the stage-1 model);
    diled/train (needs ``init``: the trained DiffAE, whose parts and latent standardization it starts from);
    ldm/autoencoder; ldm/latent (needs ``init``: the stage-1 LDM); cmcd/distill (needs ``init``: the DDIM teacher).
    """
    seed = derive_seed(cfg["seed"], name, stage)
    torch.manual_seed(derive_seed(seed, "init"))  # weight initialisation is part of the run's determinism
    if (name, stage) == ("ddim", "train"):
        model = build("ddim", cfg).to(device)
        spec = train_spec(cfg["models"]["ddim"]["train"], seed)
        res = train(model, lambda m, x: m.loss(x), data, spec, run_dir, desc="ddim")
        return res.ema, res
    if (name, stage) == ("diffae", "autoencoder"):
        model = build("diffae", cfg).to(device)
        params = list(model.encoder.parameters()) + list(model.decoder.parameters())
        spec = train_spec(cfg["models"]["diffae"]["autoencoder"], seed)
        res = train(model, lambda m, x: m.autoencoder_loss(x), data, spec, run_dir, params=params, desc="diffae/autoencoder")
        return res.ema, res
    if (name, stage) == ("diffae", "latent"):
        model = copy.deepcopy(init).to(device).requires_grad_(True)
        raw = encode_all(model.encoder, data.to(device), cfg["eval"]["batch_size"])
        model.fit_standardization(raw)
        z = (raw - model.z_shift) / model.z_scale
        spec = train_spec(cfg["models"]["diffae"]["latent"], seed)
        res = train(model, lambda m, zb: m.latent_loss(zb), z, spec, run_dir, params=model.denoiser.parameters(), desc="diffae/latent")
        return res.ema, res
    if (name, stage) == ("diled", "train"):
        model = build("diled", cfg).to(device)
        model.load_state_dict(init.state_dict())
        spec = train_spec(cfg["models"]["diled"]["train"], seed)
        res = train(model, lambda m, x: m.loss(x), data, spec, run_dir, desc="diled")
        return res.ema, res
    if (name, stage) == ("ldm", "autoencoder"):
        from diled.metrics.recon import load_lpips

        model = build("ldm", cfg).to(device)
        net = cfg["models"]["ldm"]["perceptual"]
        perceptual = load_lpips(net, device) if net else None
        params = list(model.encoder.parameters()) + list(model.decoder.parameters())
        spec = train_spec(cfg["models"]["ldm"]["autoencoder"], seed)
        res = train(model, lambda m, x: m.autoencoder_loss(x, perceptual), data, spec, run_dir, params=params, desc="ldm/autoencoder")
        return res.ema, res
    if (name, stage) == ("ldm", "latent"):
        model = copy.deepcopy(init).to(device).requires_grad_(True)
        means = encode_all(lambda b: model.encoder(b)[0], data.to(device), cfg["eval"]["batch_size"])
        model.fit_scale(means)
        spec = train_spec(cfg["models"]["ldm"]["latent"], seed)
        res = train(model, lambda m, z: m.latent_loss(z), means / model.z_scale, spec, run_dir,
                    params=model.latent.parameters(), desc="ldm/latent")
        return res.ema, res
    if (name, stage) == ("cmcd", "distill"):
        teacher = init.to(device).eval().requires_grad_(False).pixel
        model = build("cmcd", cfg).to(device)
        model.init_from(teacher)
        spec = train_spec(cfg["models"]["cmcd"]["train"], seed)
        res = train(model, lambda m, x, target: m.distillation_loss(x, teacher, target), data, spec, run_dir,
                    desc="cmcd/distill", ema_target=True)
        return res.ema, res
    raise ValueError(f"unknown training stage {name}/{stage}")


@torch.no_grad()
def encode_all(fn, data: torch.Tensor, batch_size: int, desc: str | None = None) -> torch.Tensor:
    """Apply ``fn`` to ``data`` in batches (eval-time encoding, no gradients); a progress bar when ``desc`` is given."""
    starts = range(0, len(data), batch_size)
    if desc is not None:
        starts = tqdm(starts, desc=desc, mininterval=5.0, leave=False)
    return torch.cat([fn(data[i : i + batch_size]) for i in starts])


# ----------------------------------------------------------------------------- evaluation sets


def eval_indices(n_reference: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference images to reconstruct (``a``) and their interpolation partners (``b``), fixed by seed."""
    if not 2 <= n <= n_reference:
        raise ValueError(f"num_samples must lie in 2..{n_reference} (the reference set size), got {n}")
    a = np.random.default_rng(derive_seed(seed, "eval-images") % 2**32).choice(n_reference, n, replace=False)
    return a, np.roll(a, -1)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@torch.no_grad()
def evaluation_sets(
    model: nn.Module,
    reference: np.ndarray,
    steps: int,
    n: int,
    alphas: Sequence[float],
    seed: int,
    batch_size: int,
    desc: str = "sample",
) -> dict[str, np.ndarray]:
    """uint8 image sets ``gen``, ``rec`` and ``interp_<alpha>`` (n each) through the capability interface.

    Each reference image is encoded once; interpolation pairs (a_i, a_{i+1}) reuse those encodings,
    and the decoder noise of pair i is the same for every alpha (a shared x_T).
    """
    device = next(model.parameters()).device
    ia, ib = eval_indices(len(reference), n, seed)
    x = mnist.to_model_space(reference[ia])
    gen_seeds = [derive_seed(seed, "gen", i) for i in range(n)]
    rec_seeds = [derive_seed(seed, "rec", i) for i in range(n)]
    mix_seeds = [derive_seed(seed, "interp", i) for i in range(n)]
    enc_seeds = [derive_seed(seed, "encode", i) for i in range(n)]  # only a stochastic encoder (CM-CD's noising) uses them
    out: dict[str, list[np.ndarray]] = {"gen": [], "rec": [], **{f"interp_{a:g}": [] for a in alphas}}
    codes = []
    for sl in tqdm(_chunks(n, batch_size), desc=f"{desc}/generate+encode", mininterval=5.0):
        codes.append(model.encode(x[sl].to(device), steps, enc_seeds[sl]))
        out["gen"].append(mnist.to_uint8(model.generate(gen_seeds[sl], steps)))
    z = torch.cat(codes)
    z_b = z[torch.as_tensor(np.roll(np.arange(n), -1))]
    for sl in tqdm(_chunks(n, batch_size), desc=f"{desc}/decode", mininterval=5.0):
        out["rec"].append(mnist.to_uint8(model.decode(z[sl], steps, rec_seeds[sl])))
        for a in alphas:
            out[f"interp_{a:g}"].append(mnist.to_uint8(model.decode(model.mix(z[sl], z_b[sl], a), steps, mix_seeds[sl])))
    sets = {k: np.concatenate(v) for k, v in out.items()}
    sets["source_a"], sets["source_b"] = reference[ia], reference[ib]
    return sets

