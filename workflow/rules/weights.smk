rule weights:
    output:
        out("weights/verified.json"),
    log:
        out("logs/weights.log"),
    conda:
        "../envs/diled.yaml"
    params:
        artifacts=["fid-inception", "torch-fidelity-inception", "lpips-alexnet"],
    script:
        "../scripts/weights.py"
