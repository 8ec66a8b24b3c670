"""Lint and format gates (run by the README's test command) and the torch-free DAG parse."""

from __future__ import annotations

import os
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


def test_niceness_takes_the_most_specific_entry():
    from diled.config import niceness

    table = {"default": 10, "image": 5, "image/diffae": 3, "image/diffae/autoencoder": 0}
    assert niceness(table, "image", "diffae", "autoencoder") == 0
    assert niceness(table, "image", "diffae", "latent") == 3
    assert niceness(table, "image", "diled_w0.5", "train") == 5
    assert niceness(table, "text", "diled", "train") == 10
    assert niceness(table, "image", None, "train") == 5  # a job without a model wildcard: its track's entry
    assert niceness(None, "image") == 0


def test_jobs_are_niced_and_inherit_the_allocator_settings():
    """A child of the workflow process sees JOB_ENV (a value already set wins) and can only raise its niceness."""
    from diled import config as cfg

    env = {"MALLOC_TOP_PAD_": "7"}
    assert cfg.set_job_env(env) == {**cfg.JOB_ENV, "MALLOC_TOP_PAD_": "7"}
    code = ("import os; from diled.hardware import lower_priority as lp; a = lp(4); b = lp(2); "
            "print(a, b, os.environ['MALLOC_MMAP_THRESHOLD_'])")
    out = subprocess.run([sys.executable, "-c", code], env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True)
    start = os.nice(0)
    assert out.stdout.split() == [str(max(4, start)), str(max(4, start)), cfg.JOB_ENV["MALLOC_MMAP_THRESHOLD_"]]


def test_the_library_never_imports_the_baselines():
    """diled/ is the mechanism; models live in baselines/ (and diled/modalities) and are named by the registry as
    strings: an import of baselines from diled would bring back the diled <-> baselines cycle."""
    import ast

    found = []
    for path in sorted((ROOT / "diled").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == "baselines"]
    assert found == []
