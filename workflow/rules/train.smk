# One rule trains every stage of every registered model: {track}/{model}/{stage} (diled/registry.py).
# It declares only the final checkpoint; resumable state lives in run_dir(...), which Snakemake never deletes.


rule train:
    input:
        unpack(train_inputs),
    output:
        model=out("models/{track}/{model}/{stage}.pt"),
        manifest=out("models/{track}/{model}/{stage}.json"),
    log:
        out("logs/train/{track}_{model}_{stage}.log"),
    priority: job_priority(1)
    conda:
        "../envs/diled.yaml"
    threads: lambda wc: cfg.job_threads(config, wc.track, wc.model, wc.stage)
    resources:
        **job_resources("train"),
    params:
        run_dir=lambda wc: run_dir(wc.track, wc.model, wc.stage),
    script:
        "../scripts/train.py"
