"""Generate (and for images reconstruct and interpolate) through the shared capability interface at one step count."""
import numpy as np

from diled import codecs, pipeline
from diled.files import atomic_path
from diled.jobs import Job
from diled.manifest import write_json

job = Job(snakemake)
steps, p = int(snakemake.wildcards.steps), snakemake.params
model, ckpt = pipeline.load_model(snakemake.input.model, job.device)
desc = f"{snakemake.wildcards.track}/{snakemake.wildcards.model}/T{steps}"
if job.track == "image":
    from diled.modalities.image import evaluation_sets

    reference, _ = codecs.for_track("image", job.view).load(snakemake.input.data, "reference")
    from diled.latent_health import model_diagnostics

    sets = evaluation_sets(model, reference, steps, p.num_samples, p.alphas, job.config["seed"], p.batch_size, desc=desc,
                           interp_protocol=p.interp_protocol)
    health = model_diagnostics(model, codecs.ImageCodec.to_model(sets["source_a"]), job.config["seed"])
else:
    from diled.modalities.protein import generate_tokens

    sets = {"gen": generate_tokens(model, p.num_samples, steps, job.config["seed"], p.batch_size)}
    health = None
with atomic_path(snakemake.output.sets) as tmp:
    with open(tmp, "wb") as f:
        np.savez(f, **sets)
job.log(f"{desc}: {len(sets['gen'])} samples per set in {job.wall_s:.1f} s")
write_json(job.manifest(model=snakemake.wildcards.model, steps=steps, training=ckpt["info"], sets=sorted(sets), latent_health=health),
           snakemake.output.manifest)
