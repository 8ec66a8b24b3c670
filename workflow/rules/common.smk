# Helpers shared by the rule modules. What runs comes from the model registry (diled/registry.py),
# the config's cross-field checks from diled/config/. Neither imports torch, so parsing the DAG is fast.
import os
import sys

from diled import config as cfg
from diled import registry

# Schema and cross-field checks before any job, one short line per problem. The device is looked for in
# the Snakefile's onstart handler: only when jobs are about to run on this machine (not in a dry run, not
# on a cluster's head node, which need not have the GPU its jobs ask for).
cfg.check(config, os.path.join(workflow.current_basedir, "..", "schemas", "config.schema.yaml"))
if workflow.overwrite_configfiles and workflow.is_main_process:
    # --configfile files merge over config/config.yaml: say which values are not the user's own
    _mine = cfg.user_config(
        workflow.overwrite_configfiles, workflow.config_settings.overwrite_config
    )
    for _line in cfg.defaulted(config, _mine):
        print(f"config: {_line}", file=sys.stderr)

OUT = config["outdir"]
TRACKS = cfg.tracks(config)
# Every section's view: the rules of a track that does not run are still parsed (and never targeted).
VIEWS = {t: cfg.track_view(config, t) for t in registry.TRACKS if t in config}
IMAGE = VIEWS["image"]


def out(*parts):
    """Path under the configured output directory."""
    return os.path.join(OUT, *parts)


def models(track, capability=None):
    """Registered models of a track that its config section runs (registry order: the tables' row order)."""
    return registry.names(track, capability, VIEWS[track])


def variants(track):
    """Ablation variants the track config asks for (e.g. DiLED at other w), beyond the main models
    (the image track's only when its analyses include the w ablation)."""
    if track == "image" and "w_ablation" not in cfg.analyses(IMAGE):
        return []
    return [v.name for v in registry.variants(track, VIEWS[track])]


def trained(track):
    return models(track) + variants(track)


def spec_of(track, name):
    return registry.resolve(track, name, VIEWS[track]).spec


def steps_of(track, name):
    """The step counts a model (or variant) is evaluated at."""
    view = VIEWS[track]
    if name in variants(track):
        return [int(view["w_ablation"]["steps"])]
    return spec_of(track, name).steps(view)


def dataset_file(track, suffix=".npz"):
    return out("data", track, VIEWS[track]["data"]["dataset"] + suffix)


def stage_file(track, name, stage, ext="pt"):
    return out("models", track, name, f"{stage}.{ext}")


def model_file(track, name):
    """The trained model: the output of its last stage."""
    return stage_file(track, name, spec_of(track, name).final_stage.name)


def run_dir(track, name, stage):
    """Resumable training state, never a declared output: keyed by the config that shapes this model's
    training (diled.config.stage_config), so editing one model's section reruns it and its dependants only.
    """
    return out("runs", track, f"{name}-{stage}-{cfg.run_key(VIEWS[track], track, name, stage)}")


# what both sampling rules (sample, sample_shard) pass their script
SAMPLE_PARAMS = dict(
    num_samples=lambda wc: VIEWS[wc.track]["eval"]["num_samples"],
    shard_size=lambda wc: VIEWS[wc.track]["eval"].get("shard_size"),
    alphas=lambda wc: VIEWS[wc.track]["eval"].get("interp_alphas", []),
    interp_protocol=lambda wc: VIEWS[wc.track]["eval"].get("interp_protocol", "random"),
    batch_size=lambda wc: VIEWS[wc.track]["eval"]["batch_size"],
)


def job_resources(rule):
    """What a job of ``rule`` asks its scheduler for: ``resources.default`` updated by ``resources.<rule>``.

    ``gpu`` becomes ``--gpus`` under the SLURM executor (``mem_mb`` ``--mem``, ``runtime`` minutes ``-t``,
    ``cpus_per_gpu`` ``--cpus-per-gpu``); locally, ``--resources gpu=N`` (profiles/default) caps how many
    GPU jobs run at once. Site keys (partition, account) belong in the profile, not here.
    """
    res = config.get("resources", {})
    return {**res.get("default", {}), **res.get(rule, {})}


def job_priority(bonus=0):
    """Which ready job Snakemake starts first, from the same table as the CPU share (``niceness``): 2 (19 - niceness)
    + ``bonus``. Training gets the bonus, so what is fine-tuned from the DiffAE autoencoder starts the moment it ends.
    """

    def priority(wildcards):
        nice = cfg.niceness(
            config.get("niceness"),
            wildcards.get("track", "image"),
            wildcards.get("model"),
            wildcards.get("stage"),
        )
        return 2 * (19 - nice) + bonus

    return priority


# ----------------------------------------------------------------------------- input functions


def train_inputs(wc):
    """Data; the stage this one starts from; pretrained weights where the stage reads them."""
    stage = spec_of(wc.track, wc.model).stage(wc.stage)
    inputs = {"data": dataset_file(wc.track)}
    if stage.starts_from:
        model, _, from_stage = stage.starts_from.partition("/")
        inputs["init"] = stage_file(wc.track, model, from_stage)
    if stage.needs_weights:
        inputs["weights"] = out("weights/verified.json")
    return inputs


def protein_eval_inputs(wc):
    """A protein model's evaluation reads the model, the data, the judges and its generated set (if it generates)."""
    inputs = {
        "model": model_file("protein", wc.model),
        "data": dataset_file("protein"),
        "judges": out("protein/judges.pt"),
    }
    steps = steps_of("protein", wc.model)
    if spec_of("protein", wc.model).can("generate") and steps:
        inputs["generated"] = out("samples", "protein", wc.model, f"T{steps[0]}.npz")
    return inputs


