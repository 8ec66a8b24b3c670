"""Atomic file writes (a failed job never leaves a half-written output behind), and reads that tell a file that
could not be read *now* from a file that is corrupt."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (same suffix, so writers that infer formats still work).

    On normal exit it replaces ``path`` in one rename; on any error it is deleted and the error re-raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.partial-{os.getpid()}{path.suffix}")  # per process: concurrent writers never share one
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def partial_owner(path: Path) -> int | None:
    """The pid in an ``atomic_path`` temporary's name (``<stem>.partial-<pid><suffix>``), else None."""
    stem = path.name.split(".partial-", 1)
    if len(stem) != 2:
        return None
    digits = stem[1].split(".", 1)[0]
    return int(digits) if digits.isdigit() else None


def remove_stale_partials(folder: str | Path) -> list[Path]:
    """Delete ``atomic_path`` temporaries in ``folder`` whose writing process is gone (killed mid-write).

    A temporary of a live process (a concurrent job) is left alone. Returns what was removed.
    """
    removed = []
    for p in Path(folder).glob("*.partial-*"):
        pid = partial_owner(p)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class ReadFailure(RuntimeError):
    """A file that exists could not be read now (an I/O error, memory exhausted): not evidence that it is corrupt.

    Callers that set corrupt files aside or delete them must let this pass untouched: the file stays as it is and the
    message says to retry once the cause is gone.
    """


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says memory ran out (Python's ``MemoryError``, torch's CPU allocator or CUDA out of memory)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def read_failure(path: str | Path, exc: BaseException) -> ReadFailure:
    """The ``ReadFailure`` to raise for ``path`` after ``exc`` (an ``OSError`` or an out-of-memory error)."""
    return ReadFailure(f"{path}: could not be read now ({type(exc).__name__}: {exc}); the file was left untouched: "
                       "retry once the cause (disk, network file system, memory) is fixed")


def read_bytes(path: str | Path) -> bytes:
    """The whole file, read by Python before any parser sees it, so that an I/O error or exhausted memory surfaces as
    a ``ReadFailure`` and never as the parser's "corrupt file" (torch's zip reader reports both as ``RuntimeError``).

    A missing file is a ``FileNotFoundError`` as usual.
    """
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except (OSError, MemoryError) as exc:
        raise read_failure(path, exc) from exc


def npz_header(npz: Any, key: str) -> tuple[tuple[int, ...], Any]:
    """(shape, dtype) of member ``key`` of an open ``np.load`` of an ``.npz``, read from its header alone.

    Reading the header costs a few bytes whatever the member holds, so a file can be checked before any member is
    inflated (a compressed member of zeros can claim gigabytes).
    """
    import numpy as np

    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with npz.zip.open(f"{key}.npy") as fh:
        version = np.lib.format.read_magic(fh)
        if version not in readers:
            raise ValueError(f"member {key!r}: .npy format version {version} is not one numpy writes for plain arrays")
        shape, _, dtype = readers[version](fh)
    return tuple(shape), dtype


def memory_limit_bytes(fraction: float = 0.5) -> int:
    """``fraction`` of this machine's physical memory: the most an in-memory array read from a file may claim."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * fraction)
    except (ValueError, OSError, AttributeError):  # no sysconf (not POSIX): 8 GiB
        return 8 << 30


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
