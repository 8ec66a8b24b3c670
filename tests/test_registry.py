"""The model registry: what each built-in model declares, lineage, variants, and a plugin model joining the DAG."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from diled import capabilities, pipeline, registry
from diled.config import track_view

ROOT = Path(__file__).resolve().parent.parent
SMOKE = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())

# A whole third-party model: its module (registry entry, builder, trainer) ...
TOY_MODULE = '''
from diled.registry import ModelSpec, Stage, register

register(ModelSpec(
    name="toy", display="Toy", track="image", build="toy_model:build",
    stages=(Stage("train", "toy_model:train"),), capabilities=frozenset({"generate", "reconstruct", "interpolate"}),
    reads=("data", "net"), steps=lambda cfg: [int(s) for s in cfg["eval"]["sampling_steps"]],
))


def build(cfg):
    from baselines.ddim import build as ddim

    return ddim(cfg)


def train(ctx):
    return ctx.train(ctx.build().to(ctx.device), lambda m, x: m.loss(x), ctx.data, "train")
'''
# ... and its config section.
TOY_SECTION = {"train": {"steps": 1, "batch_size": 4, "lr": 1e-3}}


def test_builtin_models_declare_what_the_workflow_reads():
    assert registry.names("image") == ["ddim", "diffae", "diffae_ft", "diled", "ldm", "cmcd"]
    assert registry.lineage(registry.get("image", "diffae_ft")) == [("diffae", "autoencoder"), ("diffae", "latent"), ("diffae_ft", "train")]
    assert registry.names("image", "reconstruct") == ["ddim", "diffae", "diffae_ft", "diled", "ldm", "cmcd"]
    assert {s.name: s.rec_protocols for s in registry.models("image")} == {
        "ddim": ("inverted",), "diffae": ("random",), "diffae_ft": ("random",), "diled": ("random",), "ldm": ("random", "inverted"),
        "cmcd": ("random",)}
    assert registry.names("image", "represent") == ["ddim", "diffae", "diled", "ldm"]
    assert registry.names("image", "edit") == ["diffae", "diled", "ldm"]
    assert [s.display for s in registry.models("image") if s.bold_per_step] == ["DDIM", "DiffAE", "DiLED"]
    view = track_view(SMOKE, "image")
    assert registry.get("image", "cmcd").steps(view) == [1, 2] and registry.get("image", "ddim").steps(view) == [2, 5]


def test_lineage_follows_what_each_stage_starts_from():
    assert registry.lineage(registry.get("image", "diled")) == [("diffae", "autoencoder"), ("diffae", "latent"), ("diled", "train")]
    assert registry.lineage(registry.get("image", "cmcd")) == [("ddim", "train"), ("cmcd", "distill")]
    assert registry.trained_from(registry.get("image", "ldm")) == ["ldm"]


def test_w_variants_come_from_the_ablation_config():
    view = track_view(SMOKE, "image")  # w in [0.5, 1.0], configured w = 1.0 (the main run)
    (v,) = registry.variants("image", view)
    assert v.name == "diled_w0.5" and v.spec.name == "diled" and v.overrides == {"models.diled.w": 0.5}
    assert registry.resolve("image", "diled", view).overrides == {}


def test_bad_entries_are_refused():
    base = registry.get("image", "ddim")
    with pytest.raises(ValueError, match="track must be one of"):
        registry.ModelSpec(**{**base.__dict__, "track": "audio"})
    with pytest.raises(ValueError, match="unknown capabilities"):
        registry.ModelSpec(**{**base.__dict__, "capabilities": frozenset({"fly"})})
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.ModelSpec(**{**base.__dict__, "display": "Other DDIM"}))


@pytest.mark.parametrize("name", registry.names("image"))
def test_every_builtin_model_has_the_capabilities_it_declares(name):
    model = pipeline.build("image", name, track_view(SMOKE, "image"))
    declared = registry.get("image", name).capabilities
    assert capabilities.missing(model, sorted(declared)) == []
    assert isinstance(model, torch.nn.Module)


def test_a_plugin_model_joins_the_dag_with_its_module_and_config_section_only(tmp_path):
    (tmp_path / "toy_model.py").write_text(TOY_MODULE)
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    cfg["plugins"] = ["toy_model"]
    cfg["image"]["models"]["toy"] = TOY_SECTION
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    res = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile"), "--directory", str(tmp_path), "-n",
                          f"--configfile={tmp_path / 'toy.yaml'}", "--cores", "1", "all"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    for path in ("models/image/toy/train.pt", "samples/image/toy/T2.npz", "samples/image/toy/T5.npz",
                 "metrics/image/toy/T5.json", "figures/image/toy_grid.png"):
        assert path in res.stdout, path
    table6 = re.search(r"rule table6:\n    input: ([^\n]*)", res.stdout).group(1)
    assert "metrics/image/toy/T2.json" in table6  # its table row


@pytest.fixture
def toy_registered(tmp_path, monkeypatch):
    (tmp_path / "toy_model.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_plugins(["toy_model"])
    yield
    registry.unregister("image", "toy")
    sys.modules.pop("toy_model", None)


def test_a_plugin_model_trains_and_samples_through_the_generic_pipeline(tmp_path, toy_registered):
    view = track_view({**SMOKE, "image": {**SMOKE["image"], "models": {**SMOKE["image"]["models"], "toy": TOY_SECTION}}}, "image")
    data = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    model, res, _ = pipeline.train_stage("image", "toy", "train", view, data, tmp_path / "run", torch.device("cpu"))
    assert res.steps == 1 and model.generate([0, 1], 2).shape == (2, 1, 32, 32)
    pipeline.save_model(model, "image", "toy", view, tmp_path / "toy.pt", {})
    loaded, ckpt = pipeline.load_model(tmp_path / "toy.pt")
    assert ckpt["track"] == "image" and torch.equal(loaded.generate([3], 2), model.generate([3], 2))
    from diled import tables

    assert tables.display("image", "toy") == "Toy"


def test_config_problems_run_each_models_own_hook():
    from diled import config

    assert config.problems(SMOKE) == []
    bad = yaml.safe_load(yaml.safe_dump(SMOKE))
    bad["image"]["models"]["cmcd"]["intermediate_ts"] = [150, 350]
    bad["image"]["models"]["ldm"]["unet"]["mults"] = [1, 2, 2, 2, 2, 2]  # a 16 px latent cannot be halved 5 times
    found = config.problems(bad)
    assert any(p.startswith("image: models.cmcd: intermediate_ts must be distinct and descending") for p in found), found
    assert any(p.startswith("image: models.ldm: a 32 px image") for p in found), found
    del bad["image"]["models"]["cmcd"]  # a model left out of the config is not run, so its hook is not asked
    assert not any("cmcd" in p for p in config.problems(bad))
