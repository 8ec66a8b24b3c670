rule table6:
    input:
        expand(out("metrics/{model}/T{steps}.json"), model=MODELS, steps=STEPS),
    output:
        csv=out("tables/table6.csv"),
        md=out("tables/table6.md"),
        tex=out("tables/table6.tex"),
        figure3=out("figures/figure3.png"),
    params:
        models=MODELS,
        steps=STEPS,
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
        expand(out("models/{stage}.json"), stage=["ddim", "diffae_autoencoder", "diffae", "diled"]),
    output:
        csv=out("tables/training_cost.csv"),
        md=out("tables/training_cost.md"),
    log:
        out("logs/training_cost.log"),
    script:
        "../scripts/training_cost.py"
