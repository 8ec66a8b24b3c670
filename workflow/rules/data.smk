rule prepare_data:
    output:
        data=out("data/{track}/{dataset}.npz"),
        card=report(
            out("data/{track}/{dataset}.card.md"),
            caption="../report/dataset_card.rst",
            category="Data",
        ),
    log:
        out("logs/prepare_data/{track}_{dataset}.log"),
    conda:
        "../envs/diled.yaml"
    params:
        reference_size=lambda wc: VIEWS[wc.track]["data"]["reference_size"],
        split_seed=lambda wc: VIEWS[wc.track]["data"]["split_seed"],
    script:
        "../scripts/prepare_data.py"
