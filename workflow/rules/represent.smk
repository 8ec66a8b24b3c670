# Representation quality of the image track: linear probe, latent projection, latent editing.


rule representations:
    input:
        model=lambda wc: model_file("image", wc.model),
        data=dataset_file("image"),
    output:
        npz=out("probe/image/{model}.npz"),
        json=out("probe/image/{model}.json"),
    log:
        out("logs/probe/image_{model}.log"),
    priority: job_priority(0)
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("representations"),
    params:
        train_size=IMAGE["probe"]["train_size"],
        steps=IMAGE["probe"]["ddim_steps"],
        batch_size=IMAGE["eval"]["batch_size"],
    script:
        "../scripts/representations.py"


rule probe:
    input:
        npz=expand(out("probe/image/{model}.npz"), model=models("image", "represent")),
        json=expand(out("probe/image/{model}.json"), model=models("image", "represent")),
    output:
        csv=report(
            out("tables/probe.csv"), caption="../report/probe.rst", category="Representation"
        ),
        md=out("tables/probe.md"),
        png=report(
            out("figures/latent_projection.png"),
            caption="../report/latent_projection.rst",
            category="Representation",
        ),
        json=out("probe/summary.json"),
    log:
        out("logs/probe/summary.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("probe"),
    script:
        "../scripts/probe.py"


rule editing:
    input:
        models=[model_file("image", m) for m in models("image", "edit")],
        latents=expand(out("probe/image/{model}.npz"), model=models("image", "edit")),
        data=dataset_file("image"),
        judge=out("judges/image/digits.npz"),
        weights=out("weights/verified.json"),
    output:
        csv=report(
            out("tables/editing.csv"), caption="../report/editing.rst", category="Representation"
        ),
        md=out("tables/editing.md"),
        png=report(
            out("figures/editing.png"),
            caption="../report/editing_figure.rst",
            category="Representation",
        ),
        json=out("editing/summary.json"),
    log:
        out("logs/editing.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("editing"),
    params:
        scales=IMAGE["editing"]["scales"],
        steps=IMAGE["editing"]["steps"],
        num_edits=IMAGE["editing"]["num_edits"],
        figure_rows=IMAGE["editing"]["figure_rows"],
    script:
        "../scripts/editing.py"
