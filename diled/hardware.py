"""The hardware a job runs on: device choice, torch threads, process priority, and ``precision: auto``.

``auto`` is decided by measurement, not by a CPU flag: a flag says which instructions exist, not whether bf16 autocast
is faster than fp32 here (on one 2-core Xeon VM with AVX-512-BF16 it was 1.3-1.9x faster, on another 0.7-0.9x; on an
AMD EPYC training was 1.2-1.7x faster and the small-batch latent chains of sampling 0.5-0.8x). A short probe
(``run_probe``: four workloads at the embedded sizes, fp32 and bf16 autocast alternating: a conv stack and a transformer
block with its vocabulary head, forward + backward, as training runs them; a conv stack and a small-batch MLP chain in
inference mode, as sampling runs them) runs once per machine and is cached as plain JSON under
``$DILED_CACHE/hardware/``, keyed by CPU model, core count, torch threads and torch version. bf16 is chosen only where
the workload of that track and mode (``WORKLOAD``) is faster by ``BF16_MARGIN``, so the choice does not flap.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; an unknown or unavailable device is a ``ValueError`` naming it
    (``cuda`` without a GPU is an error, not a silent CPU run)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = device_problem(name)
    if problem:
        raise ValueError(problem)
    return torch.device(name)


def device_problem(name: str) -> str | None:
    """Why ``name`` cannot be used on this machine (None when it can): cpu, auto, cuda[:N] or mps."""
    if name in ("cpu", "auto"):
        return None
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        return f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto"
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            return f"device {name!r} asked for, but this machine has no CUDA device (use cpu or auto)"
        if dev.index is not None and dev.index >= n:
            return f"device {name!r} asked for, but this machine has {n} CUDA device(s)"
        return None
    if dev.type == "mps":
        return None if torch.backends.mps.is_available() else f"device {name!r} asked for, but MPS is not available here"
    return f"unsupported device {name!r}; use cpu, cuda, cuda:N, mps or auto"


def setup_torch(threads: int, device: torch.device) -> None:
    """Threads from the rule, deterministic kernels, no TF32 (results must not depend on the GPU generation)."""
    torch.set_num_threads(max(1, int(threads)))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False


def lower_priority(level: int) -> int:
    """Raise this process's niceness to ``level`` (never lower it: that needs root); the niceness now."""
    if not hasattr(os, "nice"):  # not POSIX
        return 0
    now = os.nice(0)
    return os.nice(level - now) if level > now else now


def bf16_flags(cpuinfo: str, machine: str) -> tuple[str, ...]:
    """The native bf16 matrix instructions a ``/proc/cpuinfo`` text lists (x86: ``amx_bf16``, ``avx512_bf16``;
    aarch64: ``bf16``)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    wanted = ("amx_bf16", "avx512_bf16") if machine in ("x86_64", "AMD64") else ("bf16",)
    return tuple(f for f in wanted if f in flags)


@functools.cache
def native_bf16_features() -> tuple[str, ...]:
    """This CPU's native bf16 matrix instructions as the kernel reports them; empty where there are none or nothing
    says (not Linux). Read, never assumed: oneDNN runs bf16 on older CPUs too, by conversion, slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            return bf16_flags(f.read(), platform.machine())
    except OSError:
        return ()


# ----------------------------------------------------------------------------- precision: auto, by measurement

PROBE_VERSION = 2  # bump when the probe's workloads change: older cache files then miss
BF16_MARGIN = 1.15  # bf16 only when fp32 takes at least this many times as long (a clear margin, so the choice is stable)
WORKLOADS = ("conv", "sequence", "conv_sample", "chain_sample")
MODES = ("train", "sample")
# what a track's jobs mostly compute in each mode (image sampling: the pixel decoder's DDIM steps; text and protein
# sampling: the latent chain of T small-batch denoiser calls)
WORKLOAD = {("image", "train"): "conv", ("text", "train"): "sequence", ("protein", "train"): "sequence",
            ("image", "sample"): "conv_sample", ("text", "sample"): "chain_sample", ("protein", "sample"): "chain_sample"}
