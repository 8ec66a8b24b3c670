"""Training-cost table: time per step and wall time of every training stage, and per model, measured in this run."""
import json
from pathlib import Path

from diled import tables
from diled.files import atomic_path
from diled.jobs import Job

job = Job(snakemake)
manifests = {f"{Path(p).parent.name}/{Path(p).stem}": json.loads(Path(p).read_text()) for p in snakemake.input}
df = tables.training_cost(manifests)
with atomic_path(snakemake.output.csv) as tmp:
    df.to_csv(tmp, index=False)
notes = [
    "Measured by the training jobs of this run (their manifests: models/<track>/<model>/<stage>.json); wall time counts only the steps run "
    "in the last invocation (a resumed run reports its remainder; `resumed from step` says so).",
    "Totals: a model's stages, including the DiffAE stages DiLED is fine-tuned from.",
    "Jobs ran side by side (Snakemake `--cores`), so per-step times include contention with concurrent jobs.",
]
text = "# Training cost (embedded default)\n\n" + df.drop(columns=["file"]).astype(object).where(df.drop(columns=["file"]).notna(), "").to_markdown(index=False) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
with atomic_path(snakemake.output.md) as tmp:
    tmp.write_text(text)
job.log("\n" + df.to_string(index=False))
