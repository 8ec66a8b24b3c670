"""Run manifests: what produced a number (config and its hash, commit, versions, hardware, seed, wall time)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from diled.fileio import atomic_path
from diled.hardware import native_bf16_features, probes_used

PACKAGES = ("diled", "torch", "torchvision", "numpy", "scipy", "pytorch-fid", "snakemake", "mlxtend", "pandas", "matplotlib")


def config_digest(config: Any) -> str:
    """sha256 of the canonical JSON form of a config (sorted keys): the config hash."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def git_state(repo: str | Path | None = None) -> dict[str, Any]:
    """Commit and dirtiness of the checkout the code runs from (``unknown`` outside git)."""
    repo = Path(repo or Path(__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a number depends on."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def hardware() -> dict[str, Any]:
    """Machine, CPU count, torch threads and accelerator."""
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the vector kernels torch dispatches to
        "native_bf16": list(native_bf16_features()),  # whether precision ``auto`` probes at all
        "precision_probes": probes_used(),  # the timing probes ``auto`` was decided with in this process (diled.hardware)
        "niceness": os.nice(0) if hasattr(os, "nice") else None,
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
    }
    return info


def build(config: Any, seed: int | None, wall_s: float, **extra: Any) -> dict[str, Any]:
    """A complete manifest for one job."""
    return {
        "config": config,
        "config_sha256": config_digest(config),
        "git": git_state(),
        "packages": package_versions(),
        "hardware": hardware(),
        "seed": seed,
        "wall_s": round(wall_s, 3),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


def strict(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by ``None`` (JSON has no NaN; readers choke on it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    """Strict JSON text (NaN/inf written as null), keys sorted: the form every record of the suite takes."""
    return json.dumps(strict(obj), indent=2, sort_keys=True, default=str, allow_nan=False)


def write_json(obj: Any, path: str | Path) -> None:
    """Atomic, strict JSON write (no partial file on failure, no NaN)."""
    with atomic_path(path) as tmp:
        tmp.write_text(dumps(obj) + "\n")
