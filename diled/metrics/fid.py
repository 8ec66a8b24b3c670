"""FID under a named, hashed protocol (``diled.metrics.protocols``), one path for every image source.

Features come from the field's libraries: pytorch-fid's ``InceptionV3`` (``torch-bilinear`` and
``pil-bicubic`` resizes; for the latter clean-fid's own resizer feeds the network with its resize
and normalization switched off) and torch-fidelity's ``FeatureExtractorInceptionV3``
(``tf1-bilinear``), all with the same verified weights. Statistics accumulate in constant memory
(running sum and sum of outer products in float64; no N x 2048 matrix is kept), and the features of
an image set are cached on disk under (protocol feature digest, content hash of the uint8 images),
so rescoring a set against another reference, or under a protocol that differs only in reference,
costs no Inception pass.

The Frechet distance is computed here rather than with pytorch-fid's ``calculate_frechet_distance``
because that one calls SciPy's ``sqrtm`` (about 18 s for 2048 x 2048 on one core, its ``disp``
argument is deprecated, and it leaves complex residue on near-singular products). We use
tr((S_a S_b)^1/2) = sum_i sqrt(lambda_i), lambda_i the eigenvalues of the symmetric PSD matrix
S_b^1/2 S_a S_b^1/2, with S_b^1/2 from one ``eigh`` per statistics object (cached): about 1.3 s per
2048-d pair, real by construction, equal to pytorch-fid's value to ~1e-7 relative (tests). Round-off
asymmetry is symmetrized away and tiny negative eigenvalues are clipped to zero, which also makes
singular covariances (fewer samples than dimensions) well defined. Sets of at most 2048 images (every set of the
embedded default) keep their feature rows and take the Gram form instead (``uncertainty.fid_gram``: the same value
from an n_a x n_b product, milliseconds instead of seconds; ``frechet_distance``).
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from tqdm import tqdm

from diled import weights
from diled.fileio import atomic_path, npz_header, partial_name, read_failure, regular_file, remove_stale_partials
from diled.metrics import uncertainty
from diled.metrics.images import ImageInputError, ImageSource, downscale, open_source
from diled.metrics.protocols import ADM, CLEAN_FID, PRESETS, PYTORCH_FID, FIDProtocol, get_protocol

__all__ = [
    "ADM", "CLEAN_FID", "PRESETS", "PYTORCH_FID", "FIDProtocol", "get_protocol", "ProtocolMismatch",
    "Statistics", "statistics", "frechet_distance", "load_reference", "FeatureExtractor", "FeatureCache",
]

DIM = 2048
MIN_SIDE = 16  # smaller images are scored with a warning
MANIFEST_LIMIT = 1 << 20  # bytes of a statistics file's manifest string (numpy stores 4 per character) read at most


class ProtocolMismatch(ValueError):
    """Two statistics were made under different protocols (or one carries none)."""


@contextmanager
def _strict_fp32():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


# ----------------------------------------------------------------------------- feature networks


@functools.cache
def _pytorch_fid_net(device: str) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 with the verified weights, batch norms folded, channels-last (see ``fold_batchnorm``)."""
    import pytorch_fid.inception as pfi

    state = torch.load(weights.resolve(weights.FID_INCEPTION), map_location="cpu", weights_only=True)
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: state):
        net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[DIM]])
    return fold_batchnorm(net.eval()).to(device, memory_format=torch.channels_last)


