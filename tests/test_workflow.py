"""The whole DAG on the smoke config (and every DiLED job of it again: byte-identical tables), dry runs, and config errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from diled.config import load_config

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile")]


def snakemake(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "--directory", str(workdir), *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONHASHSEED": "0", **(env or {})})


SMOKE = ROOT / "config/smoke.yaml"
IDENTICAL_TABLES = ("table6.csv", "table6_kid.md", "latent_health.csv", "fid_settings.csv", "w_ablation.csv",
                    "protein_fitness.csv", "protein_reconstruction.csv", "protein_generation.csv",
                    "protein_optimisation.csv", "table1.csv", "text_editing.md")


def smoke_all(workdir: Path, features: Path, *args: str) -> subprocess.CompletedProcess:
    """``snakemake all`` on the smoke config with the Inception feature cache at ``features``."""
    return snakemake(workdir, "--configfile=" + str(SMOKE), "--cores", "2", *args, "all",
                     env={"DILED_FEATURE_CACHE": str(features)})


def assert_identical_tables(first: Path, second: Path) -> None:
    for table in IDENTICAL_TABLES:
        assert (first / "tables" / table).read_bytes() == (second / "tables" / table).read_bytes(), table


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory) -> Path:
    """One content-addressed Inception feature cache for every smoke run of the module (keyed by the sha256 of each
    image set's bytes: a generated set that differs by one byte misses it and is scored afresh, so identical tables
    still mean identical images; what sharing it no longer checks is Inception's determinism on equal bytes, which the
    cache itself assumes). A warm cache saves a smoke run about 2.5 of its 7 minutes on a 2-core CPU."""
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, feature_cache) -> list[Path]:
    """The whole smoke DAG from nothing, then a second run of every DiLED job in it.

    The second run works in a copy of the first one's directory, with DiLED's run folders (its resumable training
    state) deleted and its three training jobs forced (``--forcerun``), so Snakemake runs again, from step 0, each
    DiLED training (image, text, protein) and everything downstream of it: sampling, evaluation, probes, editing,
    the w ablation, the FID-settings chain and every table. Its tables must equal the first run's byte for byte:
    the check of "two runs give identical tables" on the jobs that carry the method, at 31 of the DAG's 99 jobs.
    Data preparation is repeated by `test_data_preparation_again_gives_identical_files`; the baselines and the
    judges only by `test_two_fresh_smoke_runs_give_identical_tables` (marker ``slow``: ``pytest -m slow``), which
    repeats the whole DAG from nothing.
    """
    first = tmp_path_factory.mktemp("first")
    res = smoke_all(first, feature_cache)
    assert res.returncode == 0, res.stderr[-3000:]
    second = tmp_path_factory.mktemp("second")
    shutil.copytree(first, second, symlinks=True, dirs_exist_ok=True)
    tracks = ("image", "text", "protein")
    for track in tracks:
        (state,) = (second / "results/smoke/runs" / track).glob("diled-train-*")
        shutil.rmtree(state)  # no checkpoint to resume from: training starts again at step 0
    forced = [f"results/smoke/models/{track}/diled/train.pt" for track in tracks]
    res = smoke_all(second, feature_cache, "--forcerun", *forced, "--")
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    ran = dict(re.findall(r"^(\w+)\s+(\d+)$", re.search(r"Job stats:\n(.*?)\ntotal", log, re.S).group(1), re.M))
    for rule in ("train", "sample", "evaluate_image", "evaluate_text", "evaluate_protein", "fid_setting", "editing",
                 "probe", "w_ablation", "table6", "latent_health", "text_tables", "protein_tables"):
        assert rule in ran, (rule, ran)  # the forced jobs really ran again (identical tables would prove nothing else)
    assert int(ran["train"]) == 3, ran
    for track in tracks:
        assert len(list((second / "results/smoke/runs" / track).glob("diled-train-*/ckpt-*.pt"))) > 0
    return [first / "results" / "smoke", second / "results" / "smoke"]


@pytest.mark.smoke
def test_smoke_produces_table_figures_and_card(smoke_runs):
    out = smoke_runs[0]
    full = pd.read_csv(out / "tables/table6.csv")
    df = full[full["status"] == "run"].reset_index(drop=True)
    assert set(full.loc[full["status"] != "run", "model"]) == {"StyleGAN-XL"}  # NVAE is a real row
    assert full.loc[full["status"] != "run", "Gen FID"].isna().all()  # never a number for a model not run
    cfg = load_config(ROOT / "config/smoke.yaml")["image"]
    steps, cm_steps = cfg["eval"]["sampling_steps"], cfg["models"]["cmcd"]["steps"]
    stepped = ("DDIM", "DiffAE", "DiffAE + FT", "DiLED", "LDM")
    assert list(df["model"]) == [m for m in stepped for _ in steps] + ["NVAE"] + ["CM-CD"] * len(cm_steps)
    assert list(df["T"]) == steps * len(stepped) + [1] + cm_steps  # NVAE: one decoder pass
    fid_cols = ["Gen FID", "Interp FID (α=0.2)", "Interp FID (α=0.4)"]
    assert df[fid_cols].notna().all().all() and (df[fid_cols] > 0).all().all()
    for col in fid_cols + ["Rec FID (random)", "Rec FID (inverted)"]:  # every FID cell carries its bootstrap interval and KID
        cell = df[df[col].notna()]
        assert ((cell[f"{col} lo"] < cell[col]) & (cell[col] < cell[f"{col} hi"])).all()
        assert cell[col.replace("FID", "KID") + " std"].gt(0).all()
    # protocols: DDIM reconstructs only by inversion, CM-CD only by its seeded noising, the rest under both
    has = df.groupby("model")[["Rec FID (random)", "Rec FID (inverted)"]].apply(lambda g: tuple(g.notna().all()))
    assert has.to_dict() == {"DDIM": (False, True), "DiffAE": (True, True), "DiffAE + FT": (True, True), "DiLED": (True, True),
                             "LDM": (True, True), "NVAE": (True, True), "CM-CD": (True, False)}
    ldm = df[df["model"] == "LDM"]  # reconstruction through the autoencoder alone: the same at every T and protocol
    assert ldm["Rec FID (random)"].nunique() == 1 and ldm["Rec MSE (random)"].nunique() == 1 and ldm["Gen FID"].nunique() == len(steps)
    assert (ldm["Rec FID (random)"] == ldm["Rec FID (inverted)"]).all()
    nvae = df[df["model"] == "NVAE"]  # reconstruction from the posterior means: one computation for both protocols
    assert (nvae["Rec FID (random)"] == nvae["Rec FID (inverted)"]).all() and (nvae["Interp FID (α=0.2)"] != nvae["Rec FID (random)"]).all()
    cm = df[df["model"] == "CM-CD"]  # real mixing: interpolations differ from the reconstruction
    assert (cm["Interp FID (α=0.4)"] != cm["Rec FID (random)"]).all()
    health = pd.read_csv(out / "tables/latent_health.csv")
    assert set(health["model"]) >= {"DDIM", "DiffAE", "DiffAE + FT", "DiLED", "LDM", "NVAE", "CM-CD"}
    assert health["class kept (random)"].between(0, 1).sum() == len(health) - 1  # all but DDIM (no random protocol)
    assert health.loc[health["model"].isin(["DiffAE", "DiLED"]), ["code spread", "z gain t=500"]].gt(0).all().all()
    assert health[["samples recognisable", "sample class entropy"]].apply(lambda c: c.between(0, 1)).all().all()
    judge = json.loads((out / "judges/image/digits.json").read_text())  # the digit judge's own job and record
    assert 0 < judge["accuracy"] <= 1 and 0 < judge["pixel_accuracy"] <= 1 and judge["held_out"] == cfg["data"]["reference_size"]
    assert "± " in (out / "tables/table6_kid.md").read_text()
    for model in ("ddim", "diffae", "diled", "ldm", "nvae", "cmcd"):
        assert (out / f"figures/image/{model}_grid.png").stat().st_size > 1000
    assert "sha256" in (out / "data/image/mnist32.card.md").read_text()
    record = json.loads((out / df["manifest"][0]).read_text())
    man = record["manifest"]
    for key in ("config_sha256", "git", "packages", "hardware", "seed", "wall_s"):
        assert key in man
    assert man["hardware"]["niceness"] >= 5 and man["hardware"]["malloc_env"]["MALLOC_MMAP_THRESHOLD_"] == str(2**32)  # image: 5
    assert record["protocol"]["name"] == "pytorch-fid" and record["training"]["steps"] > 0
    assert record["training"]["precision_reason"].startswith("auto")  # DDIM's config says auto: the reason is recorded
    assert record["sampling_precision_reason"].startswith("auto") and "precision_probes" in man["hardware"]
    assert any(line.startswith("| DiLED") for line in (out / "tables/table6.md").read_text().splitlines())
    tex = (out / "tables/table6.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\textbf{" in tex and "not run" in tex
    for fig in ("figure3.png", "latent_projection.png"):
        assert (out / "figures" / fig).stat().st_size > 5000
    edits = pd.read_csv(out / "tables/editing.csv")
    assert set(edits["model"]) == {"DiffAE", "DiLED", "LDM"} and edits["success (judge says target)"].between(0, 1).all()
    assert (out / "figures/editing.png").stat().st_size > 3000
    probe = pd.read_csv(out / "tables/probe.csv")
    assert list(probe["model"]) == ["DDIM", "DiffAE", "DiLED", "LDM", "NVAE"] and probe["test_accuracy"].between(0, 1).all()
    cost = pd.read_csv(out / "tables/training_cost.csv")
    totals = cost[cost["stage"].str.startswith("total")]
    assert list(totals["model"]) == ["DDIM", "DiffAE", "DiffAE + FT", "DiLED", "LDM", "NVAE", "CM-CD", "GPT-2 (LM)", "Autoencoder (shared pre-training)",
                                     "DiLED", "LatentOps", "Optimus-DAAE", "DiLED", "ReLSO (AE)", "ReLSO-VAE"]
    assert list(totals["track"]) == ["image"] * 7 + ["text"] * 5 + ["protein"] * 3 and (totals["train wall (s)"] > 0).all()
    w = pd.read_csv(out / "tables/w_ablation.csv")
    assert list(w["w"]) == sorted(cfg["w_ablation"]["w"]) and (w["T"] == cfg["w_ablation"]["steps"]).all()
    assert w[["Gen FID", "Rec FID (random)", "Rec FID (inverted)", "Probe accuracy"]].notna().all().all()
    main = df[(df["model"] == "DiLED") & (df["T"] == cfg["w_ablation"]["steps"])]
    assert w.loc[w["w"] == cfg["models"]["diled"]["w"], "Gen FID"].item() == main["Gen FID"].item()  # the main run, reused
    assert (out / "figures/w_ablation.png").stat().st_size > 5000


@pytest.mark.smoke
def test_smoke_protein_track(smoke_runs):
    out = smoke_runs[0]
    cfg = load_config(ROOT / "config/smoke.yaml")["protein"]
    fit = pd.read_csv(out / "tables/protein_fitness.csv")
    assert set(fit["model"]) == {"DiLED", "ReLSO (AE)", "ReLSO-VAE", "oracle (ridge on one-hot residues)"}
    assert fit["test Spearman"].between(-1, 1).all()
    rec = pd.read_csv(out / "tables/protein_reconstruction.csv")
    assert set(rec["split"]) == {"valid", "test"} and rec["BLEU"].between(0, 1).all() and (rec["PPL"] >= 1).all()
    gen = pd.read_csv(out / "tables/protein_generation.csv")
    rows = gen[~gen["model"].str.startswith("reference")]
    assert list(rows["model"]) == ["DiLED", "ReLSO-VAE"] and (rows["samples"] == cfg["eval"]["num_samples"]).all()
    assert rows[["judge PPL", "diversity (plain)", "novelty (plain)", "oracle fitness (mean)"]].notna().all().all()
    opt = pd.read_csv(out / "tables/protein_optimisation.csv")
    algorithms = {"start", "gradient_ascent", "hill_climbing", "stochastic_hill_climbing", "mcmc", "mcmc_cycle", "mcmc_cycle_noP",
                  *[f"latentops_y{y:g}" for y in cfg["optimisation"]["latentops_targets"]]}
    assert set(opt["algorithm"]) == algorithms and len(opt) == 3 * len(algorithms)
    assert (out / "figures/figure6.png").stat().st_size > 10_000
    assert "sha256" in (out / "data/protein/gifford.card.md").read_text()
    for table in ("protein_fitness.tex", "protein_generation.md"):
        assert (out / "tables" / table).stat().st_size > 300


@pytest.mark.smoke
def test_report_renders_every_table_and_figure(smoke_runs):
    """`snakemake --report` (no target: `all` is the default) writes one self-contained HTML file."""
    workdir = smoke_runs[0].parent.parent
    res = snakemake(workdir, "--configfile=" + str(ROOT / "config/smoke.yaml"), "--report", "results/smoke/report.html")
    assert res.returncode == 0, res.stderr[-3000:]
    html = (smoke_runs[0] / "report.html").read_text()
    assert len(html) > 100_000
    for name in ("table6.csv", "figure3.png", "fid_settings.csv", "training_cost.csv", "probe.csv", "editing.png",
                 "w_ablation.png", "diled_grid.png", "mnist32.card.md", "figure6.png", "protein_generation.csv"):
        assert name in html, name


@pytest.mark.smoke
def test_rerun_of_every_diled_job_gives_identical_tables(smoke_runs):
    assert_identical_tables(*smoke_runs)


@pytest.mark.smoke
def test_data_preparation_again_gives_identical_files(smoke_runs, tmp_path):
    """Every track's prepared data (splits, the text pool, tokenizer ids, protein encodings) again from nothing, in
    a fresh directory: the files every model reads are byte-identical (the rerun above starts from the first run's)."""
    res = smoke_all(tmp_path, tmp_path / "features", "--until", "prepare_data", "--")
    assert res.returncode == 0, res.stderr[-3000:]
    files = sorted(p.relative_to(tmp_path / "results/smoke") for p in (tmp_path / "results/smoke/data").glob("*/*.npz"))
    assert [str(f) for f in files] == ["data/image/mnist32.npz", "data/protein/gifford.npz", "data/text/snippets.npz"]
    for f in files:
        assert (smoke_runs[0] / f).read_bytes() == (tmp_path / "results/smoke" / f).read_bytes(), f


@pytest.mark.smoke
@pytest.mark.slow
def test_two_fresh_smoke_runs_give_identical_tables(tmp_path, feature_cache, smoke_runs):
    """The whole DAG a second time from nothing (data preparation, every baseline, the judges): about 4.5 minutes
    with the module's warm feature cache, so outside the default test command; run with ``pytest -m slow``."""
    res = smoke_all(tmp_path, feature_cache)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_identical_tables(smoke_runs[0], tmp_path / "results" / "smoke")


@pytest.mark.smoke
def test_smoke_fid_settings_and_recon_columns(smoke_runs):
    out = smoke_runs[0]
    df = pd.read_csv(out / "tables/fid_settings.csv")
    assert list(df["setting"][:4]) == ["pytorch-fid", "pytorch-fid@16", "adm", "clean-fid"]
    factors = {g.removeprefix("one factor: ") for g in df["group"] if g != "preset"}
    assert factors == {"resize kernel", "reference set", "resolution", "sample count", "quantization"}
    assert df["FID"].notna().all() and (df["FID"] > 0).all()
    base = df.loc[df["setting"] == "pytorch-fid", "FID"].item()
    assert (df["Δ vs pytorch-fid"] - (df["FID"] - base)).abs().max() < 1e-2
    assert (out / "figures/fid_settings.png").stat().st_size > 5000
    t6 = pd.read_csv(out / "tables/table6.csv")
    t6 = t6[t6["status"] == "run"]
    for protocol in ("random", "inverted"):
        cells = t6[t6[f"Rec SSIM ({protocol})"].notna()]
        assert len(cells) >= len(t6) - 2  # DDIM has no random protocol, CM-CD no inverted one
        assert ((cells[f"Rec SSIM ({protocol})"] <= 1) & (cells[f"Rec LPIPS ({protocol})"] >= 0) & (cells[f"Rec MSE ({protocol})"] >= 0)).all()
        assert (cells[f"Rec SSIM ({protocol}) sem"] > 0).all()
    assert "Rec LPIPS (inverted)" in (out / "tables/table6.md").read_text()


@pytest.mark.smoke
def test_smoke_text_track(smoke_runs):
    out = smoke_runs[0]
    cfg = load_config(ROOT / "config/smoke.yaml")["text"]
    t1 = pd.read_csv(out / "tables/table1.csv")
    # GPT-2 once; the autoencoder once, without generation; DiLED and LatentOps at the ancestral chain (T) and each DDIM
    # step count; DAAE once
    ae = "Autoencoder (shared pre-training)"
    expected = [("GPT-2 (LM)", 1), (ae, None), ("DiLED", cfg["latent"]["T"]), ("DiLED", 5),
                ("LatentOps", cfg["models"]["latentops"]["latent_net"]["T"]), ("LatentOps", 5), ("Optimus-DAAE", 1)]
    assert [(m, None if pd.isna(t) else int(t)) for m, t in zip(t1["model"], t1["T"])] == expected
    gen = t1[t1["model"] != ae]
    assert gen["ppl"].gt(1).all() and gen["self_bleu"].between(0, 100).all() and gen["distinct_2"].between(0, 1).all()
    assert t1.loc[t1["model"] == ae, ["ppl", "edit_success"]].isna().all().all()  # no prior, no generation or editing
    latent = t1[~t1["model"].isin(["GPT-2 (LM)", ae])]
    assert latent[["rec_bleu", "edit_success", "no_edit_success", "active_units", "z_gain"]].notna().all().all()
    assert t1.loc[t1["model"] == ae, ["rec_bleu", "active_units", "z_gain"]].notna().all().all()
    assert t1.loc[t1["model"] == "GPT-2 (LM)", "rec_bleu"].isna().all()  # no encoder, no reconstruction
    card = (out / "data/text/snippets.card.md").read_text()
    assert "sha256" in card and f"train {cfg['data']['train_size']} " in card
    assert f"pool {cfg['data']['pool']['size']} " in card and "| kjv |" in card  # the pool's sources and licences
    for f in ("table1.md", "table1.tex", "text_editing.md", "text_cost.md", "text_examples.md"):
        assert (out / "tables" / f).stat().st_size > 200, f
    assert "judge-free editing" in (out / "tables/table1.md").read_text()
    assert (out / "figures/text_loss_curves.png").stat().st_size > 10_000
    record = json.loads((out / "metrics/text/diled.json").read_text())
    assert len(record["generation"][str(cfg["latent"]["T"])]["samples"]) == cfg["eval"]["num_samples"]


@pytest.mark.smoke
def test_training_state_survives_outside_outputs(smoke_runs):
    runs = list((smoke_runs[0] / "runs" / "image").iterdir())
    # DDIM, DiffAE (2 stages), DiffAE + FT, DiLED, LDM (2), CM-CD, one w variant
    assert len(runs) == 10 and all(list(r.glob("ckpt-*.pt")) for r in runs)
    assert len(list((smoke_runs[0] / "runs" / "protein").iterdir())) == 3
    assert len(list((smoke_runs[0] / "runs" / "text").iterdir())) == 8  # gpt2 (2), ae, diled, latentops (2), daae, the judges' LM


@pytest.mark.smoke
def test_editing_one_model_section_reruns_that_model_only(smoke_runs, tmp_path):
    """Run directories are keyed by each model's own config: a CM-CD change must not retrain the others."""
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    cmcd = load_config(ROOT / "config/smoke.yaml")["image"]["models"]["cmcd"]  # its smoke preset, resolved
    cfg["image"]["model_settings"] = {"cmcd": {**cmcd, "train": {**cmcd["train"], "lr": cmcd["train"]["lr"] * 2}}}
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))  # keys sorted: the order of a section's keys must not matter either
    res = snakemake(smoke_runs[0].parent.parent, "-n", "--configfile=" + str(changed), "--cores", "1", "all")
    assert res.returncode == 0, res.stderr[-2000:]
    planned = set(re.findall(r"^rule train:\n    input: [^\n]*\n    output: [^\n]*models/(image/\w+/\w+)\.pt", res.stdout, re.M))
    assert planned == {"image/cmcd/distill"}, res.stdout[-3000:]


