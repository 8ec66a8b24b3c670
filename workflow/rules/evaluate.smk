FIDS = config["eval"]["fid"]
SETTINGS_CFG = config["fid_settings"]


rule reference_stats:
    input:
        data=rules.prepare_data.output.data,
        weights=rules.weights.output[0],
    output:
        out("fid/reference.npz"),
    params:
        protocol=FIDS["protocol"],
        batch_size=FIDS["batch_size"],
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
        weights=rules.weights.output[0],
    output:
        out("metrics/{model}/T{steps}.json"),
    params:
        protocol=FIDS["protocol"],
        batch_size=FIDS["batch_size"],
    threads: config["threads"]
    log:
        out("logs/fid/{model}_T{steps}.log"),
    script:
        "../scripts/fid.py"


# ----------------------------------------------------------------------------- FID settings comparison


def settings_generated(wildcards=None):
    """The fixed generated set: a user-given one (paper config) or samples of the configured model."""
    return SETTINGS_CFG["images"] or out("fid_settings/generated.pt")


def adm_reference(wildcards=None):
    """Precomputed reference statistics for the adm preset: a given .npz or one built from the reference set."""
    return SETTINGS_CFG["adm_reference"] or out("fid_settings/adm_reference.npz")


rule settings_samples:
    input:
        model=out(f"models/{SETTINGS_CFG['model']}.pt"),
    output:
        out("fid_settings/generated.pt"),
    params:
        num_samples=SETTINGS_CFG["num_samples"],
        steps=SETTINGS_CFG["steps"],
        batch_size=config["eval"]["batch_size"],
    threads: config["threads"]
    log:
        out("logs/fid_settings/samples.log"),
    script:
        "../scripts/settings_samples.py"


rule adm_reference:
    input:
        data=rules.prepare_data.output.data,
        weights=rules.weights.output[0],
    output:
        out("fid_settings/adm_reference.npz"),
    params:
        batch_size=FIDS["batch_size"],
    threads: config["threads"]
    log:
        out("logs/fid_settings/adm_reference.log"),
    script:
        "../scripts/adm_reference.py"


def setting_after(wildcards):
    """Rows that reuse another row's cached features wait for it (no duplicate Inception passes)."""
    from diled.metrics.settings import settings

    rows = {s.key: s for s in settings(SETTINGS_CFG["num_samples"], SETTINGS_CFG["downscale"])}
    after = rows[wildcards.setting].after
    return [out(f"fid_settings/rows/{after}.json")] if after else []


rule fid_setting:
    input:
        generated=settings_generated,
        data=rules.prepare_data.output.data,
        reference_stats=rules.reference_stats.output[0],  # caches the base reference features first
        adm_reference=adm_reference,
        weights=rules.weights.output[0],
        after=setting_after,
    output:
        out("fid_settings/rows/{setting}.json"),
    params:
        num_samples=SETTINGS_CFG["num_samples"],
        downscale=SETTINGS_CFG["downscale"],
        reference_images=SETTINGS_CFG["reference_images"],
        alternate_reference_images=SETTINGS_CFG["alternate_reference_images"],
        adm_reference_sha256=SETTINGS_CFG["adm_reference_sha256"],
        batch_size=FIDS["batch_size"],
    threads: config["threads"]
    log:
        out("logs/fid_settings/{setting}.log"),
    script:
        "../scripts/fid_setting.py"
