"""The files of trained state the suite writes, saved with a checksum and loaded without unpickling code.

A checkpoint is a plain container (dicts, lists, tuples, strings, numbers, ``None``) of tensors: what
``torch.load(weights_only=True)`` accepts, so a crafted ``.pt`` that would run code on load is refused
instead. ``save`` wraps the payload as ``{"format", "sha256", "payload"}`` where ``sha256`` covers every
tensor's dtype, shape and bytes and every other value; ``load`` recomputes it, so bytes flipped inside a
tensor (which torch would load without complaint) are caught, and a truncated file is named. Every
failure of the file itself is a ``CheckpointError`` whose message starts with the file's path; a file that could not
be read *now* (an I/O error, memory exhausted, the GPU full) is a ``diled.fileio.ReadFailure`` instead, which callers
never take as a reason to set the file aside.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from diled.fileio import atomic_path, is_out_of_memory, read_bytes, read_failure

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
    """The verified payload of a file written by ``save``; ``CheckpointError`` naming the file when the file is bad,
    ``ReadFailure`` when it could not be read now.

    The bytes are read and verified on the CPU first and moved to ``map_location`` last, so running out of GPU memory
    is never mistaken for a corrupt file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    raw = read_bytes(path)
    if not raw:
        raise CheckpointError(f"{path}: empty file (an interrupted write?)")
    if not raw.startswith(b"PK\x03\x04"):  # torch.save's zip format, the only one ``save`` writes
        raise CheckpointError(f"{path}: refused: not a zip-format torch file (a legacy-format or foreign file, which can claim "
                              "storages of any size); the suite writes only zip checkpoints")
    try:
        record = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused: it holds objects other than tensors and plain containers, which could run code when "
            f"loaded ({first[:200]}). Files the suite writes never do; do not load this one"
        ) from exc
    except Exception as exc:  # zip/stream errors of a truncated or overwritten file come in many types
        if is_out_of_memory(exc):
            raise read_failure(path, exc) from exc
        raise CheckpointError(f"{path}: unreadable checkpoint, truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    del raw
    if not isinstance(record, dict) or record.get("format") != FORMAT or "payload" not in record:
        raise CheckpointError(f"{path}: not a {FORMAT} file (written by another program or an older suite version; "
                              "delete it and rerun the job that makes it)")
    found = digest(record["payload"])
    if found != record.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch (stored {str(record.get('sha256'))[:16]}..., "
                              f"contents {found[:16]}...): the file is corrupt")
    if torch.device(map_location).type == "cpu":
        return record["payload"]
    try:
        return _to(record["payload"], torch.device(map_location))
    except Exception as exc:
        if is_out_of_memory(exc):
            raise read_failure(path, exc) from exc
        raise


def _to(obj: Any, device: torch.device) -> Any:
    """A payload with every tensor moved to ``device`` (containers rebuilt, other values as they are)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(v, device) for v in obj)
    return obj
