"""Atomic writes: success replaces the target, failure leaves neither a target nor a temporary."""

from __future__ import annotations

import pytest

from diled.fileio import atomic_path


def test_success_replaces_target(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".json" and tmp != target
        tmp.write_text("new")
    assert target.read_text() == "new" and list(target.parent.iterdir()) == [target]


def test_failure_leaves_nothing_and_keeps_old_content(tmp_path):
    target = tmp_path / "out.npz"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("job died")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
