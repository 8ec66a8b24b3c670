"""Training-cost table: time per step and wall time of every training stage, and per model, measured in this run."""
from diled import convergence
from diled.report import figures, tables
from diled.snakemake_job import Job

job = Job(snakemake)
manifests = tables.load_stage_manifests(snakemake.input.manifests)
df = tables.training_cost(manifests)
notes = [
    "Measured by the training jobs (their manifests: models/<track>/<model>/<stage>.json); wall time covers every step of the run, "
    "summed over resumed invocations from the time each checkpoint recorded (`resumed from step` says where the last one began; "
    "steps lost to an interruption after the last checkpoint are not counted).",
    "Totals: a model's stages, including the DiffAE stages DiLED is fine-tuned from.",
    "Jobs ran side by side (Snakemake `--cores`), so per-step times include contention with concurrent jobs.",
    *tables.auto_precision_note(m["training"].get("precision_reason") for m in manifests.values()),
]
shown = df.drop(columns=["file"]).astype(object)
tables.write_table(df, title="Training cost", notes=notes, csv=snakemake.output.csv, md=snakemake.output.md,
                   shown=shown.where(shown.notna(), ""))
curves = {}
for key, m in manifests.items():
    log = convergence.read_log(m["training"]["run_dir"]) if not key.startswith("text/") and m["training"].get("run_dir") else None
    if log is not None:
        flagged = df.loc[df["file"] == key, "still improving"].any()
        curves[key + (" (still improving)" if flagged else "")] = log
figures.loss_curves(curves, snakemake.output.curves, "Training losses of the image and protein stages")
job.log("\n" + df.to_string(index=False))
