"""The fixed generated set of the FID-settings comparison: float32 outputs in [-1, 1], not yet quantized."""
import torch

from diled import stages
from diled.diffusion import derive_seed
from diled.fileio import atomic_path
from diled.snakemake_job import Job

job = Job(snakemake)
model, ckpt = stages.load_model(snakemake.input.model, job.device)
n, steps, bs = snakemake.params.num_samples, snakemake.params.steps, snakemake.params.batch_size
seeds = [derive_seed(job.config["seed"], "fid-settings", i) for i in range(n)]
with torch.no_grad():
    x = torch.cat([model.generate(seeds[i : i + bs], steps).float().cpu() for i in range(0, n, bs)])
with atomic_path(snakemake.output[0]) as tmp:
    torch.save(x, tmp)
job.log(f"{ckpt.get('info', {}).get('variant', ckpt['name'])}: {n} images at T={steps} in {job.wall_s:.1f} s (range {x.min():.3f}..{x.max():.3f})")
