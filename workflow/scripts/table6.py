"""Assemble Table 6 (CSV, Markdown, LaTeX) and Figure 3 from the per-(model, T) metric records (diled.report.tables)."""
from diled.report import figures, tables
from diled.snakemake_job import Job

job = Job(snakemake)
records = tables.load_records(snakemake.input.metrics)
manifests = tables.load_stage_manifests(snakemake.input.manifests)
df = tables.with_not_run(tables.table6(records, job.config["outdir"]))
scope = tables.scope(job.view)
out = snakemake.output
cost = tables.training_cost(manifests)
notes = [*tables.table6_notes(records, job.view), *tables.budget_note(cost), *tables.convergence_note(cost)]
tables.write_table6(df, notes, out.csv, out.md, out.tex, tables.table6_caption(records[0], scope), scope)
tables.write_kid_table(df, out.kid, records[0], scope)
figures.figure3(df, out.figure3, scope)
job.log("\n" + df[["model", "T", *tables.SHOWN]].to_string(index=False))
