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

from diled import capabilities, registry, stages
from diled.config import load_config, track_view

ROOT = Path(__file__).resolve().parent.parent
SMOKE = load_config(ROOT / "config/smoke.yaml")
# A whole third-party model: one module (builder, trainer) and one config file (registry entry, defaults, schema).
TOY = Path(__file__).resolve().parent / "toy_model"


def test_builtin_models_declare_what_the_workflow_reads():
    assert registry.names("image") == ["ddim", "diffae", "diffae_ft", "diled", "ldm", "nvae", "cmcd"]
    assert registry.lineage(registry.get("image", "diffae_ft")) == [("diffae", "autoencoder"), ("diffae", "latent"), ("diffae_ft", "train")]
    assert registry.names("image", "reconstruct") == ["ddim", "diffae", "diffae_ft", "diled", "ldm", "nvae", "cmcd"]
    assert {s.name: s.rec_protocols for s in registry.models("image")} == {
        "ddim": ("inverted",), "diffae": ("random",), "diffae_ft": ("random",), "diled": ("random",), "ldm": ("random", "inverted"),
        "nvae": ("random", "inverted"), "cmcd": ("random",)}
    assert registry.names("image", "represent") == ["ddim", "diffae", "diled", "ldm", "nvae"]
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
    model = stages.build("image", name, track_view(SMOKE, "image"))
    declared = registry.get("image", name).capabilities
    assert capabilities.missing(model, sorted(declared)) == []
    assert isinstance(model, torch.nn.Module)


def test_a_model_file_declares_the_registry_entry_and_its_section():
    (toy,) = registry.load_catalogue(TOY / "models")
    try:
        assert (toy.name, toy.display, toy.track, toy.build) == ("toy", "Toy", "image", "toy_model:build")
        assert toy.stages == (registry.Stage("train", "toy_model:train"),) and toy.rec_protocols == ("inverted",)
        assert toy.steps(track_view(SMOKE, "image")) == [2, 5] and toy.defaults["train"]["steps"] == 2
    finally:
        registry.unregister("image", "toy")


@pytest.mark.parametrize("doc, message", [
    ("defaults: {}", "needs a 'spec' mapping"),
    ("spec: {display: X, module: m, stages: [{name: train, train: t}], capabilities: [generate], colour: red}", "unknown key(s) ['spec.colour']"),
    ("spec: {display: X, stages: [{name: train, train: t}], capabilities: [generate]}", "spec.module is required"),
    ("spec: {display: X, module: m, stages: [{name: train, train: t}], capabilities: [fly]}", "unknown capabilities"),
    ("spec: {display: X, module: m, stages: [{name: train, train: t}], capabilities: [generate],\n"
     "       variants: {key: models.other.w, over: w_ablation.w, name: x}}", "must be a key of this model's section"),
    ("spec: [", "not valid YAML"),
    ("spec: !!python/object/apply:os.system ['touch PWNED']", "not valid YAML"),  # safe_load builds no object
    ("spec:\n  display: Toy\n  module: toy_mod", "spec.stages is required"),  # a truncated copy
    ("spec: {display: X, module: m, stages: [{name: distill, train: t}], capabilities: [generate]}\n"
     "defaults: {train: {steps: 2}}", "stage 'distill' trains from defaults.distill, which is missing"),
])
def test_a_bad_model_file_is_refused_with_its_path(tmp_path, doc, message):
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "bad.yaml").write_text(doc)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        registry.load_catalogue(tmp_path)
    assert "bad.yaml" in str(err.value)
    assert "bad" not in registry.names("image")
    assert not (Path.cwd() / "PWNED").exists()


def test_a_model_file_that_cannot_be_read_now_is_an_io_error_not_a_bad_file(tmp_path):
    (tmp_path / "image" / "busy.yaml").mkdir(parents=True)  # read_text raises IsADirectoryError, an OSError
    with pytest.raises(OSError):
        registry.load_catalogue(tmp_path)
    assert (tmp_path / "image" / "busy.yaml").exists()  # nothing set aside


