rule sample_grid:
    input:
        lambda wc: [out(f"samples/{wc.model}/T{s}.npz") for s in model_steps(wc.model)],
    output:
        out("figures/{model}_grid.png"),
    params:
        steps=lambda wc: model_steps(wc.model),
        grid_count=config["figures"]["grid_count"],
    log:
        out("logs/figures/{model}_grid.log"),
    script:
        "../scripts/sample_grid.py"
