"""The paper configs' path end to end on a toy copy: config/ffhq128.yaml with tiny networks, a 24-image LMDB in
DiffAE's layout and released checkpoints written in DiffAE's layout, run by Snakemake: streamed data, released
weights instead of training (sha256-pinned), DiLED fine-tuned from them, sharded sampling and merged evaluation."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from diled import config as cfgmod

ROOT = Path(__file__).resolve().parent.parent
TINY = {"ch": 32, "mults": [1, 2], "encoder_mults": [1, 2, 2], "attn": [16], "num_res_blocks": 1, "dropout": 0.1}
STEPS = {"steps": 2, "batch_size": 4, "lr": 1.0e-4, "ema_decay": 0.9, "ckpt_every": 2, "workers": 2}


def _lmdb(path: Path, n: int) -> None:
    import lmdb
    from PIL import Image

    rng = np.random.default_rng(0)
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=95)
            txn.put(f"256-{i:05d}".encode(), buf.getvalue())
        txn.put(b"length", str(n).encode())
    env.close()


def _released(view: dict, tmp: Path) -> dict:
    """DiffAE-layout last.ckpt files (autoencoder + latent net, and a DDPM) of the config's networks, random weights."""
    from baselines.ddim import DDIM
    from baselines.diffae import build
    from diled.modalities.image.model import pixel_diffusion

    torch.manual_seed(0)
    ae = build(view)
    sd = {f"{k}": v for k, v in ae.decoder.unet.net.state_dict().items()}
    sd |= {f"encoder.{k}": v for k, v in ae.encoder.state_dict().items()}
    sd |= {f"latent_net.{k}": v for k, v in ae.denoiser.net.state_dict().items()}
    full = {f"{p}.{k}": v for p in ("model", "ema_model") for k, v in sd.items()}
    full["conds_mean"], full["conds_std"] = torch.randn(1, view["net"]["z_dim"]), torch.rand(1, view["net"]["z_dim"]) + 0.5
    ddpm = DDIM(pixel_diffusion(view, 0)).pixel.unet.net.state_dict()
    out = {}
    for name, state in (("autoenc_latent", full), ("ddpm", {f"{p}.{k}": v for p in ("model", "ema_model") for k, v in ddpm.items()})):
        path = tmp / f"{name}.ckpt"
        torch.save({"state_dict": state, "global_step": 1}, path)
        out[name] = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return out


def _config(tmp: Path, pin: bool = True) -> Path:
    base = yaml.safe_load((ROOT / "config/ffhq128.yaml").read_text())
    _lmdb(tmp / "ffhq.lmdb", 24)
    img = base["image"]
    img["data"].update(root=str(tmp / "ffhq.lmdb"), reference_size=12, workers=0)
    img["net"].update(size=32, z_dim=32, diffae=TINY)  # 32 px: the smallest LPIPS-AlexNet takes
    img["latent"]["mlp"] = {"hidden": 64, "layers": 3, "time_dim": 16}
    merged = cfgmod.load_config(overrides=copy.deepcopy(base))
    view = cfgmod.track_view(merged, "image")
    rel = _released(view, tmp)
    if not pin:
        rel["autoenc_latent"]["sha256"] = None
    models = img["model_settings"]
    models["ddim"].update(train={**STEPS}, released=rel["ddpm"])
    models["diffae"].update(autoencoder={**STEPS}, latent={**STEPS}, released=rel["autoenc_latent"])
    models["diled"]["train"] = {**STEPS}
    models["diffae_ft"]["train"] = {**STEPS}
    img["eval"].update(sampling_steps=[2], num_samples=10, shard_size=4, batch_size=4, bootstrap=20, kid_subsets=5)
    img["eval"]["fid"]["batch_size"] = 20
    img["figures"] = {"grid_count": 3}
    img["w_ablation"] = {"w": [0.5, 1.0], "steps": 2}
    base.update(outdir=str(tmp / "results"), device="cpu", threads=1)
    path = tmp / "paper_toy.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def _run(config: Path, *targets: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow/Snakefile"), "--directory", str(ROOT),
                           "--configfile", str(config), "--cores", "2", *targets], capture_output=True, text=True,
                          env={**os.environ, "PYTHONHASHSEED": "0", "DILED_FEATURE_CACHE": str(config.parent / "features")})