def fold_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    """Fold every eval-mode ``conv -> bn`` pair (Inception's ``BasicConv2d``) into one biased conv, in place.

    Uses torch's own ``fuse_conv_bn_eval``: the same affine map in FP32, one pass over the activations
    instead of two. Features move by float round-off only (~1e-6 relative); FID against stock
    pytorch-fid stays within 1e-3 (tests/test_fid_agreement.py) and the extraction is faster on CPU
    (benchmarks/fid_extraction.py measures by how much).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in net.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
            module.conv, module.bn = fuse_conv_bn_eval(conv, bn), torch.nn.Identity()
    return net


@functools.cache
def _torch_fidelity_net(device: str) -> torch.nn.Module:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = weights.resolve(weights.TORCH_FIDELITY_INCEPTION)
    net = FeatureExtractorInceptionV3("inception-v3-compat", [str(DIM)], feature_extractor_weights_path=str(path))
    return net.eval().to(device)


class FeatureExtractor:
    """uint8 (B, 3, H, W) -> float64 (B, 2048) pool3 features under one protocol's resize."""

    def __init__(self, protocol: FIDProtocol, device: torch.device | str = "cpu"):
        self.protocol, self.device = protocol, str(device)
        self._warned = False
        if protocol.resize == "tf1-bilinear":
            self.net = _torch_fidelity_net(self.device)
        else:
            self.net = _pytorch_fid_net(self.device)
        if protocol.resize == "pil-bicubic":
            from cleanfid.resize import make_resizer

            self._resize = make_resizer("PIL", False, "bicubic", (299, 299))

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if min(batch.shape[2:]) < MIN_SIDE and not self._warned:
            self._warned = True
            warnings.warn(f"images are {batch.shape[3]}x{batch.shape[2]} px: Inception sees them upsampled to 299 px "
                          f"from so few pixels that FID says little (below {MIN_SIDE} px)", stacklevel=2)
        if self.protocol.resolution:
            batch = downscale(batch, self.protocol.resolution)
        # one memory layout for every source (the conv kernels picked depend on it; ~1e-6 apart otherwise)
        batch = np.ascontiguousarray(batch)
        with _strict_fp32():
            if self.protocol.resize == "tf1-bilinear":
                out = self.net(torch.from_numpy(batch).to(self.device))[0]
            elif self.protocol.resize == "torch-bilinear":  # pytorch-fid's own resize and scaling
                out = self._inception(torch.from_numpy(batch).to(self.device, torch.float32) / 255.0, prepare=True)
            else:  # pil-bicubic: clean-fid's float resize, then the TF graph's own normalization
                x = np.stack([self._resize(img.transpose(1, 2, 0)) for img in batch]).transpose(0, 3, 1, 2)
                x = (torch.from_numpy(np.ascontiguousarray(x)).to(self.device, torch.float32) - 128.0) / 128.0
                out = self._inception(x, prepare=False)
        return out.reshape(len(batch), -1).double().cpu().numpy()

    def _inception(self, x: torch.Tensor, prepare: bool) -> torch.Tensor:
        """pytorch-fid's network, channels-last; ``prepare``: its own resize to 299 and scaling to [-1, 1] first."""
        self.net.resize_input = self.net.normalize_input = prepare
        return self.net(x.contiguous(memory_format=torch.channels_last))[0]


