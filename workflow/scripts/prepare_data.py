"""Prepare the embedded MNIST-32 dataset and its card."""
from diled.data import mnist
from diled.jobs import Job

job = Job(snakemake)
card = mnist.prepare(snakemake.output.data, snakemake.params.reference_size, snakemake.params.split_seed)
job.log(f"prepared {card['split']['train']} train / {card['split']['reference']} reference images, sha256 {card['sha256']}")
card["manifest"] = job.manifest()
mnist.write_card(card, snakemake.output.card)
