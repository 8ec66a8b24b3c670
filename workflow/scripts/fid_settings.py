"""The FID-settings table (CSV, Markdown) and bar chart from the per-setting records."""
import os

from diled.metrics import settings
from diled.report import figures, tables
from diled.snakemake_job import Job

job = Job(snakemake)
rows = tables.load_records(snakemake.input)
for r in rows:
    r["_path"] = os.path.relpath(r["_path"], job.config["outdir"])
df = settings.table(rows)
base = next(r for r in rows if r["key"] == "base")
cfg = job.view["fid_settings"]
source = cfg["images"] or f"{base['counts']['generated']} samples of `{cfg['model']}` at T={cfg['steps']} (float outputs, quantized per protocol)"
notes = [
    f"Generated set: {source}; content sha256 of the base row's uint8 images `{base['generated']['content_sha256'][:16]}`.",
    f"Reference: {base['counts']['reference']} held-out images on the fly (train-split row: an equal-size seeded training subset); "
    "adm reads precomputed mu/sigma of the same held-out images from a guided-diffusion-style .npz "
    f"(sha256 `{next(r for r in rows if r['key'] == 'adm')['protocol_record']['reference_sha256']}`).",
    f"Resolution row: {cfg['downscale']} px plays the role of the rebuttal's 128 px (native here: 32 px).",
    "Every row uses the same Inception weights (one tensor digest) in strict FP32; `protocol` is name:digest of the full record "
    "in the row's JSON (`record`), with the job manifest (config hash, commit, versions, hardware, seed, wall time).",
    "Small-sample FID is biased upward and noisy; the table shows how far each setting alone moves one score.",
]
tables.write_table(df, title="FID settings: one fixed set of generated images, scored under each evaluation setting", notes=notes,
                   csv=snakemake.output.csv, md=snakemake.output.md, shown=df.drop(columns=["record"]))
figures.fid_settings_bars(df, snakemake.output.png, f"FID of one fixed set under each setting ({base['counts']['generated']} vs {base['counts']['reference']} images)")
job.log("\n" + df.drop(columns=["record"]).to_string(index=False))
