"""Every protein metric of one model: fitness prediction, reconstruction, generation, latent optimisation."""
import numpy as np

from diled import codecs, stages
from diled.fileio import atomic_path
from diled.manifest import write_json
from diled.modalities.protein.evaluation import Judges, evaluate_model
from diled.snakemake_job import Job

job = Job(snakemake, track="protein")
model, ckpt = stages.load_model(snakemake.input.model, job.device)
codec = codecs.for_track("protein", job.view)
generated = None
if hasattr(snakemake.input, "generated"):
    with np.load(snakemake.input.generated) as f:
        generated = f["gen"]
record, arrays = evaluate_model(model.cpu(), codec, snakemake.input.data, Judges(snakemake.input.judges, job.view), generated,
                                job.view, job.config["seed"], snakemake.threads, progress=job.log)
with atomic_path(snakemake.output.arrays) as tmp:
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
write_json({"track": "protein", "model": snakemake.wildcards.model, **record, "training": ckpt["info"], "manifest": job.manifest()},
           snakemake.output.record)
job.log(f"{snakemake.wildcards.model}: evaluated in {job.wall_s:.1f} s")
