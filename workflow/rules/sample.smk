rule sample:
    input:
        model=out("models/{model}.pt"),
        data=rules.prepare_data.output.data,
    output:
        sets=out("samples/{model}/T{steps}.npz"),
        manifest=out("samples/{model}/T{steps}.json"),
    params:
        num_samples=config["eval"]["num_samples"],
        alphas=config["eval"]["interp_alphas"],
        batch_size=config["eval"]["batch_size"],
    threads: config["threads"]
    log:
        out("logs/sample/{model}_T{steps}.log"),
    script:
        "../scripts/sample.py"