def sample_inputs(wc):
    return {"model": model_file(wc.track, wc.model), "data": dataset_file(wc.track)}


def n_shards(track="image"):
    """How many sampling jobs share a model's evaluation sets (``eval.shard_size``; unset: one)."""
    ev = VIEWS[track]["eval"]
    size = ev.get("shard_size")
    return 1 if not size else -(-ev["num_samples"] // size)


def sample_sets(model, steps, ext="npz"):
    """A (model, T)'s sampled sets: one file, or one per shard (rows k*shard_size.. of every set)."""
    if n_shards() == 1:
        return [out("samples", "image", model, f"T{steps}.{ext}")]
    return [
        out("samples", "image", model, f"T{steps}", f"shard{k}.{ext}") for k in range(n_shards())
    ]


def digit_judge():
    """The digit judge's file where the image dataset has classes (rule image_judge), else nothing."""
    return {"judge": out("judges/image/digits.npz")} if cfg.image_labelled(IMAGE) else {}


def evaluate_image_inputs(wc):
    return {
        "sets": sample_sets(wc.model, wc.steps),
        "sample_manifest": sample_sets(wc.model, wc.steps, "json")[0],
        "data": dataset_file("image"),
        "reference": out("fid/reference.npz"),
        "weights": out("weights/verified.json"),
        **digit_judge(),
    }


def grid_inputs(wc):
    return [sample_sets(wc.model, s)[0] for s in steps_of("image", wc.model)]


def metric_files(track, names):
    return [out("metrics", track, m, f"T{s}.json") for m in names for s in steps_of(track, m)]


def training_manifests(track):
    """Every training stage's manifest: the models' lineages (each stage once) and the variants."""
    seen = []
    for spec in registry.models(track, config=VIEWS[track]):
        seen += [p for p in registry.lineage(spec) if p not in seen]
    files = [stage_file(track, m, s, "json") for m, s in seen]
    return files + [
        stage_file(track, v, spec_of(track, v).final_stage.name, "json") for v in variants(track)
    ]


def settings_keys():
    from diled.metrics.settings import settings

    fs = IMAGE["fid_settings"]
    return [s.key for s in settings(fs["num_samples"], fs["downscale"])]


def settings_generated(wildcards=None):
    """The fixed generated set: a user-given one (paper config) or samples of the configured model."""
    return IMAGE["fid_settings"]["images"] or out("fid_settings/generated.pt")


def adm_reference_file(wildcards=None):
    """Precomputed reference statistics for the adm preset: a given .npz or one built from the reference set."""
    return IMAGE["fid_settings"]["adm_reference"] or out("fid_settings/adm_reference.npz")


def setting_after(wildcards):
    """Rows that reuse another row's cached features wait for it (no duplicate Inception passes)."""
    from diled.metrics.settings import settings

    fs = IMAGE["fid_settings"]
    rows = {s.key: s for s in settings(fs["num_samples"], fs["downscale"])}
    after = rows[wildcards.setting].after
    return [out(f"fid_settings/rows/{after}.json")] if after else []


def w_models():
    """DiLED under each w of the ablation (the configured w is the main run)."""
    return list(registry.get("image", "diled").variants(IMAGE))


def health_metric_files():
    """One metric record per image model and w variant, at the w ablation's T (a model without that T: its last)."""
    t = int(IMAGE["w_ablation"]["steps"])
    files = []
    ablation = w_models() if "w_ablation" in cfg.analyses(IMAGE) else []
    for name in models("image", "reconstruct") + [v for v in ablation if v not in models("image")]:
        steps = steps_of("image", name)
        files.append(out("metrics", "image", name, f"T{t if t in steps else steps[-1]}.json"))
    return files


def all_targets():
    """What `all` builds: each configured track's tables, figures and dataset card, and the training-cost table."""
    targets = [out("tables/training_cost.md")]
    if "image" in TRACKS:
        targets += [out(f"tables/{t}.{e}") for t in ("table6",) for e in ("csv", "md", "tex")]
        files = {
            "figure3": ["figures/figure3.png"],
            "probe": ["tables/probe.md", "figures/latent_projection.png"],
            "editing": ["tables/editing.md", "figures/editing.png"],
            "w_ablation": ["tables/w_ablation.md", "figures/w_ablation.png"],
            "latent_health": ["tables/latent_health.md"],
            "fid_settings": [
                "tables/fid_settings.csv",
                "tables/fid_settings.md",
                "figures/fid_settings.png",
            ],
        }
        targets += [out(f) for a in cfg.analyses(IMAGE) for f in files[a]]
        targets += [out("figures", "image", f"{m}_grid.png") for m in models("image", "generate")]
    if "protein" in TRACKS:
        targets += [
            out(f"tables/protein_{t}.{e}")
            for t in ("fitness", "reconstruction", "generation", "optimisation")
            for e in ("csv", "md", "tex")
        ]
        targets.append(out("figures/figure6.png"))
    if "text" in TRACKS:
        targets += [out(f"tables/table1.{e}") for e in ("csv", "md", "tex")]
        targets += [
            out(f)
            for f in (
                "tables/text_editing.md",
                "tables/text_cost.md",
                "tables/text_examples.md",
                "figures/text_loss_curves.png",
            )
        ]
    return targets + [dataset_file(t, ".card.md") for t in TRACKS]
