"""Atomic file writes: a failed job never leaves a half-written output behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