@pytest.fixture(scope="module")
def paper_toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper")
    res = _run(_config(tmp), "all")
    assert res.returncode == 0, res.stderr[-4000:]
    return tmp / "results"


@pytest.mark.smoke
def test_paper_path_writes_table6_from_released_weights_and_shards(paper_toy):
    df = pd.read_csv(paper_toy / "tables/table6.csv")
    run = df[df["status"] == "run"]
    assert list(run["model"]) == ["DDIM", "DiffAE", "DiffAE + FT", "DiLED"]
    assert run["Gen FID"].notna().all() and (run["Gen FID"] > 0).all()
    for model in ("ddim", "diffae", "diled"):
        rec = json.loads((paper_toy / f"metrics/image/{model}/T2.json").read_text())
        assert rec["shards"] == 3 and rec["counts"]["gen"] == 10  # 4 + 4 + 2 rows merged
    released = json.loads((paper_toy / "models/image/diffae/autoencoder.json").read_text())["training"]
    assert released["steps"] == 0 and "sha256" in released["weights_from"]
    tuned = json.loads((paper_toy / "models/image/diled/train.json").read_text())["training"]
    assert tuned["steps"] == 2 and "weights_from" not in tuned
    assert sorted(p.name for p in (paper_toy / "samples/image/diled/T2").glob("shard*.npz")) == ["shard0.npz", "shard1.npz", "shard2.npz"]
    assert (paper_toy / "figures/figure3.png").is_file() and (paper_toy / "tables/latent_health.md").is_file()
    assert not (paper_toy / "tables/probe.md").exists()  # unlabelled photos: no probe, no editing
    assert "# Table 6 (ffhq, 32 px)" in (paper_toy / "tables/table6.md").read_text()  # not titled as the embedded digits


def test_unpinned_release_stops_with_its_hash_before_any_job(tmp_path):
    config = _config(tmp_path, pin=False)
    res = _run(config, str(tmp_path / "results/models/image/diffae/autoencoder.pt"))
    assert res.returncode != 0
    found = hashlib.sha256(Path(yaml.safe_load(config.read_text())["image"]["model_settings"]["diffae"]["released"]["path"]).read_bytes()).hexdigest()
    said = res.stdout + res.stderr
    assert "models.diffae.released.sha256: not pinned" in said and found in said
    assert not (tmp_path / "results").exists()  # refused at parse time: no data preparation, no log, no output


def _with_placeholders(name: str, tmp: Path) -> Path:
    """config/<name>.yaml with its data folder and released checkpoints present (empty stand-ins, pinned)."""
    cfg = yaml.safe_load((ROOT / f"config/{name}.yaml").read_text())
    (tmp / "data").mkdir()
    cfg["image"]["data"]["root"] = str(tmp / "data")
    for model, section in cfg["image"]["model_settings"].items():
        if (section or {}).get("released"):
            path = tmp / f"{model}.ckpt"
            path.write_bytes(b"a stand-in: a dry run never reads it")
            section["released"] = {**section["released"], "path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = tmp / f"{name}.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def _dry_run(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow/Snakefile"), "--directory", str(ROOT),
                           "-n", "all", "--configfile", str(config)], capture_output=True, text=True)


@pytest.mark.parametrize("name", ["ffhq128", "celeba64", "bedroom128"])
def test_paper_configs_without_their_data_fail_before_planning(name):
    res = _dry_run(ROOT / f"config/{name}.yaml")
    assert res.returncode != 0
    said = res.stdout + res.stderr
    assert "image: data.root: " in said and "does not exist" in said
    assert "Job stats" not in said  # nothing was planned
    assert said.count("Traceback") <= 1


@pytest.mark.parametrize("name", ["ffhq128", "celeba64", "bedroom128"])
def test_paper_configs_dry_run(name, tmp_path):
    res = _dry_run(_with_placeholders(name, tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = dict(line.split()[:2] for line in res.stdout.splitlines() if line.split()[:1] and line.split()[0] in ("train", "sample_shard"))
    assert int(jobs["sample_shard"]) == 80  # 4 models x 2 step counts x 10 shards of 5000
