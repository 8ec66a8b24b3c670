"""One PNG per model: samples, reconstructions and interpolations at every T."""
import numpy as np

from diled.report import figures
from diled.snakemake_job import Job

job = Job(snakemake)
sets = {int(t): dict(np.load(p, allow_pickle=False)) for t, p in zip(snakemake.params.steps, snakemake.input)}
from diled.registry import resolve  # noqa: E402

figures.sample_grid(sets, resolve("image", snakemake.wildcards.model, job.view).spec.display, snakemake.params.grid_count, snakemake.output[0])
job.log(f"wrote {snakemake.output[0]}")
