"""Generate (and for images reconstruct and interpolate) through the shared capability interface at one step count."""
import numpy as np
import torch

from diled import codecs, stages
from diled.fileio import atomic_path
from diled.hardware import choose_precision
from diled.manifest import write_json
from diled.snakemake_job import Job
from diled.train import PRECISIONS

job = Job(snakemake)
steps, p = int(snakemake.wildcards.steps), snakemake.params
model, ckpt = stages.load_model(snakemake.input.model, job.device)
desc = f"{snakemake.wildcards.track}/{snakemake.wildcards.model}/T{steps}"
sharded = "shard" in snakemake.wildcards.keys()  # rule sample_shard: rows shard*size .. of every set
shard = int(snakemake.wildcards.shard) if sharded else 0
rows = (shard * p.shard_size, min((shard + 1) * p.shard_size, p.num_samples)) if sharded else (0, p.num_samples)
if sharded:
    desc += f"/shard{shard}"
choice = choose_precision(job.view["eval"].get("precision", "fp32"), job.device, job.track, "sample")  # sampling may autocast; FID never does
precision = choice["precision"]
autocast = torch.autocast(job.device.type, dtype=PRECISIONS[precision], enabled=PRECISIONS[precision] is not None)
if job.track == "image":
    from diled.latent_health import model_diagnostics
    from diled.modalities.image.model import evaluation_sets

    codec = codecs.for_track("image", job.view)
    reference, _ = codec.load(snakemake.input.data, "reference")
    with autocast:
        sets = evaluation_sets(model, reference, steps, p.num_samples, p.alphas, job.config["seed"], p.batch_size, desc=desc,
                               interp_protocol=p.interp_protocol, lo=rows[0], hi=rows[1])
    # the diagnostics of the evaluated sources: once per (model, T), with the first shard
    health = model_diagnostics(model, codec.to_model(sets["source_a"]), job.config["seed"]) if shard == 0 else None
else:
    from diled.modalities.protein.model import generate_tokens

    with autocast:
        sets = {"gen": generate_tokens(model, p.num_samples, steps, job.config["seed"], p.batch_size)}
    health = None
with atomic_path(snakemake.output.sets) as tmp:
    with open(tmp, "wb") as f:
        np.savez(f, **sets)
job.log(f"{desc}: {len(sets['gen'])} samples per set in {job.wall_s:.1f} s")
write_json(job.manifest(model=snakemake.wildcards.model, steps=steps, training=ckpt["info"], sets=sorted(sets), latent_health=health,
                        rows=list(rows), precision=precision, precision_reason=choice["reason"]),
           snakemake.output.manifest)
