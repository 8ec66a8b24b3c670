# The DiLED suite's workflow: `snakemake --cores 8 all` from the repository root finds this file.
# The rules live in workflow/ (Snakefile, rules/*.smk, scripts/); this file only includes them.
include: "workflow/Snakefile"
