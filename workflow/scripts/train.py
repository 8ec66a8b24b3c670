"""Train one stage of one registered model; resumable state in params.run_dir, final EMA checkpoint as output."""
from pathlib import Path

from diled import codecs, pipeline, registry
from diled.jobs import Job
from diled.manifest import write_json

job = Job(snakemake)
name, stage = snakemake.wildcards.model, snakemake.wildcards.stage
variant = registry.resolve(job.track, name, job.view)
codec = codecs.for_track(job.track, job.view)
init = pipeline.load_model(snakemake.input.init, job.device)[0] if hasattr(snakemake.input, "init") else None
model, res, cfg = pipeline.train_stage(job.track, name, stage, job.view, codec.training_data(snakemake.input.data), Path(snakemake.params.run_dir),
                                       job.device, init)
info = {"track": job.track, "model": variant.spec.name, "variant": name, "stage": stage, "overrides": variant.overrides,
        "steps": res.steps, "resumed_from_step": res.resumed_from, "train_wall_s": round(res.wall_s, 3),
        "s_per_step": res.s_per_step and round(res.s_per_step, 5), "final_loss": res.final_loss, "run_dir": snakemake.params.run_dir,
        "parameters": sum(p.numel() for p in model.parameters())}
job.log(f"{name}/{stage}: {res.steps} steps ({res.resumed_from} resumed), {res.wall_s:.1f} s of training, final loss {res.final_loss}")
pipeline.save_model(model, job.track, variant.spec.name, cfg, snakemake.output.model, info)
write_json(job.manifest(training=info), snakemake.output.manifest)
