# Tables of the image track, each from the registry's rows.


rule table6:
    input:
        metrics=metric_files("image", models("image")),
        manifests=training_manifests("image"),
    output:
        csv=report(out("tables/table6.csv"), caption="../report/table6.rst", category="Table 6"),
        md=out("tables/table6.md"),
        tex=out("tables/table6.tex"),
        kid=out("tables/table6_kid.md"),
        figure3=report(
            out("figures/figure3.png"), caption="../report/figure3.rst", category="Table 6"
        ),
    log:
        out("logs/table6.log"),
    conda:
        "../envs/diled.yaml"
    script:
        "../scripts/table6.py"


rule fid_settings:
    input:
        expand(out("fid_settings/rows/{setting}.json"), setting=settings_keys()),
    output:
        csv=report(
            out("tables/fid_settings.csv"),
            caption="../report/fid_settings.rst",
            category="FID settings",
        ),
        md=out("tables/fid_settings.md"),
        png=report(
            out("figures/fid_settings.png"),
            caption="../report/fid_settings_figure.rst",
            category="FID settings",
        ),
    log:
        out("logs/fid_settings.log"),
    conda:
        "../envs/diled.yaml"
    script:
        "../scripts/fid_settings.py"


rule training_cost:
    input:
        manifests=[f for t in TRACKS for f in training_manifests(t)],
    output:
        csv=report(
            out("tables/training_cost.csv"), caption="../report/training_cost.rst", category="Cost"
        ),
        md=out("tables/training_cost.md"),
        curves=report(
            out("figures/training_curves.png"),
            caption="../report/training_curves.rst",
            category="Cost",
        ),
    log:
        out("logs/training_cost.log"),
    conda:
        "../envs/diled.yaml"
    script:
        "../scripts/training_cost.py"


rule w_ablation:
    input:
        metrics=expand(
            out("metrics/image/{model}/T{steps}.json"),
            model=w_models(),
            steps=IMAGE["w_ablation"]["steps"],
        ),
        probe=expand(out("probe/image/{model}.npz"), model=w_models()),
        models=[stage_file("image", m, "train", "json") for m in w_models()],
    output:
        csv=report(
            out("tables/w_ablation.csv"), caption="../report/w_ablation.rst", category="Ablation"
        ),
        md=out("tables/w_ablation.md"),
        png=report(
            out("figures/w_ablation.png"),
            caption="../report/w_ablation_figure.rst",
            category="Ablation",
        ),
    log:
        out("logs/w_ablation.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("w_ablation"),
    script:
        "../scripts/w_ablation.py"


rule latent_health:
    input:
        health_metric_files(),
    output:
        csv=report(
            out("tables/latent_health.csv"),
            caption="../report/latent_health.rst",
            category="Table 6",
        ),
        md=out("tables/latent_health.md"),
    log:
        out("logs/latent_health.log"),
    conda:
        "../envs/diled.yaml"
    script:
        "../scripts/latent_health.py"
