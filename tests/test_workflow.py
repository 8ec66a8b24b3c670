"""The whole DAG on the smoke config (twice: bit-identical Table 6), dry runs, and config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "--directory", str(workdir), *args], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    runs = []
    for name in ("first", "second"):
        wd = tmp_path_factory.mktemp(name)
        res = snakemake(wd, "--configfile", str(ROOT / "config/smoke.yaml"), "--cores", "2", "all")
        assert res.returncode == 0, res.stderr[-3000:]
        runs.append(wd / "results" / "smoke")
    return runs


@pytest.mark.smoke
def test_smoke_produces_table_figures_and_card(smoke_runs):
    out = smoke_runs[0]
    df = pd.read_csv(out / "tables/table6.csv")
    steps = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())["eval"]["sampling_steps"]
    assert list(df["model"]) == [m for m in ("DDIM", "DiffAE", "DiLED") for _ in steps]
    assert list(df["T"]) == steps * 3
    fid_cols = ["Gen FID", "Rec FID", "Interp FID (α=0.2)", "Interp FID (α=0.4)"]
    assert df[fid_cols].notna().all().all() and (df[fid_cols] > 0).all().all()
    for model in ("ddim", "diffae", "diled"):
        assert (out / f"figures/{model}_grid.png").stat().st_size > 1000
    assert "sha256" in (out / "data/mnist32.card.md").read_text()
    record = json.loads((out / df["manifest"][0]).read_text())
    man = record["manifest"]
    for key in ("config_sha256", "git", "packages", "hardware", "seed", "wall_s"):
        assert key in man
    assert record["protocol"]["name"] == "pytorch-fid" and record["training"]["steps"] > 0
    assert any(line.startswith("| DiLED") for line in (out / "tables/table6.md").read_text().splitlines())


@pytest.mark.smoke
def test_smoke_twice_gives_identical_table(smoke_runs):
    first, second = ((run / "tables/table6.csv").read_bytes() for run in smoke_runs)
    assert first == second


@pytest.mark.smoke
def test_training_state_survives_outside_outputs(smoke_runs):
    runs = list((smoke_runs[0] / "runs").iterdir())
    assert len(runs) == 4 and all(list(r.glob("ckpt-*.pt")) for r in runs)


def test_default_config_dry_run(tmp_path):
    res = snakemake(tmp_path, "-n", "--cores", "8", "all")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "train_diled" in res.stdout and "table6" in res.stdout


def _bad_config(tmp_path: Path, **changes) -> Path:
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("changes,message", [
    ({"device": "tpu"}, "device"),
    ({"eval__sampling_steps": [5, 5000]}, "exceed the number of training timesteps"),
    ({"eval__num_samples": 1000}, "exceeds data.reference_size"),
    ({"models__diled__w": 3.0}, "w"),
    ({"models__ddim__train__steps": 0}, "steps"),
])
def test_config_errors_fail_early_and_clearly(tmp_path, changes, message):
    res = snakemake(tmp_path, "--configfile", str(_bad_config(tmp_path, **changes)), "--cores", "1", "all")
    assert res.returncode != 0
    assert message in res.stderr + res.stdout
    assert not (tmp_path / "results").exists()


def test_cli_data_and_errors(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "diled.cli", "data", str(tmp_path / "d.npz"), "--reference-size", "100"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["split"]["reference"] == 100
    bad = subprocess.run([sys.executable, "-m", "diled.cli", "data", str(tmp_path / "e.npz"), "--reference-size", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "reference size" in bad.stderr and not (tmp_path / "e.npz").exists()