_PROBES: dict[str, dict] = {}  # key digest -> probe record, per process: every job of a process decides once


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``platform.processor()`` where there is no /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def probe_key() -> dict[str, Any]:
    """What the probe's answer depends on: CPU model, cores, torch threads (now), torch version, probe version."""
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "native_bf16": list(native_bf16_features()), "probe_version": PROBE_VERSION}


def _key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def probe_cache_file(key: dict[str, Any]) -> Path:
    """``$DILED_CACHE/hardware/precision-<digest of the key>.json``."""
    from diled.weights import cache_dir

    return cache_dir() / "hardware" / f"precision-{_key_digest(key)}.json"


def _workload(kind: str) -> Callable[[], None]:
    """One timed unit of the probe's ``kind`` at the embedded sizes, with its own weights and inputs (the global RNG is
    left as it was): ``conv`` / ``sequence`` are a training step (forward + backward) of the image UNet's conv stack and
    of a transformer block with a 4,096-way vocabulary head; ``conv_sample`` is five inference passes of the conv stack
    at batch 8, ``chain_sample`` fifty steps of a small-batch MLP denoiser (a latent chain)."""
    if kind not in WORKLOADS:
        raise ValueError(f"unknown probe workload {kind!r}; known: {list(WORKLOADS)}")
    nn = torch.nn
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if kind in ("conv", "conv_sample"):
            net = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.SiLU(), nn.Conv2d(32, 32, 3, padding=1),
                                nn.GroupNorm(8, 32), nn.SiLU(), nn.Conv2d(32, 16, 3, padding=1))
            x = torch.randn(16 if kind == "conv" else 8, 16, 32, 32)
        elif kind == "sequence":
            net = nn.Sequential(nn.TransformerEncoderLayer(256, 4, 1024, dropout=0.0, batch_first=True), nn.Linear(256, 4096))
            x, target = torch.randn(16, 24, 256), torch.randint(0, 4096, (16 * 24,))
        else:
            net = nn.Sequential(nn.Linear(64, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, 64))
            x = torch.randn(8, 64)

    def train_step() -> None:
        net.zero_grad(set_to_none=True)
        out = net(x)
        loss = nn.functional.cross_entropy(out.flatten(0, 1).float(), target) if kind == "sequence" else out.float().square().mean()
        loss.backward()

    def sample() -> None:
        with torch.inference_mode():
            h = x
            for _ in range(5 if kind == "conv_sample" else 50):
                h = net(x) if kind == "conv_sample" else h - 0.01 * net(h)
    return train_step if kind in ("conv", "sequence") else sample


def run_probe(repeats: int = 5) -> dict[str, Any]:
    """Median seconds of each workload under fp32 and under bf16 autocast (alternating, the order swapped each round,
    after one warm-up of each) and their ratio fp32 / bf16 (> 1: bf16 is faster)."""
    seconds: dict[str, dict[str, float]] = {}
    for kind in WORKLOADS:
        step = _workload(kind)
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for r in range(repeats + 1):
            for precision in (("fp32", "bf16") if r % 2 else ("bf16", "fp32")):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    t0 = time.perf_counter()
                    step()
                    dt = time.perf_counter() - t0
                if r:  # round 0 warms both up
                    times[precision].append(dt)
        seconds[kind] = {p: statistics.median(v) for p, v in times.items()}
    return {"seconds": seconds, "ratios": {k: round(v["fp32"] / v["bf16"], 4) for k, v in seconds.items()}}


def _valid_record(record: Any, key: dict[str, Any]) -> bool:
    """A cache file's content is this machine's probe: the same key, a finite positive ratio for every workload."""
    if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("ratios"), dict):
        return False
    ratios = record["ratios"]
    return all(isinstance(ratios.get(k), (int, float)) and not isinstance(ratios.get(k), bool)
               and math.isfinite(ratios[k]) and ratios[k] > 0 for k in WORKLOADS)


