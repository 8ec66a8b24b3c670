rule sample_grid:
    input:
        expand(out("samples/{{model}}/T{steps}.npz"), steps=STEPS),
    output:
        out("figures/{model}_grid.png"),
    params:
        steps=STEPS,
        grid_count=config["figures"]["grid_count"],
    log:
        out("logs/figures/{model}_grid.log"),
    script:
        "../scripts/sample_grid.py"
