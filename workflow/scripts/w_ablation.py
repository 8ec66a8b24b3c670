"""The w ablation: DiLED fine-tuned under each w, scored at one T, plus the linear probe on each encoder."""
import json
from pathlib import Path

import numpy as np

from diled import probe
from diled.report import figures, tables
from diled.snakemake_job import Job

job = Job(snakemake)
records = tables.load_records(snakemake.input.metrics)
cfg = job.view
ws = [json.loads(Path(p).read_text())["training"]["overrides"].get("models.diled.w", cfg["models"]["diled"]["w"])
      for p in snakemake.input.models]
accs = []
for npz in snakemake.input.probe:
    with np.load(npz) as f:
        accs.append(probe.linear_probe(f["train_z"], f["train_y"], f["ref_z"], f["ref_y"], job.config["seed"])["test_accuracy"])
df = tables.w_ablation(records, accs, ws)
first = records[0]
notes = [
    f"Each w fine-tunes DiLED from the same trained DiffAE for {cfg['models']['diled']['train']['steps']} steps with the same "
    "seed, batches and noise; only the loss weight w * L_latent + (2 - w) * L_decoder differs. The configured "
    f"w = {cfg['models']['diled']['w']:g} row is the main DiLED run of Table 6.",
    f"FID: {first['counts']['gen']} images per set vs {first['reference_count']} held-out reference digits, protocol "
    f"`{first['protocol']['name']}` (digest `{first['protocol']['digest']}`), T = {first['steps']} DDIM steps.",
    "Probe accuracy: the linear probe of tables/probe.md (same split and classifier) on each w's standardized encoder mean.",
]
tables.write_table(df, title="DiLED's w: generation, reconstruction, interpolation and representation", notes=notes,
                   csv=snakemake.output.csv, md=snakemake.output.md)
figures.w_ablation_figure(df, snakemake.output.png)
job.log("\n" + df.to_string(index=False))
