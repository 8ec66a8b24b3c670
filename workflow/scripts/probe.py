"""Linear-probe accuracy table and the 2-D latent projection figure."""
import json
from pathlib import Path

import numpy as np

from diled import probe
from diled.manifest import write_json
from diled.registry import resolve
from diled.report import figures, tables
from diled.snakemake_job import Job

job = Job(snakemake)


def display(name: str) -> str:
    return resolve("image", name, job.view).spec.display


results, latents = [], {}
for npz, meta in zip(snakemake.input.npz, snakemake.input.json):
    info = json.loads(Path(meta).read_text())
    with np.load(npz) as f:
        res = probe.linear_probe(f["train_z"], f["train_y"], f["ref_z"], f["ref_y"], job.config["seed"])
        latents[display(info["model"])] = (f["ref_z"], f["ref_y"])
    results.append({"model": display(info["model"]), "representation": info["representation"], **res})
    job.log(f"{info['model']}: probe accuracy {res['test_accuracy']:.4f} (train {res['train_accuracy']:.4f})")
df = probe.probe_table(results)
notes = [
    f"Logistic regression (scikit-learn, lbfgs, max_iter 2000) on standardized representations of {results[0]['train_size']} "
    f"seeded training images; accuracy on the {results[0]['test_size']} held-out images (digit class, chance 0.1).",
    "CM-CD has no encoder (its 'encoding' is a noised image), so it has no representation to probe.",
]
tables.write_table(df, title="Linear probe: digit class from each model's representation", notes=notes,
                   csv=snakemake.output.csv, md=snakemake.output.md)
first = [k for k in latents if k == "DiLED"]  # DiLED first, beside every other represented model
figures.projection_figure({k: latents[k] for k in first + [k for k in latents if k not in first]}, snakemake.output.png,
                        "Held-out latents (PCA of standardized representation), coloured by digit")
write_json({"results": results, "manifest": job.manifest()}, snakemake.output.json)
