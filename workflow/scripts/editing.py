"""Latent editing: move encoder means along a class direction, decode, judge with the independent digit judge."""
import numpy as np
import pandas as pd

from diled import codecs, editing, probe, stages
from diled.diffusion import derive_seed
from diled.manifest import write_json
from diled.metrics import recon
from diled.modalities.image import judge as digit_judge
from diled.registry import resolve
from diled.report import figures, tables
from diled.snakemake_job import Job

job = Job(snakemake)
p, seed = snakemake.params, job.config["seed"]
codec = codecs.for_track("image", job.view)
ref_x, ref_y = codec.load(snakemake.input.data, "reference")
judge, pixel_judge, judge_record = digit_judge.load(snakemake.input.judge)
judge_acc = judge_record["accuracy"]
job.log(f"digit judge: held-out accuracy {judge_acc:.4f} (previous pixel judge {judge_record['pixel_accuracy']:.4f})")
lp = recon.load_lpips("alex", job.device)
pick = probe.subset(len(ref_x), p.num_edits, seed)
src_x, src_y = ref_x[pick], ref_y[pick]
src = codec.to_model(src_x)
target = (src_y + 1) % 10
seeds = [derive_seed(seed, "edit", i) for i in range(len(pick))]
shown = editing.figure_examples(src_y, p.figure_rows)  # one row per source class, not the first few zeros
rows, strips = [], {}
for path, latents in zip(list(snakemake.input.models), list(snakemake.input.latents)):
    model, ckpt = stages.load_model(path, job.device)
    name = resolve("image", ckpt["name"], job.view).spec.display
    with np.load(latents) as f:
        dirs = editing.class_directions(f["train_z"], f["train_y"], seed)
    out = editing.edit(model, src, src_y, target, dirs, [0.0, *p.scales], p.steps, seeds)
    grid = [src_x[:, 0]]
    for s, x in out.items():
        imgs = codec.to_metric(x)
        hit = digit_judge.predict(judge, imgs)[0] == target
        hit_pixel = pixel_judge.predict(imgs) == target
        dist = recon.lpips_distance(x.float(), src, lp).numpy()
        rows.append({"model": name, "step size": s, "success (judge says target)": round(float(hit.mean()), 4),
                     "success (previous pixel judge)": round(float(hit_pixel.mean()), 4),
                     "LPIPS to source": round(float(dist.mean()), 4), "edits": len(pick)})
        if s > 0:
            grid.append(imgs[:, 0])
    strips[name] = np.stack(grid, 1)[shown]
    job.log(f"{name}: " + ", ".join(f"s={r['step size']:g}: {r['success (judge says target)']:.2f}" for r in rows if r["model"] == name))
df = pd.DataFrame(rows)
notes = [
    f"{len(pick)} seeded held-out digits, each edited from its class a towards a + 1 (mod 10); direction: difference of the "
    "two classes' weight vectors of a logistic regression on the standardized latents of the probe's training images, unit length; "
    f"decoded with T = {p.steps} DDIM steps from each source's own x_T (DDIM inversion conditioned on its unedited z: "
    "DiffAE's manipulation protocol, the `inverted` reconstruction protocol). Step size 0 is that reconstruction.",
    f"Judge: the independent digit judge (a small CNN trained on the training split by rule image_judge), held-out accuracy "
    f"{judge_acc:.4f}; success = judge predicts the target. The previous judge (logistic regression on pixels, held-out accuracy "
    f"{judge_record['pixel_accuracy']:.4f}) is shown beside it for this release.",
    "LPIPS v0.1 (AlexNet) between the edit and its source. LDM's latent (c x h x w, flattened) is scaled by one global "
    "std, not per dimension, so its step sizes are in that unit; its decoder is deterministic (no x_T).",
]
tables.write_table(df, title="Latent editing: class arithmetic on the semantic latent", notes=notes,
                   csv=snakemake.output.csv, md=snakemake.output.md)
figures.edit_strips(strips, p.scales, snakemake.output.png, f"Edits towards the next digit (a -> a+1), T = {p.steps}",
                    [f"{a} -> {b}" for a, b in zip(src_y[shown], target[shown])])
write_json({"rows": rows, "judge_accuracy": judge_acc, "manifest": job.manifest()}, snakemake.output.json)
