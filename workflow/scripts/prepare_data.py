"""Prepare a track's dataset (through its codec) and write the dataset card."""
from diled import codecs
from diled.snakemake_job import Job

job = Job(snakemake)
codec = codecs.for_track(job.track, job.view)
card = codec.prepare(snakemake.output.data, dict(snakemake.params.data))
job.log(f"prepared {job.track} data: split {card['split']}, sha256 {card['sha256']}")
card["manifest"] = job.manifest()
codec.write_card(card, snakemake.output.card)