# ----------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Statistics:
    """Mean and covariance of features, tagged with the protocol that made them and their inputs."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int
    protocol: str  # digest
    protocol_name: str = ""
    manifest: dict = field(default_factory=dict, compare=False)
    features: np.ndarray | None = field(default=None, compare=False, repr=False)  # the rows, where kept (bootstrap, KID)

    @classmethod
    def of(cls, feats: np.ndarray, protocol: FIDProtocol, **manifest) -> Statistics:
        """Statistics of an in-memory feature matrix (tests, small sets); the rows are kept where there are at most
        as many as dimensions (what the Gram form of ``frechet_distance`` needs)."""
        acc = _Accumulator(feats.shape[1])
        acc.add(feats)
        return acc.statistics(protocol, manifest, np.asarray(feats, dtype=np.float64) if _gram_sized(len(feats), feats.shape[1]) else None)

    @property
    def label(self) -> str:
        return f"{self.protocol_name or '?'} ({self.protocol})"

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            extra = {} if self.features is None else {"features": self.features}
            np.savez(tmp, mu=self.mu, sigma=self.sigma, count=self.count, protocol=self.protocol,
                     protocol_name=self.protocol_name, manifest=json.dumps(self.manifest, sort_keys=True), **extra)

    @classmethod
    def load(cls, path: str | Path) -> Statistics:
        """Statistics written by ``save``, each member checked before it is used (``_checked``: headers, then values);
        foreign ``.npz`` statistics raise ``ProtocolMismatch``, a damaged or malformed file ``ImageInputError``."""
        path = Path(path)
        with _statistics_file(path) as f:
            if "protocol" not in f.files:
                raise ProtocolMismatch(
                    f"{path} carries no protocol digest; statistics from elsewhere are accepted only by protocols "
                    "with precomputed reference statistics (e.g. adm), as the reference"
                )
            return cls._checked(f, path)

    @classmethod
    def _checked(cls, f, path: Path) -> Statistics:
        members = {"mu": ((DIM,), "f"), "sigma": ((DIM, DIM), "f"), "count": ((), "iu"), "protocol": ((), "U"),
                   "protocol_name": ((), "U"), "manifest": ((), "U")}
        missing = [k for k in ("mu", "sigma", "count") if k not in f.files]
        if missing:
            raise ImageInputError(f"{path}: statistics file lacks {', '.join(missing)} (it holds {', '.join(sorted(f.files))})")
        for key, (shape, kinds) in members.items():
            if key in f.files:
                _check_member(f, path, key, shape, kinds)
        if "manifest" in f.files and (size := npz_header(f, "manifest")[1].itemsize) > MANIFEST_LIMIT:
            raise ImageInputError(f"{path}: its manifest is a {size / 2**20:.0f} MiB string; statistics files made by the suite carry "
                                  f"a JSON record of a few KiB (at most {MANIFEST_LIMIT // 2**20} MiB is read)")
        count = int(f["count"])
        if count < 2:
            raise ImageInputError(f"{path}: count is {count}; a covariance needs at least 2 images")
        features = None
        if "features" in f.files:
            _check_member(f, path, "features", (count, DIM), "f")
            features = f["features"]
        mu, sigma = _finite_moments(f, path)
        protocol = str(f["protocol"])
        if not protocol:
            raise ImageInputError(f"{path}: empty protocol digest")
        try:
            manifest = json.loads(str(f["manifest"])) if "manifest" in f.files else {}
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ImageInputError(f"{path}: its manifest is not JSON of a sane depth ({type(exc).__name__})") from exc
        if not isinstance(manifest, dict):
            raise ImageInputError(f"{path}: its manifest is a JSON {type(manifest).__name__}, not an object")
        return cls(mu, sigma, count, protocol, str(f["protocol_name"]) if "protocol_name" in f.files else "", manifest, features)

    @functools.cached_property
    def sigma_sqrt(self) -> np.ndarray:
        """Symmetric PSD square root of sigma (negative round-off eigenvalues clipped)."""
        w, v = np.linalg.eigh((self.sigma + self.sigma.T) / 2)
        return (v * np.sqrt(w.clip(min=0))) @ v.T


@contextmanager
def _statistics_file(path: Path):
    """An open ``.npz`` whose every read error names ``path`` (a CRC error, a truncated member, an I/O error)."""
    regular_file(path, "statistics file", ImageInputError)
    try:
        f = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise ImageInputError(f"{path}: no such statistics file") from exc
    except Exception as exc:
        raise ImageInputError(f"{path}: unreadable statistics file ({type(exc).__name__}: {exc})") from exc
    try:
        with f:
            yield f
    except (ImageInputError, ProtocolMismatch):
        raise
    except Exception as exc:  # a member that does not inflate, or inflates to something else than it says
        raise ImageInputError(f"{path}: damaged statistics file ({type(exc).__name__}: {exc})") from exc


def _check_member(f, path: Path, key: str, shape: tuple[int, ...], kinds: str) -> None:
    """Refuse member ``key`` unless its header declares ``shape`` and a dtype of one of ``kinds`` (before inflating it)."""
    found, dtype = npz_header(f, key)
    if found != shape or dtype.kind not in kinds:
        names = {"f": "float", "iu": "integer", "U": "string"}
        raise ImageInputError(f"{path}: {key} is {dtype} of shape {found}, expected {names[kinds]} of shape {shape}")


def _finite_moments(f, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``mu`` and ``sigma`` as float64, refusing NaN or inf and a sigma that is no covariance (asymmetric,
    negative variances)."""
    mu, sigma = f["mu"].astype(np.float64), f["sigma"].astype(np.float64)
    for key, value in (("mu", mu), ("sigma", sigma)):
        if not np.isfinite(value).all():
            raise ImageInputError(f"{path}: {key} holds {int((~np.isfinite(value)).sum())} NaN or inf values")
    scale = float(np.abs(sigma).max()) or 1.0
    if float(np.abs(sigma - sigma.T).max()) > 1e-6 * scale or (np.diag(sigma) < 0).any():
        raise ImageInputError(f"{path}: sigma is not a covariance matrix (asymmetric, or negative variances)")
    return mu, sigma


