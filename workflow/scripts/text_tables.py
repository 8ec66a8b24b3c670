"""Table 1 (text), the editing table, the text training-cost table, the loss-curve figure and examples (diled.report.text)."""
import json
from pathlib import Path

import yaml

from diled import codecs
from diled.report import text
from diled.snakemake_job import Job

job = Job(snakemake, track="text")
records = [json.loads(Path(p).read_text()) for p in snakemake.input.records]
manifests = [json.loads(Path(p).read_text()) for p in snakemake.input.manifests]
codec = codecs.for_track("text", job.view)
n_train = len(codec.load(snakemake.input.data, "train")["labels"])
n_pool = len(codec.load(snakemake.input.data, "pool").get("labels", []))
shown = text.write_all(records, json.loads(Path(snakemake.input.judges).read_text()), manifests, job.view, n_train, n_pool,
                       yaml.safe_load(Path(snakemake.input.reference_numbers).read_text()), dict(snakemake.output.items()))
job.log("\n" + shown.to_string(index=False))