def test_a_model_from_one_module_and_one_config_file_joins_the_dag(tmp_path):
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump({"model_dirs": [str(TOY / "models")]}))
    env = {**os.environ, "PYTHONPATH": f"{TOY}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    res = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "-n",
                          "--configfile", str(ROOT / "config/smoke.yaml"), str(tmp_path / "toy.yaml"), "--cores", "1",
                          "all"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    for path in ("models/image/toy/train.pt", "samples/image/toy/T2.npz", "samples/image/toy/T5.npz",
                 "metrics/image/toy/T5.json", "figures/image/toy_grid.png"):
        assert path in res.stdout, path
    table6 = re.search(r"rule table6:\n    input: ([^\n]*)", res.stdout).group(1)
    assert "metrics/image/toy/T2.json" in table6  # its table row


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.syspath_prepend(str(TOY))
    registry.load_catalogue(TOY / "models")
    yield
    registry.unregister("image", "toy")
    sys.modules.pop("toy_model", None)


def test_a_file_model_trains_and_samples_through_the_generic_pipeline(tmp_path, toy_registered):
    view = track_view(load_config(ROOT / "config/smoke.yaml", overrides={"model_dirs": [str(TOY / "models")]}), "image")
    data = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    model, res, _ = stages.train_stage("image", "toy", "train", view, data, tmp_path / "run", torch.device("cpu"))
    assert res.steps == 2 and model.generate([0, 1], 2).shape == (2, 1, 32, 32)
    assert res.steps == view["models"]["toy"]["train"]["steps"]  # the runner read the stage's section, not the trainer
    stages.save_model(model, "image", "toy", view, tmp_path / "toy.pt", {})
    loaded, ckpt = stages.load_model(tmp_path / "toy.pt")
    assert ckpt["track"] == "image" and torch.equal(loaded.generate([3], 2), model.generate([3], 2))
    from diled.report import tables

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


def test_a_preset_sits_between_a_models_defaults_and_the_users_settings():
    cfg = load_config(ROOT / "config/smoke.yaml", overrides={"image": {"model_settings": {"ldm": {"latent": {"steps": 3}}}}})
    latent = cfg["image"]["models"]["ldm"]["latent"]
    assert latent["steps"] == 3  # the user's
    assert latent["batch_size"] == 16 and latent["ema_decay"] == 0.9  # presets.smoke of config/models/image/ldm.yaml
    assert latent["warmup"] == 50 and latent["precision"] == "auto"  # its defaults, which the preset leaves alone
    assert "model_preset" not in cfg and "model_settings" not in cfg["image"]  # consumed by the resolution
    with pytest.raises(ValueError, match="no registered model has a preset 'tiny'"):
        load_config(overrides={"model_preset": "tiny"})
    with pytest.raises(ValueError, match=r"image.model_settings: \['ldm'\] set to null"):
        load_config(overrides={"image": {"model_settings": {"ldm": None}}})
    with pytest.raises(ValueError, match="image.models: a list of the models to run"):
        load_config(overrides={"image": {"models": {"ddim": {}}}})


def test_default_gives_pixel_ddim_at_least_the_images_diffae_sees_and_converged_only_lengthens():
    """Issue 39's compute-fair budgets: DDIM's pixel model sees at least the images of DiffAE's autoencoder stage (which
    DiLED and its control start from); config/converged.yaml only lengthens stages, and keeps DiLED = its control."""
    from diled.config import track_view

    default = track_view(load_config(ROOT / "config/config.yaml"), "image")["models"]
    seen = {k: default[m][s]["steps"] * default[m][s]["batch_size"] for k, (m, s) in
            {"ddim": ("ddim", "train"), "diffae": ("diffae", "autoencoder")}.items()}
    assert seen["ddim"] >= seen["diffae"]
    converged = track_view(load_config(ROOT / "config/converged.yaml"), "image")["models"]
    for model, sections in default.items():
        for section, value in sections.items():
            if isinstance(value, dict) and "steps" in value:
                assert converged[model][section]["steps"] >= value["steps"], (model, section)
    assert converged["diled"]["train"] == converged["diffae_ft"]["train"] == default["diled"]["train"]
    assert converged["ddim"]["train"]["steps"] > default["ddim"]["train"]["steps"]
