rule sample_grid:
    input:
        grid_inputs,
    output:
        report(
            out("figures/image/{model}_grid.png"),
            caption="../report/sample_grid.rst",
            category="Samples",
            subcategory="{model}",
        ),
    log:
        out("logs/figures/image_{model}_grid.log"),
    conda:
        "../envs/diled.yaml"
    params:
        steps=lambda wc: steps_of("image", wc.model),
        grid_count=IMAGE["figures"]["grid_count"],
    script:
        "../scripts/sample_grid.py"
