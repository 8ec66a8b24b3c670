"""DiffAE's released checkpoints (``phizaz/diffae``: ``checkpoints/<name>/last.ckpt``) as this suite's models.

The files are PyTorch Lightning 1.4 checkpoints: ``state_dict`` holds ``model.*`` (raw weights), ``ema_model.*``
(the EMA, which DiffAE samples with), a buffer ``x_T`` and, in ``*_autoenc_latent`` files, the latent
standardisation ``conds_mean`` / ``conds_std`` (1, 512) and the latent net under ``*.latent_net.*``. Beside it the
pickle holds Lightning objects (callbacks keyed by their class, hyper-parameter dicts). ``read_checkpoint``
never imports or runs any of those: its unpickler builds tensors and plain containers and turns every other
global into an inert placeholder, so a file from anywhere is safe to read and Lightning need not be installed.

``baselines.diffae.from_release`` puts the weights into ``baselines.diffae.DiffAE`` (so the workflow's sampling, reconstruction
and evaluation run on them unchanged), with DiffAE's schedules (linear betas on pixels, constant 0.008 on
latents, T = 1000) and its ``ddim`` timestep spacing; ``baselines.ddim.from_release`` does the same for the ``*_ddpm`` baselines.
"""

from __future__ import annotations

import io
import pickle
import types
from pathlib import Path

import torch
from torch import nn

from diled.fileio import is_out_of_memory, read_bytes, read_failure
from diled.nets import beatgans
from diled.train import TrainResult

# Globals a checkpoint's pickle may build for real: tensor reconstruction and plain containers.
_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
}


class Opaque(dict):
    """Stands in for any object the checkpoint names but this suite does not trust (Lightning callbacks, numpy
    scalars, ``eval``...). It accepts whatever pickle feeds it, keeps it inertly, and never calls anything."""

    def __new__(cls, *args, **kwargs):
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.args = args

    def __setstate__(self, state):
        self.state = state

    # hashable by identity: a checkpoint may key a dict with such an object (Lightning keys callbacks by class)
    __hash__ = object.__hash__
    __eq__ = object.__eq__

    def append(self, item):
        self.setdefault("__items__", []).append(item)

    def extend(self, items):
        self.setdefault("__items__", []).extend(items)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        # a fresh class per name: hashable (callbacks are dict keys), and named for error messages
        return type(f"Opaque[{module}.{name}]", (Opaque,), {})


def _restricted_load(file, **kwargs):
    """``pickle.load`` through the restricted unpickler. torch's legacy (non-zip) and tar readers call the module's
    ``load`` for the leading records (magic number, protocol, system info) before any ``Unpickler``: an ordinary
    ``pickle.load`` there would run whatever a raw pickle file opens with."""
    return _RestrictedUnpickler(file, **kwargs).load()


# torch.load(pickle_module=...) needs a module-like object; both of its entry points must be the restricted ones
_restricted = types.SimpleNamespace(Unpickler=_RestrictedUnpickler, load=_restricted_load, __name__="diled_restricted_pickle")


