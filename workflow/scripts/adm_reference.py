"""A guided-diffusion-style reference batch (arr_0, mu, sigma) of the held-out set under the adm pipeline."""
from diled import codecs
from diled.metrics import fid
from diled.snakemake_job import Job

job = Job(snakemake)
images = codecs.for_track("image", job.view).reference_images(snakemake.input.data, "held-out")
stats = fid.statistics(images, fid.ADM, job.device, snakemake.params.batch_size, desc="adm reference", role="reference")
sha = fid.save_reference_batch(images, stats, snakemake.output[0])
job.log(f"adm reference batch of {stats.count} images: sha256 {sha} ({job.wall_s:.1f} s)")
