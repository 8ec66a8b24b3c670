"""The protein track's judges: the plausibility LM and PSSM (test split), and the shared fitness oracle (train split)."""
from diled import checkpoint, codecs
from diled.manifest import write_json
from diled.modalities.protein.evaluation import fit_judges
from diled.snakemake_job import Job

job = Job(snakemake, track="protein")
arrays, record = fit_judges(codecs.for_track("protein", job.view), snakemake.input.data, job.view, job.config["seed"])
checkpoint.save(arrays, snakemake.output.judges)
for name, c in record["calibration"].items():
    job.log(f"judge on {name}: median PPL {c['judge_ppl']:.2f}, PSSM NLL {c['pssm_nll']:.3f}")
job.log(f"oracle: test Spearman {record['oracle']['test']['spearman']:.3f} ({job.wall_s:.1f} s)")
write_json({**record, "manifest": job.manifest()}, snakemake.output.record)
