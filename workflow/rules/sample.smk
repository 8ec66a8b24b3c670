# One rule samples every model of every track through the capability interface.


rule sample:
    input:
        unpack(sample_inputs),
    output:
        sets=out("samples/{track}/{model}/T{steps}.npz"),
        manifest=out("samples/{track}/{model}/T{steps}.json"),
    log:
        out("logs/sample/{track}_{model}_T{steps}.log"),
    priority: job_priority(0)
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("sample"),
    params:
        **SAMPLE_PARAMS,
    script:
        "../scripts/sample.py"


# Large evaluations (eval.shard_size): rows k*shard_size.. of every set, one job per shard; every row's seeds come
# from its global index, so the shards concatenate to the unsharded sets (diled.modalities.image.evaluation_sets).
rule sample_shard:
    input:
        unpack(sample_inputs),
    output:
        sets=out("samples/{track}/{model}/T{steps}/shard{shard}.npz"),
        manifest=out("samples/{track}/{model}/T{steps}/shard{shard}.json"),
    log:
        out("logs/sample/{track}_{model}_T{steps}_shard{shard}.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("sample"),
    params:
        **SAMPLE_PARAMS,
    script:
        "../scripts/sample.py"
