rule reference_stats:
    input:
        data=rules.prepare_data.output.data,
        weights=rules.fid_weights.output[0],
    output:
        out("fid/reference.npz"),
    params:
        protocol=config["eval"]["fid"]["protocol"],
        batch_size=config["eval"]["fid"]["batch_size"],
    threads: config["threads"]
    log:
        out("logs/reference_stats.log"),
    script:
        "../scripts/reference_stats.py"


rule fid:
    input:
        sets=rules.sample.output.sets,
        sample_manifest=rules.sample.output.manifest,
        reference=rules.reference_stats.output[0],
        weights=rules.fid_weights.output[0],
    output:
        out("metrics/{model}/T{steps}.json"),
    params:
        protocol=config["eval"]["fid"]["protocol"],
        batch_size=config["eval"]["fid"]["batch_size"],
    threads: config["threads"]
    log:
        out("logs/fid/{model}_T{steps}.log"),
    script:
        "../scripts/fid.py"