class _Accumulator:
    """Running count, sum and sum of outer products in float64: constant memory in N."""

    def __init__(self, dim: int = DIM):
        self.n, self.s1, self.s2 = 0, np.zeros(dim), np.zeros((dim, dim))

    def add(self, feats: np.ndarray) -> None:
        f = np.asarray(feats, dtype=np.float64)
        if not np.isfinite(f).all():
            raise ValueError("Inception features contain NaN or inf (check the weights, the device and the inputs)")
        self.n += len(f)
        self.s1 += f.sum(0)
        self.s2 += f.T @ f

    def statistics(self, protocol: FIDProtocol, manifest: dict, features: np.ndarray | None = None) -> Statistics:
        if self.n < 2:
            raise ImageInputError(f"FID needs at least 2 images, got {self.n}")
        mu = self.s1 / self.n
        sigma = (self.s2 - self.n * np.outer(mu, mu)) / (self.n - 1)
        return Statistics(mu, (sigma + sigma.T) / 2, self.n, protocol.digest, protocol.name, manifest, features)


CACHE_OFF = ("off", "0", "false", "no", "none")


def feature_cache_dir() -> Path | None:
    """``$DILED_FEATURE_CACHE`` or ``<weights cache>/features``; None when the variable says off (any of ``CACHE_OFF``,
    in any case). Set but empty is an error: it would otherwise put the cache in whatever folder the job runs in."""
    value = os.environ.get("DILED_FEATURE_CACHE")
    if value is None:
        return weights.cache_dir() / "features"
    if not value.strip():
        raise ValueError("DILED_FEATURE_CACHE is set but empty: unset it for the default cache, set it to a folder, or to off")
    if value.strip().lower() in CACHE_OFF:
        return None
    return Path(value).expanduser()


class FeatureCache:
    """Content-addressed features: ``<root>/<protocol feature digest>/<content sha256>.npy`` plus a ``.json``
    record of its row count and file sha256, written last.

    An entry counts only when its record exists and the file matches it (rows, sha256, header shape);
    anything else (truncated, edited, empty, a record without features) is named in a warning, deleted and
    recomputed. Temporaries of writers that are gone are removed on every use (``diled.fileio.is_stale_partial``:
    a writer elsewhere, on another node of a shared home or in another container, is never judged by a local pid).

    The cache is optional: entries are written with ordinary buffered writes to a temporary in the entry's folder and
    renamed into place, so a full disk is an ``OSError`` (never a memory map's SIGBUS); a cache that cannot be written
    (disk full, read-only, no permission) turns itself off for the rest of the process with one warning, and the
    features are computed all the same.
    """

    unwritable: dict[Path, str] = {}  # folder -> why; class-wide, so one warning per process and folder

    def __init__(self, root: Path, protocol: FIDProtocol):
        self.dir = root / protocol.feature_digest

    @property
    def writable(self) -> bool:
        return self.dir not in FeatureCache.unwritable

    def _paths(self, content: str) -> tuple[Path, Path]:
        return self.dir / f"{content}.npy", self.dir / f"{content}.json"

    def read(self, content: str, rows: int) -> np.ndarray | None:
        """The verified features of ``content`` (memory-mapped), or None when absent or discarded."""
        npy, meta = self._paths(content)
        if self.dir.is_dir():
            remove_stale_partials(self.dir)
        if not npy.exists() and not meta.exists():
            return None
        try:
            record = json.loads(meta.read_text())
            if (record.get("rows"), record.get("dim")) != (rows, DIM):
                problem = f"it holds {record.get('rows')} x {record.get('dim')} features, the set has {rows} images"
            elif weights.sha256_file(npy) != record.get("sha256"):
                problem = "its sha256 does not match its record (edited or partly overwritten)"
            else:
                feats = np.load(npy, mmap_mode="r", allow_pickle=False)
                if feats.shape == (rows, DIM):
                    return feats
                problem = f"its array is {feats.shape}, expected ({rows}, {DIM})"
        except FileNotFoundError as exc:
            problem = f"incomplete entry ({Path(exc.filename).name} is missing)"
        except (OSError, MemoryError) as exc:  # could not be read now: says nothing about the entry, which stays
            raise read_failure(npy, exc) from exc
        except (ValueError, EOFError, AttributeError, RecursionError) as exc:
            problem = f"unreadable ({type(exc).__name__}: {str(exc)[:200]})"
        warnings.warn(f"feature cache entry {npy} discarded: {problem}; recomputing it", stacklevel=3)
        for stale in (npy, meta):
            try:
                stale.unlink(missing_ok=True)
            except OSError:  # a read-only cache: the entry is skipped, not removed
                pass
        return None

    def _turn_off(self, exc: OSError) -> None:
        why = exc.strerror or str(exc)
        if self.dir not in FeatureCache.unwritable:
            warnings.warn(f"feature cache {self.dir} cannot be written ({why}); it is off for the rest of this run: features are "
                          "computed, not stored (free space or set DILED_FEATURE_CACHE to another folder, or to off)", stacklevel=4)
        FeatureCache.unwritable[self.dir] = why

    @contextmanager
    def writer(self, content: str, rows: int):
        """Yield a row store for the (rows, 2048) float32 features; committed only if every row was written. A write
        that fails (``OSError``) turns the cache off (``_turn_off``) and the store then takes rows without writing."""
        npy, meta = self._paths(content)
        store = _RowStore(rows)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            store.open(partial_name(npy))
        except OSError as exc:
            store.fail(exc)
        try:
            yield store
        except BaseException:
            store.discard()
            raise
        if store.error is None and store.filled != rows:
            store.discard()
            raise RuntimeError(f"feature extraction wrote {store.filled} of {rows} rows; nothing cached")
        if store.error is None:
            try:
                store.close()
                digest = weights.sha256_file(store.path)
                store.path.replace(npy)
                with atomic_path(meta) as tmp_meta:  # the record last: an entry without one is never trusted
                    tmp_meta.write_text(json.dumps({"rows": rows, "dim": DIM, "sha256": digest}) + "\n")
            except OSError as exc:
                npy.unlink(missing_ok=True)
                store.fail(exc)
        if store.error is not None:
            store.discard()
            self._turn_off(store.error)


