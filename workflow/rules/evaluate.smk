# The image track's metric suite: FID under the configured protocol and reconstruction metrics, then the
# FID-settings comparison (one fixed generated set under every protocol setting).


rule reference_stats:
    input:
        data=dataset_file("image"),
        weights=out("weights/verified.json"),
    output:
        out("fid/reference.npz"),
    log:
        out("logs/reference_stats.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("reference_stats"),
    params:
        protocol=IMAGE["eval"]["fid"]["protocol"],
        batch_size=IMAGE["eval"]["fid"]["batch_size"],
    script:
        "../scripts/reference_stats.py"


rule image_judge:
    input:
        data=dataset_file("image"),
    output:
        judge=out("judges/image/digits.npz"),
        record=out("judges/image/digits.json"),
    log:
        out("logs/image_judge.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("image_judge"),
    params:
        settings=IMAGE.get("judge", {}),
    script:
        "../scripts/image_judge.py"


rule evaluate_image:
    input:
        unpack(evaluate_image_inputs),
    output:
        out("metrics/image/{model}/T{steps}.json"),
    log:
        out("logs/evaluate/image_{model}_T{steps}.log"),
    priority: job_priority(0)
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("evaluate_image"),
    params:
        protocol=IMAGE["eval"]["fid"]["protocol"],
        batch_size=IMAGE["eval"]["fid"]["batch_size"],
        bootstrap=IMAGE["eval"].get("bootstrap", 200),
        kid_subsets=IMAGE["eval"].get("kid_subsets", 100),
    script:
        "../scripts/evaluate_image.py"


rule settings_samples:
    input:
        model=model_file("image", IMAGE["fid_settings"]["model"]),
    output:
        out("fid_settings/generated.pt"),
    log:
        out("logs/fid_settings/samples.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("settings_samples"),
    params:
        num_samples=IMAGE["fid_settings"]["num_samples"],
        steps=IMAGE["fid_settings"]["steps"],
        batch_size=IMAGE["eval"]["batch_size"],
    script:
        "../scripts/settings_samples.py"


rule adm_reference:
    input:
        data=dataset_file("image"),
        weights=out("weights/verified.json"),
    output:
        out("fid_settings/adm_reference.npz"),
    log:
        out("logs/fid_settings/adm_reference.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("adm_reference"),
    params:
        batch_size=IMAGE["eval"]["fid"]["batch_size"],
    script:
        "../scripts/adm_reference.py"


rule fid_setting:
    input:
        generated=settings_generated,
        data=dataset_file("image"),
        reference_stats=out("fid/reference.npz"),  # caches the base reference features first
        adm_reference=adm_reference_file,
        weights=out("weights/verified.json"),
        after=setting_after,
    output:
        out("fid_settings/rows/{setting}.json"),
    log:
        out("logs/fid_settings/{setting}.log"),
    priority: job_priority(0)
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("fid_setting"),
    params:
        num_samples=IMAGE["fid_settings"]["num_samples"],
        downscale=IMAGE["fid_settings"]["downscale"],
        reference_images=IMAGE["fid_settings"]["reference_images"],
        alternate_reference_images=IMAGE["fid_settings"]["alternate_reference_images"],
        adm_reference_sha256=IMAGE["fid_settings"]["adm_reference_sha256"],
        batch_size=IMAGE["eval"]["fid"]["batch_size"],
    script:
        "../scripts/fid_setting.py"
