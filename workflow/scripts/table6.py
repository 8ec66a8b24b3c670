"""Assemble Table 6 (CSV, Markdown, LaTeX) and Figure 3 from the per-(model, T) metric records."""
from diled import figures, registry, tables
from diled.snakemake_job import Job

job = Job(snakemake)
cfg = job.view
records = tables.load_records(snakemake.input)
df = tables.with_not_run(tables.table6(records, job.config["outdir"]))
first = records[0]
notes = [
    f"FID protocol `{first['protocol']['name']}` (digest `{first['protocol']['digest']}`): {first['protocol']['resize_definition']}; "
    f"{first['protocol']['feature']}; quantization {first['protocol']['quantization_definition']}; reference statistics "
    f"{first['protocol']['reference']} from the {first['protocol']['reference_set']} set; {first['protocol']['precision']}.",
    f"Each FID compares {first['counts']['gen']} images with {first['reference_count']} held-out reference digits "
    "(small-sample FID is biased upward; compare rows, not with published numbers).",
    f"Reconstruction metrics: {first['recon_definition']}; DiffAE's conventions (PSNR per image, then averaged; SSIM "
    "from pytorch_msssim, window 11, sigma 1.5).",
    "T is the number of DDIM steps (eta = 0) of every chain a model runs: latent and pixel chains alike.",
    "Reconstruction protocols (both reported): `random` decodes the encoder mean from a seeded random x_T (the paper's "
    "reconstruction_bs.py); `inverted` first finds x_T by DDIM inversion of x0 conditioned on z (DiffAE's stochastic "
    "encoding, ..._withxT.py), so x_T carries what z does not. DiffAE and DiLED are scored under both. DDIM's only "
    "reconstruction is the inverted one (its code is x_T); LDM's decoder is deterministic, so one reconstruction fills both; "
    "CM-CD's is its seeded noising (random column).",
    f"Interpolation: pairs of reference images fixed by the seed; DiffAE/DiLED mix the semantic latents linearly and decode "
    f"with {'one seeded x_T shared across alphas' if cfg['eval'].get('interp_protocol', 'random') == 'random' else 'the slerp of the two inverted x_T'} "
    f"(eval.interp_protocol: {cfg['eval'].get('interp_protocol', 'random')}); DDIM mixes the two inverted x_T by "
    f"{cfg['models'].get('ddim', {}).get('interpolation', 'slerp')} (models.ddim.interpolation; the official script lerps).",
    "Intervals: FID's is a 95% bootstrap over the generated set with the reference fixed "
    f"({first.get('fid_interval', {}).get('gen', {}).get('n_boot', 'no')} replicates; the spread re-centred on the point, "
    "since resampling inflates FID's small-N bias); LPIPS/SSIM: mean ± 1.96 standard errors over images.",
    *[spec.note.format(**cfg) for spec in registry.models("image", config=cfg) if spec.note],
    tables.precision_note(records),
    "Each row's `manifest` is its metric record: protocol, counts, training info, and the job manifest "
    "(config hash, git commit, package versions, hardware, seed, wall time).",
]
scope = tables.scope(job.view)
caption = (f"Table 6, {scope} ({first['counts']['gen']} images per FID set vs {first['reference_count']} "
           f"reference images, protocol {first['protocol']['name']}:{first['protocol']['digest']}).")
tables.write_table6(df, notes, snakemake.output.csv, snakemake.output.md, snakemake.output.tex, caption, scope)
tables.write_kid_table(df, snakemake.output.kid, first, scope)
figures.figure3(df, snakemake.output.figure3, scope)
job.log("\n" + df[["model", "T", *tables.SHOWN]].to_string(index=False))
