"""The hardware a job runs on: device choice, torch threads, process priority, and native-bf16 detection (``precision: auto``)."""

from __future__ import annotations

import functools
import os
import platform

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


def resolve_precision(name: str, device: torch.device | str) -> str:
    """A configured precision as run on ``device``: ``auto`` is bf16 on a CPU with native bf16 matrix instructions
    (``native_bf16_features``) and fp32 elsewhere, CUDA included (a GPU run says bf16 or fp16 itself)."""
    if name not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {list(PRECISION_CHOICES)}, got {name!r}")
    if name != "auto":
        return name
    return "bf16" if torch.device(device).type == "cpu" and native_bf16_features() else "fp32"
