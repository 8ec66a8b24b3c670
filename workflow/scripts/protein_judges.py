"""The protein track's judges: the plausibility LM and PSSM (test split), and the shared fitness oracle (train split)."""
import torch

from diled import codecs
from diled.files import atomic_path
from diled.jobs import Job
from diled.manifest import write_json
from diled.protein_eval import fit_judges

job = Job(snakemake, track="protein")
arrays, record = fit_judges(codecs.for_track("protein", job.view), snakemake.input.data, job.view, job.config["seed"])
with atomic_path(snakemake.output.judges) as tmp:
    torch.save(arrays, tmp)
for name, c in record["calibration"].items():
    job.log(f"judge on {name}: median PPL {c['judge_ppl']:.2f}, PSSM NLL {c['pssm_nll']:.3f}")
job.log(f"oracle: test Spearman {record['oracle']['test']['spearman']:.3f} ({job.wall_s:.1f} s)")
write_json({**record, "manifest": job.manifest()}, snakemake.output.record)
