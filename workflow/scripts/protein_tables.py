"""The protein tables (fitness prediction, reconstruction, generation, optimisation) and Figure 6 (diled.report.protein)."""
import json
from pathlib import Path

from diled.report import protein
from diled.snakemake_job import Job

job = Job(snakemake, track="protein")
records = [json.loads(Path(p).read_text()) for p in snakemake.input.records]
judges = json.loads(Path(snakemake.input.judges).read_text())
gen = protein.write_all(records, judges, job.view, list(snakemake.input.arrays), dict(snakemake.output.items()))
job.log("\n" + gen.round(3).to_string(index=False))
