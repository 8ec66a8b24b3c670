"""Inception statistics of the held-out reference set, tagged with the protocol digest (features cached)."""
from diled import codecs
from diled.metrics import fid
from diled.snakemake_job import Job

job = Job(snakemake)
protocol = fid.get_protocol(snakemake.params.protocol)
images = codecs.for_track("image", job.view).reference_images(snakemake.input.data, "held-out")
stats = fid.statistics(images, protocol, job.device, snakemake.params.batch_size, desc="reference", role="reference",
                       keep_features=True)  # the rows: KID and bootstrap intervals of every evaluation need them
stats.save(snakemake.output[0])
job.log(f"reference statistics of {stats.count} images under protocol {protocol.label} in {job.wall_s:.1f} s")
