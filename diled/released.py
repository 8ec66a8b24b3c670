"""DiffAE's released checkpoints (``phizaz/diffae``: ``checkpoints/<name>/last.ckpt``) as this suite's models.

The files are PyTorch Lightning 1.4 checkpoints: ``state_dict`` holds ``model.*`` (raw weights), ``ema_model.*``
(the EMA, which DiffAE samples with), a buffer ``x_T`` and, in ``*_autoenc_latent`` files, the latent
standardisation ``conds_mean`` / ``conds_std`` (1, 512) and the latent net under ``*.latent_net.*``. Beside it the
pickle holds Lightning objects (callbacks keyed by their class, hyper-parameter dicts). ``read_checkpoint``
never imports or runs any of those: its unpickler builds tensors and plain containers and turns every other
global into an inert placeholder, so a file from anywhere is safe to read and Lightning need not be installed.

``diffae_model`` puts the weights into ``baselines.diffae.DiffAE`` (so the workflow's sampling, reconstruction
and evaluation run on them unchanged), with DiffAE's schedules (linear betas on pixels, constant 0.008 on
latents, T = 1000) and its ``ddim`` timestep spacing; ``ddpm_model`` does the same for the ``*_ddpm`` baselines.
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path

import torch
from torch import nn

from diled.nets import beatgans

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


# torch.load(pickle_module=...) needs a module-like object with Unpickler and load
_restricted = types.SimpleNamespace(Unpickler=_RestrictedUnpickler, load=pickle.load, __name__="diled_restricted_pickle")


class CheckpointFormatError(ValueError):
    """The file is not a DiffAE checkpoint of the expected shape."""


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a Lightning checkpoint, read without unpickling anything but tensors and containers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (DiffAE's README links the released last.ckpt files)")
    try:
        obj = torch.load(path, map_location="cpu", pickle_module=_restricted, weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointFormatError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
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


def diffae_model(path: str | Path, preset: str | dict, ema: bool = True, spacing: str = "ddim"):
    """A released ``*_autoenc_latent`` checkpoint as ``baselines.diffae.DiffAE`` (generate, reconstruct, represent)."""
    from baselines.diffae import DiffAE
    from diled.diffusion import GaussianDiffusion, Schedule

    p = beatgans.PRESETS[preset] if isinstance(preset, str) else preset
    parts = split(read_checkpoint(path), ema)
    if not parts["latent_net"] or "conds_mean" not in parts:
        raise CheckpointFormatError(f"{path}: no latent net or latent statistics: use a *_autoenc_latent checkpoint, not *_autoenc")
    unet = beatgans.autoencoder(p)
    _load(unet, parts["unet"], f"{path} (autoencoder)")
    for k, v in parts["latent_net"].items():  # DiffAE registers each layer's time Linear twice: both names, one tensor
        twin = k.replace(".cond_layers.1.", ".linear_emb.")
        if twin != k and not torch.equal(v, parts["latent_net"].get(twin, v)):
            raise CheckpointFormatError(f"{path}: latent_net.{k} differs from latent_net.{twin} (one module in DiffAE): file corrupt?")
    latent = beatgans.DiffAELatentNet(512, 2048, p["latent_layers"])
    _load(latent, parts["latent_net"], f"{path} (latent net)")
    size = p["image_size"]
    decoder = GaussianDiffusion(beatgans.ShiftedTime(unet), Schedule.make("linear", 1000), (3, size, size), spacing=spacing)
    model = DiffAE(unet.encoder, beatgans.ShiftedTime(latent), decoder, Schedule.make("constant", 1000, value=0.008), 512)
    model.spacing = spacing
    with torch.no_grad():
        model.z_shift.copy_(parts["conds_mean"])
        model.z_scale.copy_(parts["conds_std"])
    return model.eval()


def ddpm_model(path: str | Path, preset: str | dict, ema: bool = True, spacing: str = "ddim"):
    """A released ``*_ddpm`` checkpoint as the DDIM baseline (``baselines.ddim.DDIM``)."""
    from baselines.ddim import DDIM
    from diled.diffusion import GaussianDiffusion, Schedule

    p = beatgans.PRESETS[preset] if isinstance(preset, str) else preset
    unet = beatgans.ddpm(p)
    _load(unet, split(read_checkpoint(path), ema)["unet"], f"{path} (DDPM)")
    size = p["image_size"]
    return DDIM(GaussianDiffusion(beatgans.ShiftedTime(unet), Schedule.make("linear", 1000), (3, size, size), spacing=spacing)).eval()