class _RowStore:
    """Feature rows written front to back through a buffered file (a ``.npy`` header, then the rows), counting what
    was written; after a failed write it keeps counting and writes nothing."""

    def __init__(self, rows: int):
        self.rows, self.filled = rows, 0
        self.fh, self.path, self.error = None, None, None

    def open(self, path: Path) -> None:
        self.path = path
        self.fh = open(path, "wb")
        np.lib.format.write_array_header_1_0(self.fh, {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
                                                       "fortran_order": False, "shape": (self.rows, DIM)})

    def append(self, feats: np.ndarray) -> None:
        self.filled += len(feats)
        if self.error is None and self.fh is not None:
            try:
                self.fh.write(np.ascontiguousarray(feats, dtype="<f4").tobytes())
            except OSError as exc:
                self.fail(exc)

    def fail(self, exc: OSError) -> None:
        self.error = exc
        self.discard()

    def close(self) -> None:
        if self.fh is not None:
            fh, self.fh = self.fh, None
            fh.close()

    def discard(self) -> None:
        """Close and delete the temporary (a full disk may refuse the close's flush too: it is deleted all the same)."""
        try:
            self.close()
        except OSError:
            pass
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def statistics(
    images: str | Path | np.ndarray | torch.Tensor | ImageSource,
    protocol: FIDProtocol,
    device: torch.device | str = "cpu",
    batch_size: int = 50,
    desc: str = "inception",
    cache: bool = True,
    role: str = "generated",
    keep_features: bool | None = None,
    use_count: bool = True,
) -> Statistics:
    """Feature statistics of an image set (folder, array file, array or tensor) under ``protocol``.

    For ``role="generated"`` the first ``protocol.sample_count`` images are used when the protocol
    fixes a count; a ``"reference"`` set is used whole. Features are read from / written to the
    content-addressed ``FeatureCache`` unless ``cache`` is false. ``keep_features`` also returns the
    feature rows (``Statistics.features``, what bootstrap intervals and KID need); ``False`` keeps memory
    constant in the number of images; ``None`` (the default) keeps them for a set of at most ``DIM`` images (at most
    32 MiB), where ``frechet_distance`` then takes its Gram form. ``use_count=False`` reads every image even where the protocol fixes
    a count (one shard of a sharded set: the count applies to the merged rows).
    """
    if role not in ("generated", "reference"):
        raise ValueError(f"role must be 'generated' or 'reference', got {role!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    src = open_source(images, protocol.quantization)
    if protocol.sample_count is not None and role == "generated" and use_count:
        src = src.head(protocol.sample_count)
    if keep_features is None:
        keep_features = _gram_sized(len(src))
    content = src.content_hash(batch_size)
    manifest = {"source": src.description, "role": role, "images": len(src), "content_sha256": content,
                "protocol": protocol.record(), "protocol_digest": protocol.digest}
    cdir = feature_cache_dir()
    store = FeatureCache(cdir, protocol) if cache and cdir is not None else None
    acc = _Accumulator()
    feats = store.read(content, len(src)) if store else None
    if feats is not None:
        for i in range(0, len(feats), 1024):
            acc.add(feats[i : i + 1024])
        manifest["features"] = f"cache:{content}"
        return acc.statistics(protocol, manifest, np.asarray(feats, dtype=np.float64) if keep_features else None)
    extract = FeatureExtractor(protocol, device)
    total = (len(src) + batch_size - 1) // batch_size

    kept: list[np.ndarray] = []

    def run(rows: _RowStore | None) -> None:
        for batch in tqdm(src.batches(batch_size), total=total, desc=desc, mininterval=5.0, leave=False):
            f = extract(batch)
            acc.add(f)
            if rows is not None:
                rows.append(f)
            if keep_features:
                kept.append(f)

    if store is None or not store.writable:
        run(None)
        manifest["features"] = "computed"
    else:
        with store.writer(content, len(src)) as rows:
            run(rows)
        manifest["features"] = "computed (cached)" if rows.error is None else "computed (the cache could not be written)"
    return acc.statistics(protocol, manifest, np.concatenate(kept) if keep_features else None)


def load_reference(path: str | Path, protocol: FIDProtocol) -> tuple[Statistics, FIDProtocol]:
    """Reference statistics from a file, and the protocol to score against them.

    Our own statistics must carry ``protocol``'s digest. A foreign ``.npz`` with ``mu``/``sigma``
    (guided-diffusion's reference batches) is accepted only by a protocol with precomputed reference
    statistics; the file's sha256 must equal the protocol's pinned one, or is bound into the returned
    protocol (so its digest names the exact reference file).
    """
    path = Path(path)
    with _statistics_file(path) as f:
        ours = "protocol" in f.files
        if not ours and not {"mu", "sigma"} <= set(f.files):
            raise ImageInputError(f"{path}: not a statistics file (needs mu and sigma; found {f.files})")
        if not ours:
            _check_member(f, path, "mu", (DIM,), "f")
            _check_member(f, path, "sigma", (DIM, DIM), "f")
            mu, sigma = _finite_moments(f, path)
            count = (npz_header(f, "arr_0")[0] or (-1,))[0] if "arr_0" in f.files else -1  # a batch's images: header only
    if ours:
        stats = Statistics.load(path)
        if stats.protocol != protocol.digest:
            raise ProtocolMismatch(f"{path} was made under protocol {stats.label}, not {protocol.label}")
        return stats, protocol
    if protocol.reference != "precomputed":
        raise ProtocolMismatch(
            f"{path} carries no protocol digest: protocol {protocol.label} computes reference statistics on the fly "
            "from images; precomputed statistics need a protocol with reference='precomputed' (e.g. adm)"
        )
    digest = weights.sha256_file(path)
    if protocol.reference_sha256 and protocol.reference_sha256 != digest:
        raise ProtocolMismatch(
            f"{path}: reference statistics sha256 mismatch for protocol {protocol.name}: "
            f"expected {protocol.reference_sha256}, found {digest}"
        )
    bound = protocol if protocol.reference_sha256 else protocol.variant(name=protocol.name, reference_sha256=digest)
    manifest = {"source": str(path), "sha256": digest, "images": count, "protocol": bound.record(), "protocol_digest": bound.digest}
    return Statistics(mu, sigma, count, bound.digest, bound.name, manifest), bound


def save_reference_batch(images: np.ndarray, stats: Statistics, path: str | Path) -> str:
    """Write a guided-diffusion-style reference batch (``arr_0`` NHWC uint8, ``mu``, ``sigma``); returns its sha256.

    Zip entries get a fixed timestamp so equal contents give equal bytes (and an equal sha256).
    """
    import zipfile

    arrays = {"arr_0": np.ascontiguousarray(images.transpose(0, 2, 3, 1)), "mu": stats.mu, "sigma": stats.sigma}
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for key, arr in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asarray(arr), allow_pickle=False)
    return weights.sha256_file(path)


