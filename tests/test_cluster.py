"""Clusters without a cluster: what the SLURM profile submits, recorded by fake ``sbatch``/``sacct`` on PATH."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

FAKES = {
    # sbatch records its command line and answers as `sbatch --parsable` does: the job id
    "sbatch": 'printf "%s\\n" "$*" >> "$FAKE_SLURM_LOG"\necho 4242',
    "sacct": 'echo "4242|PENDING"',
    "sacctmgr": "echo testacct",
    "sshare": "echo testacct",
    "sinfo": "echo",
    "squeue": "echo",
    "scancel": "true",
}


def fake_slurm(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, body in FAKES.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(0o755)


def submissions(config: str, tmp_path: Path, target_rule: str, wanted: int = 1, timeout: float = 120.0) -> list[list[str]]:
    """The sbatch command lines Snakemake issues for ``config`` under profiles/slurm, up to ``target_rule``.

    Upstream outputs are touched into place so the first submissions are the target rule's own jobs;
    Snakemake is stopped as soon as ``wanted`` submissions are recorded (the fake jobs never finish).
    """
    pytest.importorskip("snakemake_executor_plugin_slurm")
    fake_slurm(tmp_path / "bin")
    out = tmp_path / "results"
    cfg = yaml.safe_load((ROOT / config).read_text())
    dataset = cfg["image"]["data"]["dataset"]
    for rel in (f"data/image/{dataset}.npz", f"data/image/{dataset}.card.md", "weights/verified.json"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).touch()
    log = tmp_path / "sbatch.log"
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_LOG": str(log)}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow/Snakefile"), "--directory", str(ROOT),
           "--profile", str(ROOT / "profiles/slurm"), "--configfile", str(ROOT / config),
           "--config", f"outdir={out}", "tracks=[image]", "--default-resources", "slurm_account=testacct", "slurm_partition=gpu",
           "--until", target_rule, "-j", "2", "--retries", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) >= wanted:
                break
            time.sleep(0.5)
    finally:
        proc.kill()
        output = proc.communicate()[0]
    assert log.exists(), f"nothing was submitted:\n{output[-3000:]}"
    return [shlex.split(line) for line in log.read_text().splitlines()]


def option(argv: list[str], name: str) -> str | None:
    """The value of ``name`` in an sbatch argv (``-t 240`` or ``--gpus=1``)."""
    for i, arg in enumerate(argv):
        if arg == name:
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def test_gpu_config_submits_training_with_its_gpus_memory_and_time(tmp_path):
    argv = submissions("config/gpu.yaml", tmp_path, "train")[0]
    res = yaml.safe_load((ROOT / "config/gpu.yaml").read_text())["resources"]["train"]
    assert "--target-jobs" in " ".join(argv) and "train:track=image" in " ".join(argv)
    assert option(argv, "--gpus") == str(res["gpu"])
    assert option(argv, "--mem") == str(res["mem_mb"])
    assert option(argv, "-t") == str(res["runtime"])
    assert option(argv, "--cpus-per-gpu") == str(res["cpus_per_gpu"])
    assert (option(argv, "-A"), option(argv, "-p")) == ("testacct", "gpu")  # site keys come from the profile / command line


def test_profile_keys_are_valid_snakemake_options():
    """A misspelled key in the profile fails every cluster run: each must be a Snakemake option."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    helptext = subprocess.run([sys.executable, "-m", "snakemake", "--help"], capture_output=True, text=True).stdout
    for key in profile:
        assert f"--{key}" in helptext, key
    assert profile["executor"] == "slurm"
