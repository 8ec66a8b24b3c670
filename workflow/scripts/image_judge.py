"""The independent digit judge: a small CNN trained on the training split (and the previous pixel judge beside it)."""
from diled import codecs
from diled.diffusion import derive_seed
from diled.manifest import write_json
from diled.modalities.image import judge
from diled.snakemake_job import Job

job = Job(snakemake)
settings, seed = snakemake.params.settings, derive_seed(job.config["seed"], "digit_judge")
codec = codecs.for_track("image", job.view)
train_x, train_y = codec.load(snakemake.input.data, "train")
ref_x, ref_y = codec.load(snakemake.input.data, "reference")
cnn = judge.train(train_x, train_y, seed, settings["epochs"], settings["batch_size"], settings["lr"], progress=True)
pixel = judge.PixelJudge.fit(train_x, train_y, job.config["seed"])  # fitted exactly as it was before the CNN replaced it
record = judge.assess(cnn, pixel, ref_x, ref_y, settings)
job.log(f"digit judge: held-out accuracy {record['accuracy']:.4f} (previous pixel judge {record['pixel_accuracy']:.4f}); "
        f"real digits recognisable {record['real']['recognisable']:.3f}")
judge.save(snakemake.output.judge, cnn, pixel, record)
write_json({**record, "manifest": job.manifest()}, snakemake.output.record)
