"""Inception statistics of the held-out reference set, tagged with the protocol digest."""
from diled.data import mnist
from diled.jobs import Job
from diled.metrics import fid

job = Job(snakemake)
protocol = fid.get_protocol(snakemake.params.protocol)
reference, _ = mnist.load(snakemake.input.data, "reference")
net = fid.load_inception(job.device)
stats = fid.statistics(reference, net, protocol, snakemake.params.batch_size, desc="reference")
stats.save(snakemake.output[0])
job.log(f"reference statistics of {stats.count} images under protocol {protocol.name} ({protocol.digest}) in {job.wall_s:.1f} s")
