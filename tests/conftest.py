"""Shared fixtures: tiny models and the repository paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _single_thread():
    """Deterministic, comparable timings: every test runs torch on one thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def failing_path(monkeypatch):
    """``failing_path(method, where, code, message)``: ``Path.<method>`` raises ``OSError(code, message)`` for the paths
    ``where(path)`` selects and works as usual for every other (a full, read-only or failing disk, for one folder)."""
    def install(method: str, where, code: int, message: str) -> None:
        real = getattr(Path, method)

        def failing(self, *args, **kwargs):
            if where(self):
                raise OSError(code, message)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, method, failing)
    return install


# The two files whose module fixtures run a whole DAG (about 11 and 2 minutes on 2 cores) are collected first, so that
# with ``-n 2 --dist loadfile`` (the test command) each starts on its own worker at once and every other file fills
# the cores around them, instead of a DAG starting last and running alone.
FIRST = ("test_workflow.py", "test_paper_path.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        name = item.path.name
        return FIRST.index(name) if name in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: the order within and among the other files is kept
