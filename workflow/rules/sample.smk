# One rule samples every model of every track through the capability interface.


rule sample:
    input:
        unpack(sample_inputs),
    output:
        sets=out("samples/{track}/{model}/T{steps}.npz"),
        manifest=out("samples/{track}/{model}/T{steps}.json"),
    log:
        out("logs/sample/{track}_{model}_T{steps}.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    params:
        eval=lambda wc: VIEWS[wc.track]["eval"],
    script:
        "../scripts/sample.py"
