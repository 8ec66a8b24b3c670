"""Lint and format gates (run by the README's test command) and the torch-free DAG parse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean():
    res = run(str(BIN / "ruff"), "check", ".")
    assert res.returncode == 0, res.stdout[-3000:]


def test_snakefmt_leaves_the_workflow_unchanged():
    res = run(str(BIN / "snakefmt"), "--check", "workflow")
    assert res.returncode == 0, res.stderr[-3000:]


def test_snakemake_lint_is_clean(tmp_path):
    res = run(sys.executable, "-m", "snakemake", "--lint", "--directory", str(tmp_path))
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert "Congratulations" in res.stdout + res.stderr


@pytest.mark.parametrize("module", ["diled.config", "diled.registry", "diled.metrics.settings"])
def test_what_the_dag_parse_imports_needs_no_torch(module):
    """Snakemake imports these at every call (including `-n`); torch alone costs seconds."""
    code = f"import sys, {module}; print('torch' in sys.modules, 'pandas' in sys.modules, 'matplotlib' in sys.modules)"
    res = run(sys.executable, "-c", code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "False", "False"]
