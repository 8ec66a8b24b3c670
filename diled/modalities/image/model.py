"""The image track: networks sized by the track config, image DiLED's builder and trainer, evaluation sets.

The generic Gaussian diffusion (``diled.diffusion.GaussianDiffusion``) is the pixel decoder of
DiffAE and DiLED, the DDIM baseline and LDM's latent model; this module sizes it from
``image.net`` and ``image.latent`` of the config.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from diled.diffusion import GaussianDiffusion, Schedule, derive_seed
from diled.modalities.image.codec import ImageCodec
from diled.nets import ConvEncoder, MLPSkipNet, UNet, beatgans
from diled.stages import StagePlan

# ----------------------------------------------------------------------------- construction


def pixel_diffusion(cfg: dict, cond_dim: int) -> GaussianDiffusion:
    """The pixel diffusion of ``net``: a UNet (conditioned on a ``cond_dim``-d z when > 0) on the pixel schedule.

    ``net.loss_weight`` (``diffusion.loss_weight``) applies to the z-conditioned decoders (DiffAE, DiLED) only;
    the unconditional DDIM (and CM-CD's teacher) keep the uniform loss.
    """
    net = cfg["net"]
    if net.get("arch", "suite") == "diffae":  # DiffAE's UNet under our 1-indexed t
        unet = beatgans.ShiftedTime(beatgans.BeatGANsUNet(net["size"], net["channels"], z_dim=cond_dim, **_diffae_shape(net)))
    else:
        unet = UNet(net["channels"], net["unet"]["base"], net["unet"]["mults"], cond_dim=cond_dim)
    sched = Schedule.make(net["pixel_schedule"], net["pixel_T"])
    weighting = net.get("loss_weight", {"kind": "uniform"}) if cond_dim else {"kind": "uniform"}
    return GaussianDiffusion(unet, sched, (net["channels"], net["size"], net["size"]),
                             weighting=weighting["kind"], gamma=weighting.get("gamma", 5.0), spacing=net.get("spacing", "linspace"))


def _diffae_shape(net: dict) -> dict:
    d = net["diffae"]
    return {"ch": d["ch"], "mults": tuple(d["mults"]), "num_res_blocks": d.get("num_res_blocks", 2),
            "attn": tuple(d.get("attn", (16,))), "dropout": d.get("dropout", 0.1)}


def latent_parts(cfg: dict) -> tuple[nn.Module, nn.Module, Schedule]:
    """Semantic encoder, latent MLP skip denoiser and the latent schedule (DiffAE's and DiLED's).

    ``net.arch: diffae`` gives DiffAE's encoder and latent MLP, in the layout ``baselines.released`` loads into.
    """
    net, lat = cfg["net"], cfg["latent"]
    if net.get("arch", "suite") == "diffae":
        shape = _diffae_shape(net)
        enc = beatgans.BeatGANsEncoder(net["size"], net["channels"], shape["ch"], tuple(net["diffae"]["encoder_mults"]),
                                       shape["num_res_blocks"], shape["attn"], net["z_dim"])
        mlp = beatgans.ShiftedTime(beatgans.DiffAELatentNet(net["z_dim"], lat["mlp"]["hidden"], lat["mlp"]["layers"], lat["mlp"]["time_dim"]))
    else:
        enc = ConvEncoder(net["channels"], net["encoder"]["base"], net["encoder"]["mults"], net["z_dim"])
        mlp = MLPSkipNet(net["z_dim"], lat["mlp"]["hidden"], lat["mlp"]["layers"], lat["mlp"]["time_dim"])
    sched = Schedule.make("constant", lat["T"], shift=lat["alphabar_shift"], value=lat["beta"])
    return enc, mlp, sched


def build_diled(cfg: dict) -> nn.Module:
    """Image DiLED: DiffAE's parts, trained jointly with the image objective."""
    from diled.model import DiLED

    enc, mlp, sched = latent_parts(cfg)
    d = cfg["models"]["diled"]
    return DiLED(enc, mlp, pixel_diffusion(cfg, cfg["net"]["z_dim"]), sched, cfg["net"]["z_dim"], w=d["w"], encoder_var=d["encoder_var"])


def train_diled(ctx):
    """Fine-tune DiLED jointly from the trained DiffAE (``ctx.init``: its parts and latent standardization)."""
    model = ctx.build().to(ctx.device)
    model.load_state_dict(ctx.init.state_dict())
    return StagePlan(model, lambda m, x: m.loss(x), ctx.data)


# ----------------------------------------------------------------------------- evaluation sets


def eval_indices(n_reference: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference images to reconstruct (``a``) and their interpolation partners (``b``), fixed by seed."""
    if not 2 <= n <= n_reference:
        raise ValueError(f"num_samples must lie in 2..{n_reference} (the reference set size), got {n}")
    a = np.random.default_rng(derive_seed(seed, "eval-images") % 2**32).choice(n_reference, n, replace=False)
    return a, np.roll(a, -1)


def eval_seeds(seed: int, kind: str, rows: np.ndarray) -> list[int]:
    """Per-row seeds of one kind of evaluation draw (``gen``, ``rec``, ``interp``, ``encode``) for the global row
    indices ``rows`` (an integer array, as ``evaluation_sets`` passes them): whoever re-draws a set's noise uses these."""
    return [derive_seed(seed, kind, i) for i in rows]


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
    interp_protocol: str = "random",
    lo: int = 0,
    hi: int | None = None,
) -> dict[str, np.ndarray]:
    """uint8 image sets ``gen``, ``rec``, ``rec_inverted`` and ``interp_<alpha>`` (n each) through the capability interface.

    ``rec`` is the model's reconstruction under the ``random`` protocol (``diled.model.RECON_PROTOCOLS``);
    models whose decoder draws its own noise (DiffAE, DiLED) also get ``rec_inverted`` (x_T by DDIM
    inversion conditioned on z), for the others the two protocols are one computation. Each reference
    image is encoded once; interpolation pairs (a_i, a_{i+1}) reuse those encodings, and the decoder noise
    of pair i is the same for every alpha: a shared seeded x_T (``interp_protocol="random"``) or, with
    ``"inverted"``, the slerp of the two sources' inverted x_T.

    ``lo``/``hi`` compute rows lo..hi-1 of the n only (a shard): every seed belongs to a row's global index, so the
    shards of a set concatenate to the unsharded set (the shard also encodes its last pair's partner, row hi mod n).
    """
    from diled.diffusion import slerp

    device = next(model.parameters()).device
    hi = n if hi is None else hi
    if not 0 <= lo < hi <= n:
        raise ValueError(f"shard rows {lo}..{hi} must lie within 0..{n}")
    ia, ib = eval_indices(len(reference), n, seed)
    rows = np.arange(lo, hi)
    sharded = (lo, hi) != (0, n)
    enc_rows = np.append(rows, hi % n) if sharded else rows  # the last pair's partner, encoded here too
    x = ImageCodec.to_model(reference[ia[enc_rows]])
    gen_seeds, rec_seeds, mix_seeds = (eval_seeds(seed, kind, rows) for kind in ("gen", "rec", "interp"))
    enc_seeds = eval_seeds(seed, "encode", enc_rows)  # only a stochastic encoder (CM-CD's noising) uses them
    inverted = getattr(model, "stochastic_decoder", False)
    if interp_protocol not in ("random", "inverted"):
        raise ValueError(f"unknown interpolation protocol {interp_protocol!r}; choose random or inverted")
    keys = ["gen", "rec", *(["rec_inverted"] if inverted else []), *(f"interp_{a:g}" for a in alphas)]
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    codes, x_Ts = [], []
    m = len(rows)
    for sl in tqdm(_chunks(len(enc_rows), batch_size), desc=f"{desc}/generate+encode", mininterval=5.0):
        xs = x[sl].to(device)
        codes.append(model.encode(xs, steps, enc_seeds[sl]))
        if inverted:
            x_Ts.append(model.invert_decoder(xs, codes[-1], steps))
        gen_sl = slice(sl.start, min(sl.stop, m))
        if gen_sl.start < gen_sl.stop:
            out["gen"].append(ImageCodec.to_metric(model.generate(gen_seeds[gen_sl], steps)))
    z_all = torch.cat(codes)
    x_T_all = torch.cat(x_Ts) if inverted else None
    if sharded:
        z, z_b = z_all[:-1], z_all[1:]
        x_T, x_T_b = (x_T_all[:-1], x_T_all[1:]) if inverted else (None, None)
    else:
        roll = torch.as_tensor(np.roll(np.arange(n), -1))
        z, z_b = z_all, z_all[roll]
        x_T, x_T_b = (x_T_all, x_T_all[roll]) if inverted else (None, None)
    for sl in tqdm(_chunks(m, batch_size), desc=f"{desc}/decode", mininterval=5.0):
        out["rec"].append(ImageCodec.to_metric(model.decode(z[sl], steps, rec_seeds[sl])))
        if inverted:
            out["rec_inverted"].append(ImageCodec.to_metric(model.decode(z[sl], steps, rec_seeds[sl], x_T=x_T[sl])))
        for a in alphas:
            kw = {"x_T": slerp(x_T[sl], x_T_b[sl], a)} if inverted and interp_protocol == "inverted" else {}
            out[f"interp_{a:g}"].append(ImageCodec.to_metric(model.decode(model.mix(z[sl], z_b[sl], a), steps, mix_seeds[sl], **kw)))
    sets = {k: np.concatenate(v) for k, v in out.items()}
    sets["source_a"], sets["source_b"] = reference[ia[rows]], reference[ib[rows]]
    return sets
