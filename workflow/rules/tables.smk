rule table6:
    input:
        expand(out("metrics/{model}/T{steps}.json"), model=MODELS, steps=STEPS),
    output:
        csv=out("tables/table6.csv"),
        md=out("tables/table6.md"),
    params:
        models=MODELS,
        steps=STEPS,
    log:
        out("logs/table6.log"),
    script:
        "../scripts/table6.py"
