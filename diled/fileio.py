"""Atomic file writes (a failed job never leaves a half-written output behind), and reads that tell a file that
could not be read *now* from a file that is corrupt."""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# A temporary whose writer cannot be asked (another host, container or boot) is stale only once nothing has touched
# it for this long: a live writer in another PID namespace is never judged by a local pid.
STALE_AFTER_S = 6 * 3600


@functools.cache
def writer_identity() -> str:
    """12 hex digits naming this host, PID namespace and boot: two processes with the same identity can see each other's
    pids; processes on another node of a shared home, in another container or before a reboot cannot."""
    parts = [socket.gethostname()]
    for probe in ("/proc/self/ns/pid", "/proc/sys/kernel/random/boot_id"):
        try:
            parts.append(os.readlink(probe) if probe.endswith("/pid") else Path(probe).read_text().strip())
        except OSError:
            parts.append("?")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def partial_name(path: Path) -> Path:
    """The temporary sibling ``<stem>.partial-<writer identity>-<pid><suffix>`` that ``atomic_path`` writes."""
    return path.with_name(f"{path.stem}.partial-{writer_identity()}-{os.getpid()}{path.suffix}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (same suffix, so writers that infer formats still work).

    On normal exit it replaces ``path`` in one rename; on any error it is deleted and the error re-raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(path)  # per host, namespace and process: concurrent writers never share one
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def partial_owner(path: Path) -> tuple[str | None, int] | None:
    """(writer identity, pid) of an ``atomic_path`` temporary's name; the identity is None for the older
    ``<stem>.partial-<pid><suffix>`` names, which do not say where the writer ran. None for any other name."""
    stem = path.name.split(".partial-", 1)
    if len(stem) != 2:
        return None
    token = stem[1].split(".", 1)[0]
    ident, _, digits = token.rpartition("-")
    if not digits.isdigit() or (ident and not (len(ident) == 12 and all(c in "0123456789abcdef" for c in ident))):
        return None
    return ident or None, int(digits)


def is_stale_partial(path: Path, now: float | None = None) -> bool:
    """Whether an ``atomic_path`` temporary was left by a writer that is gone: one of this host, namespace and boot
    whose pid no longer runs; any other (or an old-style name) only when untouched for ``STALE_AFTER_S``."""
    owner = partial_owner(path)
    if owner is None:
        return False
    ident, pid = owner
    if ident == writer_identity():
        return pid != os.getpid() and not _alive(pid)
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age > STALE_AFTER_S


def remove_stale_partials(folder: str | Path) -> list[Path]:
    """Delete ``atomic_path`` temporaries in ``folder`` whose writer is gone (``is_stale_partial``: killed mid-write).

    A temporary of a live process (a concurrent job), or of a writer elsewhere that touched it recently, is left alone;
    a folder that cannot be written (read-only cache) is left as it is. Returns what was removed.
    """
    removed = []
    for p in Path(folder).glob("*.partial-*"):
        if not is_stale_partial(p):
            continue
        try:
            p.unlink(missing_ok=True)
        except OSError:  # read-only or foreign-owned: not ours to clean
            continue
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


def regular_file(path: str | Path, what: str = "file", error: type[Exception] = ValueError) -> Path:
    """``path`` when it is a regular file (symlinks followed); otherwise ``error`` naming it. A FIFO, socket or device
    would block a reader forever or never end, so it is refused before anything opens it."""
    import stat

    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise error(f"{path}: {kind}, not a regular file; a {what} must be a plain file")
    return path


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
