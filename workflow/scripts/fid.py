"""FID of every image set of one (model, T) against the reference statistics."""
import dataclasses
import json

import numpy as np

from diled.jobs import Job
from diled.manifest import write_json
from diled.metrics import fid

job = Job(snakemake)
protocol = fid.get_protocol(snakemake.params.protocol)
reference = fid.Statistics.load(snakemake.input.reference)
net = fid.load_inception(job.device)
scores, counts = {}, {}
with np.load(snakemake.input.sets) as sets:
    for key in sorted(k for k in sets.files if k == "gen" or k == "rec" or k.startswith("interp_")):
        stats = fid.statistics(sets[key], net, protocol, snakemake.params.batch_size, desc=key)
        scores[key], counts[key] = fid.frechet_distance(stats, reference), stats.count
        job.log(f"{snakemake.wildcards.model} T={snakemake.wildcards.steps} {key}: FID {scores[key]:.3f} ({stats.count} images)")
sample_manifest = json.load(open(snakemake.input.sample_manifest))
write_json({
    "model": snakemake.wildcards.model, "steps": int(snakemake.wildcards.steps), "fid": scores, "counts": counts,
    "reference_count": reference.count, "protocol": {**dataclasses.asdict(protocol), "digest": protocol.digest},
    "sample_manifest": snakemake.input.sample_manifest, "training": sample_manifest["training"],
    "manifest": job.manifest(),
}, snakemake.output[0])
