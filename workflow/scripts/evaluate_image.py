"""FID (with a bootstrap interval) and KID of every image set of one (model, T), and reconstruction metrics per protocol."""
import json

import numpy as np

from diled import codecs, editing, latent_health, registry
from diled.jobs import Job
from diled.manifest import write_json
from diled.metrics import fid, recon, uncertainty
from diled.modalities.image import eval_indices

job = Job(snakemake)
p = snakemake.params
protocol = fid.get_protocol(p.protocol)
reference, protocol = fid.load_reference(snakemake.input.reference, protocol)
tag = f"{snakemake.wildcards.model} T={snakemake.wildcards.steps}"
seed = job.config["seed"]
scores, intervals, kids, counts, rec_metrics = {}, {}, {}, {}, {}
lpips_model = recon.load_lpips("alex", job.device)
codec = codecs.for_track("image", job.view)
# the editing table's independent judge (labelled data only: photo sets have no classes to preserve)
judge = editing.pixel_classifier(*codec.load(snakemake.input.data, "train"), seed) if codec.labelled else None
ref_x, ref_y = codec.load(snakemake.input.data, "reference")
health = {}
native = registry.resolve("image", snakemake.wildcards.model, job.view).spec.rec_protocols  # what its plain ``rec`` is
with np.load(snakemake.input.sets) as sets:
    pick = eval_indices(len(ref_x), len(sets["source_a"]), seed)[0]  # the held-out digits sample.py reconstructed
    labels = ref_y[pick]
    if not np.array_equal(ref_x[pick], sets["source_a"]):
        raise RuntimeError(f"{snakemake.input.sets}: its sources are not the held-out digits this config selects")
    if judge is not None:
        health["judge_accuracy_on_sources"] = latent_health.class_preservation(lambda im: editing.judge(judge, im), sets["source_a"], labels)
    for key in sorted(k for k in sets.files if k in ("gen", "rec", "rec_inverted") or k.startswith("interp_")):
        stats = fid.statistics(sets[key], protocol, job.device, p.batch_size, desc=key, keep_features=True)
        scores[key], counts[key] = fid.frechet_distance(stats, reference), stats.count
        if reference.features is not None:  # an on-the-fly reference keeps its rows; a downloaded one has none
            intervals[key] = uncertainty.bootstrap_fid(stats.features, reference.features, scores[key], p.bootstrap, seed=seed)
            kids[key] = uncertainty.kid(stats.features, reference.features, p.kid_subsets, seed=seed)
            job.log(f"{tag} {key}: FID {scores[key]:.3f} [{intervals[key]['lo']:.2f}, {intervals[key]['hi']:.2f}], "
                    f"KID {kids[key]['mean']:.5f} ± {kids[key]['std']:.5f} ({stats.count} images)")
        else:
            job.log(f"{tag} {key}: FID {scores[key]:.3f} ({stats.count} images; no reference rows: no interval, no KID)")
        if key.startswith("rec"):
            rec_metrics[key] = recon.reconstruction_metrics(sets[key], sets["source_a"], lpips_model)
            if judge is not None:
                kept = latent_health.class_preservation(lambda im: editing.judge(judge, im), sets[key], labels)
                for protocol_name in (("inverted",) if key == "rec_inverted" else native):  # DDIM's plain rec is an inversion
                    health.setdefault(f"class_preservation_{protocol_name}", kept)
            job.log(f"{tag} {key}: " + ", ".join(f"{k} {v:.4f}" for k, v in rec_metrics[key].items() if not k.endswith("_sem")))
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
    "reference_count": reference.count, "protocol": {**protocol.record(), "digest": protocol.digest},
    "sample_manifest": snakemake.input.sample_manifest, "training": sample_manifest["training"],
    "manifest": job.manifest(),
}, snakemake.output[0])