class CheckpointFormatError(ValueError):
    """The file is not a DiffAE checkpoint of the expected shape."""


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a Lightning checkpoint, read without unpickling anything but tensors and containers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (DiffAE's README links the released last.ckpt files)")
    raw = read_bytes(path)  # an I/O error is a ReadFailure here, never "not a checkpoint"
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", pickle_module=_restricted, weights_only=False)
    except Exception as exc:  # whatever a foreign or damaged file makes torch or pickle raise
        if is_out_of_memory(exc):
            raise read_failure(path, exc) from exc
        raise CheckpointFormatError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    del raw
    sd = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointFormatError(f"{path}: no 'state_dict' of tensors (is it a PyTorch Lightning checkpoint?)")
    return dict(sd)


def split(sd: dict[str, torch.Tensor], ema: bool = True) -> dict[str, dict[str, torch.Tensor] | torch.Tensor]:
    """The parts of a DiffAE state dict: ``unet`` (with ``encoder.*``), ``latent_net``, ``conds_mean``, ``conds_std``."""
    prefix = "ema_model." if ema else "model."
    mine = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not mine:
        raise CheckpointFormatError(f"no '{prefix}*' weights (keys start with {sorted({k.split('.')[0] for k in sd})})")
    parts: dict = {
        "unet": {k: v for k, v in mine.items() if not k.startswith("latent_net.")},
        "latent_net": {k[len("latent_net."):]: v for k, v in mine.items() if k.startswith("latent_net.")},
    }
    for key in ("conds_mean", "conds_std"):
        if key in sd:
            parts[key] = sd[key].reshape(-1)
    return parts


def _load(module: nn.Module, weights: dict[str, torch.Tensor], what: str) -> None:
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:  # name the mismatch in one line, not PyTorch's page of keys
        own = module.state_dict()
        missing, extra = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
        shapes = [k for k in set(own) & set(weights) if own[k].shape != weights[k].shape]
        raise CheckpointFormatError(
            f"{what}: {len(missing)} missing key(s) {missing[:3]}, {len(extra)} unexpected {extra[:3]}, "
            f"{len(shapes)} shape mismatch(es) {shapes[:3]}: wrong preset for this file?"
        ) from exc


def verified(entry: dict) -> Path:
    """The checkpoint a config's ``released: {path, sha256}`` names, after checking its sha256 (a ``ValueError`` naming
    both hashes on a mismatch; with ``sha256: null`` the error gives the file's hash to pin once you trust the file)."""
    from diled.weights import sha256_file

    path = Path(entry["path"])
    if not path.is_file():
        raise FileNotFoundError(f"released checkpoint {path} does not exist: download it (DiffAE's README links each last.ckpt) "
                                "and put its path in the config")
    found = sha256_file(path)
    if entry.get("sha256") is None:
        raise ValueError(f"released checkpoint {path}: sha256 not pinned. Its sha256 is {found}; once you trust the file, "
                         "set released.sha256 to it, so every result names the exact weights")
    if found != entry["sha256"]:
        raise ValueError(f"released checkpoint {path}: sha256 {found} differs from the pinned {entry['sha256']}")
    return path


def stage_from_release(ctx, name: str, load) -> TrainResult:
    """A training stage that takes released weights instead of training: ``load(model, path, ema)`` fills ``ctx.build()``."""
    entry = ctx.cfg["models"][name]["released"]
    model = load(ctx.build().to(ctx.device), verified(entry), entry.get("ema", True))
    return TrainResult(model.eval(), 0, 0, 0.0, None, None, source=f"{entry['path']} (sha256 {entry['sha256']})")


def preset_config(preset: str | dict, spacing: str = "ddim") -> dict:
    """The ``net`` / ``latent`` config sections of a released DiffAE shape (``beatgans.PRESETS``), as the paper configs write them."""
    p = beatgans.PRESETS[preset] if isinstance(preset, str) else preset
    return {
        "net": {"arch": "diffae", "channels": 3, "size": p["image_size"], "pixel_T": 1000, "pixel_schedule": "linear",
                "spacing": spacing, "z_dim": 512,
                "diffae": {"ch": p["ch"], "mults": list(p["mults"]), "encoder_mults": list(p["encoder_mults"]), "attn": [16],
                           "num_res_blocks": 2, "dropout": 0.1}},
        "latent": {"T": 1000, "beta": 0.008, "alphabar_shift": 0, "mlp": {"hidden": 2048, "layers": p.get("latent_layers", 10), "time_dim": 64}},
    }


def load_diffae(model, path: str | Path, ema: bool = True):
    """Load a released ``*_autoenc_latent`` checkpoint into a ``baselines.diffae.DiffAE`` built with ``net.arch: diffae``:
    decoder UNet, semantic encoder, latent net and the latent standardisation (``conds_mean`` / ``conds_std``)."""
    parts = split(read_checkpoint(path), ema)
    if not parts["latent_net"] or "conds_mean" not in parts:
        raise CheckpointFormatError(f"{path}: no latent net or latent statistics: use a *_autoenc_latent checkpoint, not *_autoenc")
    for k, v in parts["latent_net"].items():  # DiffAE registers each layer's time Linear twice: both names, one tensor
        twin = k.replace(".cond_layers.1.", ".linear_emb.")
        if twin != k and not torch.equal(v, parts["latent_net"].get(twin, v)):
            raise CheckpointFormatError(f"{path}: latent_net.{k} differs from latent_net.{twin} (one module in DiffAE): file corrupt?")
    unet = {k: v for k, v in parts["unet"].items() if not k.startswith("encoder.")}
    encoder = {k[len("encoder."):]: v for k, v in parts["unet"].items() if k.startswith("encoder.")}
    _load(model.decoder.unet.net, unet, f"{path} (decoder UNet)")
    _load(model.encoder, encoder, f"{path} (semantic encoder)")
    _load(model.denoiser.net, parts["latent_net"], f"{path} (latent net)")
    with torch.no_grad():
        model.z_shift.copy_(parts["conds_mean"])
        model.z_scale.copy_(parts["conds_std"])
    return model


def load_ddpm(model, path: str | Path, ema: bool = True):
    """Load a released ``*_ddpm`` checkpoint into a ``baselines.ddim.DDIM`` built with ``net.arch: diffae``."""
    _load(model.pixel.unet.net, split(read_checkpoint(path), ema)["unet"], f"{path} (DDPM)")
    return model