@pytest.mark.smoke
def test_a_model_from_one_module_and_one_config_file_runs_through_the_smoke_dag(smoke_runs, tmp_path):
    """tests/toy_model holds a module and a config file, nothing else: named in model_dirs, the model trains, samples,
    is scored and gets its Table 6 row, while nothing already trained trains again."""
    toy = ROOT / "tests" / "toy_model"
    wd = tmp_path / "wd"
    shutil.copytree(smoke_runs[0].parent.parent, wd, symlinks=True)  # the first run's outputs and Snakemake's records
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump({"model_dirs": [str(toy / "models")]}))
    args = ["--configfile", str(ROOT / "config/smoke.yaml"), str(tmp_path / "toy.yaml"), "--cores", "2", "all"]
    env = {"PYTHONPATH": f"{toy}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "DILED_FEATURE_CACHE": str(wd / "features")}
    plan = snakemake(wd, "-n", *args, env=env)
    assert plan.returncode == 0, plan.stderr[-2000:]
    planned = set(re.findall(r"^rule train:\n    input: [^\n]*\n    output: [^\n]*models/(image/\w+/\w+)\.pt", plan.stdout, re.M))
    assert planned == {"image/toy/train"}, plan.stdout[-3000:]
    res = snakemake(wd, *args, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    t6 = pd.read_csv(wd / "results" / "smoke" / "tables" / "table6.csv")
    toy_rows = t6[t6["model"] == "Toy"]
    assert list(toy_rows["T"]) == [2, 5] and (toy_rows["status"] == "run").all()
    assert toy_rows[["Gen FID", "Rec FID (inverted)"]].gt(0).all().all() and toy_rows["Rec FID (random)"].isna().all()
    assert (wd / "results" / "smoke" / "figures" / "image" / "toy_grid.png").stat().st_size > 1000


def test_default_config_dry_run(tmp_path):
    res = snakemake(tmp_path, "-n", "--cores", "8", "all")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "models/image/diled/train.pt" in res.stdout and "table6" in res.stdout and "fid_settings" in res.stdout
    assert "models/text/diled/train.pt" in res.stdout and "tables/table1.csv" in res.stdout and "protein_tables" in res.stdout


@pytest.mark.parametrize("config", ["protein_paper.yaml", "protein_gfp.yaml", "gpu.yaml", "text_paper.yaml", "text_long.yaml", "fp32.yaml",
                                    "converged.yaml"])
def test_paper_configs_dry_run(tmp_path, config):
    res = snakemake(tmp_path, "-n", f"--configfile={ROOT / 'config' / config}", "--cores", "8", "all")
    assert res.returncode == 0, res.stderr[-2000:]
    if config.startswith("text"):  # text-only configurations
        assert "tables/table1.csv" in res.stdout and "table6" not in res.stdout
    elif config == "converged.yaml":  # the image track at plateau budgets
        assert "table6" in res.stdout and "protein_tables" not in res.stdout and "table1" not in res.stdout
    else:
        assert "protein_tables" in res.stdout and "table6" in res.stdout


def test_a_missing_protein_folder_is_named_and_the_image_track_runs_without_it(tmp_path):
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    cfg["protein"]["data"]["root"] = str(tmp_path / "nowhere")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(tmp_path, "-n", f"--configfile={tmp_path / 'c.yaml'}", "--cores", "1", "all")
    assert res.returncode != 0 and "nowhere does not exist" in res.stderr + res.stdout and "tracks=[image]" in res.stderr + res.stdout
    res = snakemake(tmp_path, "-n", f"--configfile={tmp_path / 'c.yaml'}", "--config", "tracks=[image]", "--cores", "1", "all")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "table6" in res.stdout and "protein_tables" not in res.stdout and "models/protein" not in res.stdout


def test_lsun_settings_config_refuses_until_filled_in(tmp_path):
    res = snakemake(tmp_path, "-n", "--configfile=" + str(ROOT / "config/lsun_fid_settings.yaml"), "--cores", "1", "fid_settings")
    assert res.returncode != 0 and "does not exist" in res.stderr + res.stdout


def _bad_config(tmp_path: Path, **changes) -> Path:
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("changes,message", [
    ({"device": "tpu"}, "device"),
    ({"image__eval__sampling_steps": [5, 5000]}, "exceed the number of training timesteps"),
    ({"image__eval__num_samples": 1000}, "exceeds data.reference_size"),
    ({"image__model_settings__diled__w": 3.0}, "w"),
    ({"image__model_settings__ddim__train__steps": 0}, "steps"),
    ({"image__eval__fid__protocol": "torchmetrics"}, "protocol"),
    ({"image__fid_settings__adm_reference": "config/smoke.yaml"}, "adm_reference_sha256 is not"),
    ({"image__fid_settings__images": "no/such/samples.npz"}, "fid_settings.images: no/such/samples.npz does not exist"),
    ({"image__fid_settings__model": "cmcdx"}, "fid_settings.model 'cmcdx' is not a generating image model"),
    ({"image__model_settings__cmcd__steps": [1, 2, 3]}, "has only 1 intermediate_ts below it"),
    ({"image__model_settings__cmcd__intermediate_ts": [150, 350]}, "distinct and descending"),
    ({"image__w_ablation__steps": 7}, "must be one of eval.sampling_steps"),
    ({"image__w_ablation__w": [0.5, 1.5]}, "must include models.diled.w"),
    ({"image__model_settings__ldm__perceptual": "resnet"}, "perceptual"),
    ({"image__model_settings__vae": {"train": {"steps": 1}}}, "no registered model ['vae']"),
    ({"image__net__channels": 3}, "mnist32 holds 1-channel 32 px images"),
])
def test_config_errors_fail_early_and_clearly(tmp_path, changes, message):
    res = snakemake(tmp_path, "--configfile=" + str(_bad_config(tmp_path, **changes)), "--cores", "1", "all")
    assert res.returncode != 0
    assert message in res.stderr + res.stdout
    assert not (tmp_path / "results").exists()


def test_cli_data_and_errors(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "diled.cli", "data", str(tmp_path / "d.npz"), "--reference-size", "100"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["split"]["reference"] == 100
    bad = subprocess.run([sys.executable, "-m", "diled.cli", "data", str(tmp_path / "e.npz"), "--reference-size", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--reference-size: must be a positive integer, got 0" in bad.stderr and not (tmp_path / "e.npz").exists()
