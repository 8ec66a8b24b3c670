"""Train one stage of one model; resumable state in params.run_dir, final EMA checkpoint as output."""
from pathlib import Path

from diled import pipeline
from diled.data import mnist
from diled.jobs import Job
from diled.manifest import write_json

job = Job(snakemake)
name, stage = snakemake.params.name, snakemake.params.stage
w = getattr(snakemake.params, "w", None)  # the w ablation: DiLED under another w
cfg = pipeline.with_w(job.config, w) if w is not None else job.config
images, _ = mnist.load(snakemake.input.data, "train")
init = pipeline.load_model(snakemake.input.init, job.device)[0] if hasattr(snakemake.input, "init") else None
model, res = pipeline.train_stage(name, stage, cfg, mnist.to_model_space(images), Path(snakemake.params.run_dir), job.device, init)
info = {"model": name, "stage": stage, "w": cfg["models"]["diled"]["w"] if name == "diled" else None, "steps": res.steps, "resumed_from_step": res.resumed_from,
        "train_wall_s": round(res.wall_s, 3), "s_per_step": round(res.s_per_step, 5), "final_loss": res.final_loss,
        "run_dir": snakemake.params.run_dir, "parameters": sum(p.numel() for p in model.parameters())}
job.log(f"{name}/{stage}: {res.steps} steps ({res.resumed_from} resumed), {res.s_per_step * 1e3:.1f} ms/step, final loss {res.final_loss:.4f}")
pipeline.save_model(model, name, cfg, snakemake.output.model, info)
write_json(job.manifest(training=info), snakemake.output.manifest)
