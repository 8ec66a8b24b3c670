"""Prepare a track's dataset (through its codec) and write the dataset card."""
from diled import codecs
from diled.jobs import Job

job = Job(snakemake)
codec = codecs.for_track(job.track, job.view)
card = codec.prepare(snakemake.output.data, {"reference_size": snakemake.params.reference_size, "split_seed": snakemake.params.split_seed})
job.log(f"prepared {card['split']['train']} train / {card['split']['reference']} reference items, sha256 {card['sha256']}")
card["manifest"] = job.manifest()
codec.write_card(card, snakemake.output.card)
