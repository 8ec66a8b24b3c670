# The text track's metric suite (Table 1): judges trained on the judge split, one evaluation per model,
# then Table 1, the editing table, the cost table, the loss-curve figure and examples.


rule text_judges:
    input:
        data=dataset_file("text"),
    output:
        judges=out("text/judges.pt"),
        record=out("text/judges.json"),
    log:
        out("logs/text/judges.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("text_judges"),
    params:
        run_dir=lambda wc: out("runs", "text", f"judges-{cfg.text_judges_key(VIEWS['text'])}"),
    script:
        "../scripts/text_judges.py"


rule evaluate_text:
    input:
        model=lambda wc: model_file("text", wc.model),
        data=dataset_file("text"),
        judges=out("text/judges.pt"),
    output:
        record=out("metrics/text/{model}.json"),
    log:
        out("logs/evaluate/text_{model}.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("evaluate_text"),
    script:
        "../scripts/evaluate_text.py"


rule text_tables:
    input:
        records=expand(out("metrics/text/{model}.json"), model=models("text")),
        judges=out("text/judges.json"),
        data=dataset_file("text"),
        manifests=training_manifests("text"),
        reference_numbers=os.path.join(
            workflow.current_basedir, "..", "report", "reference_numbers.yaml"
        ),
    output:
        table1=report(out("tables/table1.csv"), caption="../report/text.rst", category="Text"),
        table1_md=out("tables/table1.md"),
        table1_tex=out("tables/table1.tex"),
        editing=out("tables/text_editing.md"),
        cost=out("tables/text_cost.md"),
        examples=out("tables/text_examples.md"),
        curves=report(
            out("figures/text_loss_curves.png"), caption="../report/text.rst", category="Text"
        ),
    log:
        out("logs/text_tables.log"),
    conda:
        "../envs/diled.yaml"
    script:
        "../scripts/text_tables.py"