def _read_probe(path: Path, key: dict[str, Any]) -> tuple[dict | None, bool]:
    """(record or None, whether the file may be rewritten): a missing, corrupt or foreign file may be (it is a cache of
    plain JSON, never unpickled); one that could not be read *now* (I/O error, memory) is left as it is."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None, True
    except (OSError, MemoryError) as exc:
        warnings.warn(f"{path}: could not be read now ({type(exc).__name__}: {exc}); probing again without touching it", stacklevel=3)
        return None, False
    except UnicodeDecodeError:
        record = None
    else:
        try:
            record = json.loads(text)
        except (ValueError, RecursionError):
            record = None
    if _valid_record(record, key):
        return record, True
    warnings.warn(f"{path}: not a precision probe of this machine (corrupt or foreign); ignored and measured again", stacklevel=3)
    return None, True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` while one process measures (concurrent jobs then read its answer instead of
    timing each other); no lock where the folder cannot be written or there is no ``fcntl``."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path.with_suffix(".lock"), "a")
    except (ImportError, OSError):
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def precision_probe(refresh: bool = False) -> dict[str, Any]:
    """This machine's probe record (``key``, ``seconds``, ``ratios``, ``measured_utc``, ``cache``): from the cache when
    it holds one for this key, else measured now and cached (``refresh`` measures again whatever the cache holds).
    A cache that cannot be written (read-only, disk full) costs a warning and a probe per process, nothing more."""
    key = probe_key()
    digest = _key_digest(key)
    if not refresh and digest in _PROBES:
        return _PROBES[digest]
    path = probe_cache_file(key)
    record, writable = (None, True) if refresh else _read_probe(path, key)
    if record is None:
        with _locked(path):
            if not refresh:
                record, writable = _read_probe(path, key)  # another job may have measured while this one waited
            if record is None:
                record = {"key": key, **run_probe(), "margin": BF16_MARGIN,
                          "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                if writable:
                    _write_probe(path, record)
    record = {**record, "cache": str(path)}
    _PROBES[digest] = record
    return record


def _write_probe(path: Path, record: dict[str, Any]) -> None:
    from diled.manifest import write_json

    try:
        write_json(record, path)
    except OSError as exc:
        warnings.warn(f"{path}: the precision probe could not be cached ({exc.strerror or exc}); it is measured again in "
                      "every process until the cache folder is writable", stacklevel=3)


def choose_precision(name: str, device: torch.device | str, track: str | None = None, mode: str = "train") -> dict[str, Any]:
    """A configured precision as run on ``device``, with the reason: ``{"configured", "precision", "reason"}`` and, for
    ``auto`` decided by the probe, ``"ratios"`` (fp32 time / bf16 time per workload) and ``"margin"``.

    ``auto`` is fp32 on CUDA (a GPU run names bf16 or fp16 itself) and on a CPU without native bf16 matrix
    instructions (oneDNN would convert, always slower); on one with them, bf16 only where the probe measured the
    workload of the track in this ``mode`` (``WORKLOAD``; every workload of the mode for an unknown track) faster by
    ``BF16_MARGIN``.
    """
    if name not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {list(PRECISION_CHOICES)}, got {name!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if name != "auto":
        return {"configured": name, "precision": name, "reason": "configured"}
    if torch.device(device).type != "cpu":
        return {"configured": "auto", "precision": "fp32", "reason": f"auto on {torch.device(device).type}: fp32 unless the config names bf16/fp16"}
    if not native_bf16_features():
        return {"configured": "auto", "precision": "fp32", "reason": "auto: this CPU has no native bf16 matrix instructions"}
    probe = precision_probe()
    kinds = [WORKLOAD[track, mode]] if (track, mode) in WORKLOAD else [w for (_, m), w in WORKLOAD.items() if m == mode]
    kinds = list(dict.fromkeys(kinds))
    faster = all(probe["ratios"][k] >= BF16_MARGIN for k in kinds)
    measured = ", ".join(f"{k} {probe['ratios'][k]:.2f}x" for k in kinds)
    return {"configured": "auto", "precision": "bf16" if faster else "fp32", "ratios": dict(probe["ratios"]), "margin": BF16_MARGIN,
            "reason": f"auto: the timing probe measured fp32/bf16 {measured} (bf16 only at >= {BF16_MARGIN:g}x)"}


def resolve_precision(name: str, device: torch.device | str, track: str | None = None, mode: str = "train") -> str:
    """``choose_precision``'s precision alone."""
    return choose_precision(name, device, track, mode)["precision"]


def probes_used() -> list[dict[str, Any]]:
    """The probe records this process decided ``auto`` with (what a manifest records beside the decision)."""
    return [dict(rec) for rec in _PROBES.values()]
