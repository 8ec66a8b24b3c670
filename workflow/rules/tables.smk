rule table6:
    input:
        [out(f"metrics/{m}/T{s}.json") for m in MODELS for s in model_steps(m)],
    output:
        csv=out("tables/table6.csv"),
        md=out("tables/table6.md"),
        tex=out("tables/table6.tex"),
        figure3=out("figures/figure3.png"),
    log:
        out("logs/table6.log"),
    script:
        "../scripts/table6.py"


def settings_rows():
    from diled.metrics.settings import settings

    keys = [s.key for s in settings(SETTINGS_CFG["num_samples"], SETTINGS_CFG["downscale"])]
    return expand(out("fid_settings/rows/{setting}.json"), setting=keys)


rule fid_settings:
    input:
        settings_rows(),
    output:
        csv=out("tables/fid_settings.csv"),
        md=out("tables/fid_settings.md"),
        png=out("figures/fid_settings.png"),
    log:
        out("logs/fid_settings.log"),
    script:
        "../scripts/fid_settings.py"


rule training_cost:
    input:
        expand(out("models/{stage}.json"), stage=["ddim", "diffae_autoencoder", "diffae", "diled", "ldm_autoencoder", "ldm", "cmcd", *ABLATION_ONLY]),
    output:
        csv=out("tables/training_cost.csv"),
        md=out("tables/training_cost.md"),
    log:
        out("logs/training_cost.log"),
    script:
        "../scripts/training_cost.py"


rule w_ablation:
    input:
        metrics=[out(f"metrics/{m}/T{config['w_ablation']['steps']}.json") for m in W_MODELS],
        probe=expand(out("probe/{model}.npz"), model=W_MODELS),
        models=expand(out("models/{model}.json"), model=W_MODELS),
    output:
        csv=out("tables/w_ablation.csv"),
        md=out("tables/w_ablation.md"),
        png=out("figures/w_ablation.png"),
    threads: config["threads"]
    log:
        out("logs/w_ablation.log"),
    script:
        "../scripts/w_ablation.py"
