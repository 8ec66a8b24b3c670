rule prepare_data:
    output:
        data=out("data/mnist32.npz"),
        card=out("data/mnist32.card.md"),
    params:
        reference_size=config["data"]["reference_size"],
        split_seed=config["data"]["split_seed"],
    log:
        out("logs/prepare_data.log"),
    script:
        "../scripts/prepare_data.py"
