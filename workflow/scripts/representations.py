"""Representations of the probe's training subset and the held-out split through model.encode."""
import numpy as np

from diled import codecs, probe, registry, stages
from diled.fileio import atomic_path
from diled.manifest import write_json
from diled.snakemake_job import Job

job = Job(snakemake)
p = snakemake.params
model, ckpt = stages.load_model(snakemake.input.model, job.device)
codec = codecs.for_track("image", job.view)
train_x, train_y = codec.load(snakemake.input.data, "train")
pick = probe.subset(len(train_x), p.train_size, job.config["seed"])
ref_x, ref_y = codec.load(snakemake.input.data, "reference")
name = snakemake.wildcards.model
z_train = probe.representations(model, codec.to_model(train_x[pick]), p.steps, p.batch_size, f"{name}/train")
z_ref = probe.representations(model, codec.to_model(ref_x), p.steps, p.batch_size, f"{name}/held-out")
with atomic_path(snakemake.output.npz) as tmp:
    np.savez(tmp, train_z=z_train, train_y=train_y[pick], ref_z=z_ref, ref_y=ref_y)
kind = registry.resolve("image", name, job.view).spec.representation.format(**job.view)
write_json({"model": name, "representation": kind, "dim": int(z_ref.shape[1]), "manifest": job.manifest()}, snakemake.output.json)
job.log(f"{name}: {kind}, {z_train.shape} train / {z_ref.shape} held-out in {job.wall_s:.1f} s")
