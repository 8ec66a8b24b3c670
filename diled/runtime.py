"""Device choice and torch settings shared by every job and the benchmark."""

from __future__ import annotations

import torch


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
