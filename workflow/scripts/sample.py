"""Generate, reconstruct and interpolate through the shared capability interface at one step count."""
import numpy as np

from diled import pipeline
from diled.data import mnist
from diled.files import atomic_path
from diled.jobs import Job
from diled.manifest import write_json

job = Job(snakemake)
steps = int(snakemake.wildcards.steps)
model, ckpt = pipeline.load_model(snakemake.input.model, job.device)
reference, _ = mnist.load(snakemake.input.data, "reference")
sets = pipeline.evaluation_sets(model, reference, steps, snakemake.params.num_samples, snakemake.params.alphas,
                                job.config["seed"], snakemake.params.batch_size, desc=f"{ckpt['name']}/T{steps}")
with atomic_path(snakemake.output.sets) as tmp:
    np.savez(tmp, **sets)
job.log(f"{ckpt['name']} T={steps}: {len(sets['gen'])} images per set in {job.wall_s:.1f} s")
write_json(job.manifest(model=ckpt["name"], steps=steps, training=ckpt["info"], sets=sorted(sets)), snakemake.output.manifest)
