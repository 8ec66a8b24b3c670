"""The files of trained state the suite writes, saved with a checksum and loaded without unpickling code.

A checkpoint is a plain container (dicts, lists, tuples, strings, numbers, ``None``) of tensors: what
``torch.load(weights_only=True)`` accepts, so a crafted ``.pt`` that would run code on load is refused
instead. ``save`` wraps the payload as ``{"format", "sha256", "payload"}`` where ``sha256`` covers every
tensor's dtype, shape and bytes and every other value; ``load`` recomputes it, so bytes flipped inside a
tensor (which torch would load without complaint) are caught, and a truncated file is named. Every
failure is a ``CheckpointError`` whose message starts with the file's path.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from diled.files import atomic_path

FORMAT = "diled-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, truncated, foreign, unsafe or failing its checksum."""


def digest(obj: Any) -> str:
    """sha256 of a payload: tensors by dtype, shape and bytes; containers in order (dict keys sorted)."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=lambda k: (type(k).__name__, str(k))):
            h.update(f"K{type(key).__name__}:{key}".encode())
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__[0]}{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        h.update(f"V{type(obj).__name__}:{json.dumps(obj)}".encode())
    else:
        raise TypeError(f"checkpoints hold tensors and plain containers only, got {type(obj).__name__}")


def save(payload: dict, path: str | Path) -> None:
    """Write ``payload`` with its checksum, atomically (a crash leaves the previous file or none)."""
    record = {"format": FORMAT, "sha256": digest(payload), "payload": payload}
    with atomic_path(path) as tmp:
        torch.save(record, tmp)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The verified payload of a file written by ``save``; ``CheckpointError`` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (an interrupted write?)")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused: it holds objects other than tensors and plain containers, which could run code when "
            f"loaded ({first[:200]}). Files the suite writes never do; do not load this one"
        ) from exc
    except Exception as exc:  # zip/stream errors of a truncated or overwritten file come in many types
        raise CheckpointError(f"{path}: unreadable checkpoint, truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT or "payload" not in record:
        raise CheckpointError(f"{path}: not a {FORMAT} file (written by another program or an older suite version; "
                              "delete it and rerun the job that makes it)")
    found = digest(record["payload"])
    if found != record.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch (stored {str(record.get('sha256'))[:16]}..., "
                              f"contents {found[:16]}...): the file is corrupt")
    return record["payload"]
