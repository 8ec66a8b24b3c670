rule fid_weights:
    output:
        out("weights/fid_inception.json"),
    log:
        out("logs/fid_weights.log"),
    script:
        "../scripts/fid_weights.py"
