"""FID (with a bootstrap interval) and KID of every image set of one (model, T), and reconstruction metrics per protocol."""
import json

import numpy as np

from diled import codecs, latent_health, registry
from diled.manifest import write_json
from diled.metrics import fid, recon, uncertainty
from diled.modalities.image import judge as digit_judge
from diled.modalities.image.model import eval_indices
from diled.snakemake_job import Job

job = Job(snakemake)
p = snakemake.params
protocol = fid.get_protocol(p.protocol)
reference, protocol = fid.load_reference(snakemake.input.reference, protocol)
tag = f"{snakemake.wildcards.model} T={snakemake.wildcards.steps}"
seed = job.config["seed"]
scores, intervals, kids, counts, rec_metrics = {}, {}, {}, {}, {}
lpips_model = recon.load_lpips("alex", job.device)
codec = codecs.for_track("image", job.view)
# the independent digit judge, trained once by rule image_judge (labelled data only: photo sets have no classes to
# preserve), and the pixel judge it replaced, whose verdicts are kept beside its own for one release
judge, pixel_judge, judge_record = digit_judge.load(snakemake.input.judge) if "judge" in snakemake.input.keys() else (None, None, {})
ref_x, ref_y = codec.load(snakemake.input.data, "reference")
health = {}
native = registry.resolve("image", snakemake.wildcards.model, job.view).spec.rec_protocols  # what its plain ``rec`` is
# One file per shard (or one): each set's Inception features, per-image reconstruction metrics and judge verdicts are
# gathered shard by shard (one shard's images in memory at a time) and merged, which gives the unsharded numbers.
files = list(snakemake.input.sets)
feats: dict[str, list] = {}
per_image: dict[str, list] = {}
verdicts: dict[str, list] = {}
n = job.view["eval"]["num_samples"]
ia = eval_indices(len(ref_x), n, seed)[0]  # the held-out images sample.py reconstructed, in row order
labels = ref_y[ia]
row = 0  # shards hold consecutive rows of the global order
for k, path in enumerate(files):
    with np.load(path) as sets:
        if not np.array_equal(ref_x[ia[row : row + len(sets["source_a"])]], sets["source_a"]):
            raise RuntimeError(f"{path}: its sources are not the held-out images this config selects")
        row += len(sets["source_a"])
        if judge is not None:
            verdicts.setdefault("sources", []).append(digit_judge.predict(judge, sets["source_a"])[0])
            if "gen" in sets.files:
                for part, v in zip(("gen", "gen_confidence"), digit_judge.predict(judge, sets["gen"])):
                    verdicts.setdefault(part, []).append(v)
        for key in sorted(x for x in sets.files if x in ("gen", "rec", "rec_inverted") or x.startswith("interp_")):
            stats = fid.statistics(sets[key], protocol, job.device, p.batch_size, desc=f"{key} {k + 1}/{len(files)}",
                                   keep_features=True, use_count=False)  # a fixed count applies to the merged rows
            feats.setdefault(key, []).append(stats.features)
            if key.startswith("rec"):
                per_image.setdefault(key, []).append(recon.per_image_metrics(sets[key], sets["source_a"], lpips_model))
                if judge is not None:
                    verdicts.setdefault(key, []).append(digit_judge.predict(judge, sets[key])[0])
                    verdicts.setdefault(f"{key}_pixel", []).append(pixel_judge.predict(sets[key]))
if row != n:
    raise RuntimeError(f"{files}: {row} rows, but eval.num_samples is {n}")
if judge is not None:
    health["judge_accuracy_on_sources"] = float((np.concatenate(verdicts["sources"]) == labels).mean())
    if "gen" in verdicts:
        gen_health = digit_judge.generation_health(np.concatenate(verdicts["gen"]), np.concatenate(verdicts["gen_confidence"]))
        health.update({f"generation_{k}": v for k, v in gen_health.items()})
    health.update({"judge_accuracy_held_out": judge_record["accuracy"], "real_recognisable": judge_record["real"]["recognisable"]})
for key in sorted(feats):
    rows = np.concatenate(feats[key])
    if protocol.sample_count is not None:  # a protocol that fixes the count takes the first rows, as unsharded
        rows = rows[: protocol.sample_count]
    stats = fid.Statistics.of(rows, protocol)
    scores[key], counts[key] = fid.frechet_distance(stats, reference), len(rows)
    if reference.features is not None:  # an on-the-fly reference keeps its rows; a downloaded one has none
        intervals[key] = uncertainty.bootstrap_fid(rows, reference.features, scores[key], p.bootstrap, seed=seed)
        kids[key] = uncertainty.kid(rows, reference.features, p.kid_subsets, seed=seed)
        job.log(f"{tag} {key}: FID {scores[key]:.3f} [{intervals[key]['lo']:.2f}, {intervals[key]['hi']:.2f}], "
                f"KID {kids[key]['mean']:.5f} ± {kids[key]['std']:.5f} ({len(rows)} images)")
    else:
        job.log(f"{tag} {key}: FID {scores[key]:.3f} ({len(rows)} images; no reference rows: no interval, no KID)")
    if key.startswith("rec"):
        rec_metrics[key] = recon.summarize({m: np.concatenate([d[m] for d in per_image[key]]) for m in per_image[key][0]})
        if judge is not None:
            kept = float((np.concatenate(verdicts[key]) == labels).mean())
            kept_pixel = float((np.concatenate(verdicts[f"{key}_pixel"]) == labels).mean())
            for protocol_name in (("inverted",) if key == "rec_inverted" else native):  # DDIM's plain rec is an inversion
                health.setdefault(f"class_preservation_{protocol_name}", kept)
                health.setdefault(f"class_preservation_{protocol_name}_pixel_judge", kept_pixel)
        job.log(f"{tag} {key}: " + ", ".join(f"{m} {v:.4f}" for m, v in rec_metrics[key].items() if not m.endswith("_sem")))
sample_manifest = json.load(open(snakemake.input.sample_manifest))
health.update(sample_manifest.get("latent_health") or {})
job.log(f"{tag} latent health: {json.dumps(health)}")
write_json({
    "track": "image", "model": snakemake.wildcards.model, "steps": int(snakemake.wildcards.steps), "fid": scores,
    "fid_interval": intervals, "kid": kids, "counts": counts,
    "recon": rec_metrics.get("rec", {}), "recon_inverted": rec_metrics.get("rec_inverted", {}),
    "recon_definition": "LPIPS v0.1 AlexNet on [-1, 1] (spatial mean), MSE/PSNR/SSIM on [0, 1]; "
    "uint8 reconstructions vs their uint8 sources, mean over images (``*_sem``: standard error of that mean)",
    "uncertainty_definition": {"fid_interval": "95% bootstrap over the generated set (reference fixed), spread re-centred on "
                               "the point (diled.metrics.uncertainty.bootstrap_fid)",
                               "kid": "torch-fidelity KID: unbiased MMD^2, cubic polynomial kernel; mean and std over random subsets"},
    "latent_health": health, "latent_health_definition": latent_health.__doc__.strip(),
    "reference_count": reference.count, "shards": len(files), "protocol": {**protocol.record(), "digest": protocol.digest},
    "sample_manifest": snakemake.input.sample_manifest, "training": sample_manifest["training"],
    "sampling_precision": sample_manifest.get("precision", "fp32"), "sampling_precision_reason": sample_manifest.get("precision_reason"),
    "manifest": job.manifest(),
}, snakemake.output[0])
