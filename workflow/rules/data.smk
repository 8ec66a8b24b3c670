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
        # a sorted list: key order never reruns the job; text data also holds the frozen encoder's features
        data=lambda wc: sorted(VIEWS[wc.track]["data"].items())
        + ([("encoder", VIEWS["text"]["net"]["encoder"])] if wc.track == "text" else []),
    script:
        "../scripts/prepare_data.py"