def _gram_sized(rows: int, dim: int = DIM) -> bool:
    """Whether a set is small enough for the Gram form: no more rows than dimensions (kept rows: at most 32 MiB)."""
    return rows <= dim


def frechet_distance(a: Statistics, b: Statistics) -> float:
    """||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^1/2) for statistics of one protocol.

    Pass the statistics you reuse (the reference) as ``b``: its square root is computed once. Where both carry their
    feature rows and neither has more rows than dimensions (every embedded-default set), the same value comes from the
    Gram form (``uncertainty.fid_gram``: one n_a x n_b product, no d x d root; ~3e-8 relative to the root form), which
    takes milliseconds instead of seconds per pair.
    """
    if a.protocol != b.protocol:
        raise ProtocolMismatch(f"statistics from different FID protocols: {a.label} vs {b.label}")
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"feature dimensions differ: {a.mu.shape} vs {b.mu.shape}")
    if a.features is not None and b.features is not None and _gram_sized(max(len(a.features), len(b.features)), len(a.mu)):
        return uncertainty.fid_gram(a.features, b.features)
    root = b.sigma_sqrt
    m = root @ a.sigma @ root
    eig = np.linalg.eigvalsh((m + m.T) / 2).clip(min=0)
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * np.sqrt(eig).sum())


