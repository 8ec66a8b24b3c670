# The protein track's metric suite: judges no generator sees, then one evaluation per model, then the tables.


rule protein_judges:
    input:
        data=dataset_file("protein"),
    output:
        judges=out("protein/judges.pt"),
        record=out("protein/judges.json"),
    log:
        out("logs/protein/judges.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("protein_judges"),
    script:
        "../scripts/protein_judges.py"


rule evaluate_protein:
    input:
        unpack(protein_eval_inputs),
    output:
        record=out("metrics/protein/{model}.json"),
        arrays=out("metrics/protein/{model}.npz"),
    log:
        out("logs/evaluate/protein_{model}.log"),
    conda:
        "../envs/diled.yaml"
    threads: config["threads"]
    resources:
        **job_resources("evaluate_protein"),
    script:
        "../scripts/evaluate_protein.py"


rule protein_tables:
    input:
        records=expand(out("metrics/protein/{model}.json"), model=models("protein")),
        arrays=expand(out("metrics/protein/{model}.npz"), model=models("protein")),
        judges=out("protein/judges.json"),
    output:
        fitness=report(
            out("tables/protein_fitness.csv"), caption="../report/protein.rst", category="Protein"
        ),
        fitness_md=out("tables/protein_fitness.md"),
        fitness_tex=out("tables/protein_fitness.tex"),
        recon=report(
            out("tables/protein_reconstruction.csv"),
            caption="../report/protein.rst",
            category="Protein",
        ),
        recon_md=out("tables/protein_reconstruction.md"),
        recon_tex=out("tables/protein_reconstruction.tex"),
        generation=report(
            out("tables/protein_generation.csv"),
            caption="../report/protein.rst",
            category="Protein",
        ),
        generation_md=out("tables/protein_generation.md"),
        generation_tex=out("tables/protein_generation.tex"),
        optimisation=report(
            out("tables/protein_optimisation.csv"),
            caption="../report/protein.rst",
            category="Protein",
        ),
        optimisation_md=out("tables/protein_optimisation.md"),
        optimisation_tex=out("tables/protein_optimisation.tex"),
        figure6=report(
            out("figures/figure6.png"), caption="../report/figure6.rst", category="Protein"
        ),
    log:
        out("logs/protein_tables.log"),
    conda:
        "../envs/diled.yaml"
    script:
        "../scripts/protein_tables.py"
