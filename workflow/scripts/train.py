"""Train one stage of one registered model; resumable state in params.run_dir, final EMA checkpoint as output.

With ``resources.train.gpu`` > 1 on CUDA the stage runs as that many processes (one per GPU, torchrun's launcher).
"""
from diled import distributed, stages
from diled.manifest import write_json
from diled.snakemake_job import Job

job = Job(snakemake)
name, stage = snakemake.wildcards.model, snakemake.wildcards.stage
nproc = int(snakemake.resources.get("gpu", 0)) if job.device.type == "cuda" else 1
args = (job.track, name, stage, job.view, snakemake.input.data, snakemake.params.run_dir, str(job.device),
        snakemake.input.get("init"), snakemake.output.model, snakemake.threads)
info = distributed.launch(stages.train_job, nproc, *args)[0] if nproc > 1 else stages.train_job(*args)
job.log(f"{name}/{stage}: {info['steps']} steps ({info['resumed_from_step']} resumed) on {info['processes']} process(es), "
        f"{info['train_wall_s']:.1f} s of training, final loss {info['final_loss']}")
write_json(job.manifest(training=info), snakemake.output.manifest)