def fid(gen, ref, protocol: FIDProtocol, device: torch.device | str = "cpu", batch_size: int = 50) -> dict:
    """FID of ``gen`` against ``ref`` (image sources or statistics files) with the record that produced it."""
    if not isinstance(gen, Statistics) and not _is_stats_file(gen):
        gen = open_source(gen, protocol.quantization)
        if protocol.sample_count is not None:
            gen = gen.head(protocol.sample_count)
        gen.content_hash(batch_size)  # decodes every image: a bad generated set is refused before the reference's Inception pass
    ref_stats, protocol = _as_reference(ref, protocol, device, batch_size)
    gen_stats = _as_statistics(gen, protocol, device, batch_size, "generated")
    value = frechet_distance(gen_stats, ref_stats)
    return {"fid": value, "protocol": protocol.name, "protocol_digest": protocol.digest, "protocol_record": protocol.record(),
            "generated": gen_stats.manifest, "reference": ref_stats.manifest,
            "counts": {"generated": gen_stats.count, "reference": ref_stats.count}}


def _is_stats_file(x) -> bool:
    return isinstance(x, (str, Path)) and Path(x).suffix == ".npz" and Path(x).is_file() and not _has_images(x)


def _has_images(path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as f:
            return "arr_0" in f.files and "mu" not in f.files
    except Exception as exc:
        raise ImageInputError(f"{path}: unreadable .npz file ({type(exc).__name__}: {exc})") from exc


def _as_reference(ref, protocol, device, batch_size) -> tuple[Statistics, FIDProtocol]:
    if isinstance(ref, Statistics):
        return ref, protocol
    if _is_stats_file(ref):
        return load_reference(ref, protocol)
    if protocol.reference == "precomputed":
        raise ProtocolMismatch(f"protocol {protocol.name} scores against precomputed reference statistics (.npz with mu/sigma), got {ref}")
    return statistics(ref, protocol, device, batch_size, "reference", role="reference"), protocol


def _as_statistics(gen, protocol, device, batch_size, desc) -> Statistics:
    if isinstance(gen, Statistics):
        stats = gen
    elif _is_stats_file(gen):
        stats = Statistics.load(gen)
    else:
        return statistics(gen, protocol, device, batch_size, desc)
    # statistics made under a precomputed-reference protocol before its reference file was bound are valid
    unbound = protocol.variant(name=protocol.name, reference_sha256=None) if protocol.reference_sha256 else protocol
    if stats.protocol not in (protocol.digest, unbound.digest):
        raise ProtocolMismatch(f"generated statistics were made under {stats.label}, not {protocol.label}")
    return Statistics(stats.mu, stats.sigma, stats.count, protocol.digest, protocol.name, stats.manifest, stats.features)
