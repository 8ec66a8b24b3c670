# Representation quality: linear probe and latent projection (issue: Table 6 complete, item 4).
PROBE = config["probe"]


rule representations:
    input:
        model=out("models/{model}.pt"),
        data=rules.prepare_data.output.data,
    output:
        npz=out("probe/{model}.npz"),
        json=out("probe/{model}.json"),
    params:
        train_size=PROBE["train_size"],
        steps=PROBE["ddim_steps"],
        batch_size=config["eval"]["batch_size"],
    threads: config["threads"]
    log:
        out("logs/probe/{model}.log"),
    script:
        "../scripts/representations.py"


rule probe:
    input:
        npz=expand(out("probe/{model}.npz"), model=REPRESENTED),
        json=expand(out("probe/{model}.json"), model=REPRESENTED),
    output:
        csv=out("tables/probe.csv"),
        md=out("tables/probe.md"),
        png=out("figures/latent_projection.png"),
        json=out("probe/summary.json"),
    threads: config["threads"]
    log:
        out("logs/probe/summary.log"),
    script:
        "../scripts/probe.py"


rule editing:
    input:
        models=expand(out("models/{model}.pt"), model=EDITED),
        latents=expand(out("probe/{model}.npz"), model=EDITED),
        data=rules.prepare_data.output.data,
        weights=rules.weights.output[0],
    output:
        csv=out("tables/editing.csv"),
        md=out("tables/editing.md"),
        png=out("figures/editing.png"),
        json=out("editing/summary.json"),
    params:
        scales=config["editing"]["scales"],
        steps=config["editing"]["steps"],
        num_edits=config["editing"]["num_edits"],
        figure_rows=config["editing"]["figure_rows"],
    threads: config["threads"]
    log:
        out("logs/editing.log"),
    script:
        "../scripts/editing.py"
