rule weights:
    output:
        out("weights/verified.json"),
    params:
        artifacts=["fid-inception", "torch-fidelity-inception", "lpips-alexnet"],
    log:
        out("logs/weights.log"),
    script:
        "../scripts/weights.py"
