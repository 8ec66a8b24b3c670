"""One row of the FID-settings comparison: the fixed generated set under one protocol."""
from diled import codecs
from diled.manifest import write_json
from diled.metrics import fid, settings
from diled.snakemake_job import Job

job = Job(snakemake)
p = snakemake.params
codec = codecs.for_track("image", job.view)
row = {s.key: s for s in settings.settings(p.num_samples, p.downscale)}[snakemake.wildcards.setting]
protocol = row.protocol
if protocol.reference == "precomputed":
    if p.adm_reference_sha256:
        protocol = protocol.variant(name=protocol.name, reference_sha256=p.adm_reference_sha256)
    reference = snakemake.input.adm_reference
elif protocol.reference_set == "train":
    reference = p.alternate_reference_images or codec.reference_images(snakemake.input.data, "train", job.config["seed"])
else:
    reference = p.reference_images or codec.reference_images(snakemake.input.data, "held-out")
result = fid.fid(snakemake.input.generated, reference, protocol, job.device, p.batch_size)
job.log(f"{row.key} ({row.change}): FID {result['fid']:.3f} under {result['protocol']} ({result['protocol_digest']})")
write_json({"key": row.key, "factor": row.factor, "change": row.change, "presets": list(row.presets), **result,
            "manifest": job.manifest()}, snakemake.output[0])
