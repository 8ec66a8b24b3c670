"""FID of every image set of one (model, T) against the reference statistics, and reconstruction metrics."""
import json

import numpy as np

from diled.jobs import Job
from diled.manifest import write_json
from diled.metrics import fid, recon

job = Job(snakemake)
protocol = fid.get_protocol(snakemake.params.protocol)
reference, protocol = fid.load_reference(snakemake.input.reference, protocol)
tag = f"{snakemake.wildcards.model} T={snakemake.wildcards.steps}"
scores, counts = {}, {}
with np.load(snakemake.input.sets) as sets:
    for key in sorted(k for k in sets.files if k == "gen" or k == "rec" or k.startswith("interp_")):
        stats = fid.statistics(sets[key], protocol, job.device, snakemake.params.batch_size, desc=key)
        scores[key], counts[key] = fid.frechet_distance(stats, reference), stats.count
        job.log(f"{tag} {key}: FID {scores[key]:.3f} ({stats.count} images)")
    rec_metrics = recon.reconstruction_metrics(sets["rec"], sets["source_a"], recon.load_lpips("alex", job.device))
job.log(f"{tag} reconstruction: " + ", ".join(f"{k} {v:.4f}" for k, v in rec_metrics.items()))
sample_manifest = json.load(open(snakemake.input.sample_manifest))
write_json({
    "track": "image", "model": snakemake.wildcards.model, "steps": int(snakemake.wildcards.steps), "fid": scores, "counts": counts,
    "recon": rec_metrics, "recon_definition": "LPIPS v0.1 AlexNet on [-1, 1] (spatial mean), MSE/PSNR/SSIM on [0, 1]; "
    "uint8 reconstructions vs their uint8 sources, mean over images",
    "reference_count": reference.count, "protocol": {**protocol.record(), "digest": protocol.digest},
    "sample_manifest": snakemake.input.sample_manifest, "training": sample_manifest["training"],
    "manifest": job.manifest(),
}, snakemake.output[0])
