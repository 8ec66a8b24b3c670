"""Generate, reconstruct and interpolate through the shared capability interface at one step count."""
import numpy as np

from diled import codecs, pipeline
from diled.files import atomic_path
from diled.jobs import Job
from diled.manifest import write_json
from diled.modalities.image import evaluation_sets

job = Job(snakemake)
steps, p = int(snakemake.wildcards.steps), snakemake.params
model, ckpt = pipeline.load_model(snakemake.input.model, job.device)
reference, _ = codecs.for_track(job.track, job.view).load(snakemake.input.data, "reference")
sets = evaluation_sets(model, reference, steps, p.num_samples, p.alphas, job.config["seed"], p.batch_size,
                       desc=f"{snakemake.wildcards.model}/T{steps}")
with atomic_path(snakemake.output.sets) as tmp:
    np.savez(tmp, **sets)
job.log(f"{snakemake.wildcards.model} T={steps}: {len(sets['gen'])} images per set in {job.wall_s:.1f} s")
write_json(job.manifest(model=snakemake.wildcards.model, steps=steps, training=ckpt["info"], sets=sorted(sets)),
           snakemake.output.manifest)
