"""Assemble Table 6 (CSV, Markdown, LaTeX) and Figure 3 from the per-(model, T) metric records."""
from diled import figures, tables
from diled.files import atomic_path
from diled.jobs import Job

job = Job(snakemake)
ldm, cm = job.config["models"]["ldm"], job.config["models"]["cmcd"]
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
    "Reconstruction: DDIM inverts x0 to x_T with T steps and decodes it; DiffAE and DiLED decode the encoder mean "
    "from a seeded random x_T (no inversion).",
    "Interpolation: pairs of reference images fixed by the seed; DiffAE/DiLED mix the semantic latents linearly and decode "
    "with one x_T shared across alphas; DDIM slerps the two inverted x_T.",
    f"LDM (two-stage, Rombach et al.): a KL autoencoder ({ldm['autoencoder_net']['latent_channels']}-channel latent at 1/"
    f"{2 ** (len(ldm['autoencoder_net']['mults']) - 1)} resolution; L1 + LPIPS-{ldm['perceptual']} perceptual loss "
    f"(weight {ldm['perceptual_weight']:g}) + KL weight {ldm['kl_weight']:g}, no adversarial term) trained first "
    f"({ldm['autoencoder']['steps']} steps), then a latent DDPM on its frozen, scaled means ({ldm['latent']['steps']} steps) "
    "sampled with T DDIM steps. Reconstruction and interpolation (linear mix of the two means) go through the autoencoder "
    "alone, so they do not depend on T. Its perceptual loss uses "
    + ("the same LPIPS network as the Rec LPIPS column, so that column is optimistic for LDM." if ldm["perceptual"] == "alex"
       else "another LPIPS network than the Rec LPIPS column (AlexNet)."),
    f"CM-CD: consistency distillation of the DDIM row's model ({cm['train']['steps']} steps, {cm['grid']}-point teacher "
    f"DDIM grid, EMA target {cm['train']['ema_decay']}, L2 distance); T is its number of consistency steps (2-step generation "
    f"re-noises to t = {cm['intermediate_ts'][0]}). Reconstruction: the real image noised to t = {cm['encode_t']} with a "
    "seeded noise, then the consistency function; interpolation linearly mixes the two noised inputs before it. The "
    "official script had its mixing line commented out, so the paper's CM-CD interpolation columns were plain "
    "reconstructions; here the mixing is applied.",
    "DiLED starts from the trained DiffAE (encoder, decoder, latent net and standardization) and adds "
    f"{job.config['models']['diled']['train']['steps']} joint fine-tuning steps (w = {job.config['models']['diled']['w']}); "
    "its difference from DiffAE includes those extra steps, as in the paper's protocol.",
    "Each row's `manifest` is its metric record: protocol, counts, training info, and the job manifest "
    "(config hash, git commit, package versions, hardware, seed, wall time).",
]
with atomic_path(snakemake.output.csv) as tmp:
    df.to_csv(tmp, index=False)
with atomic_path(snakemake.output.md) as tmp:
    tmp.write_text(tables.to_markdown(df, notes))
caption = (f"Embedded reproduction of Table 6 ({first['counts']['gen']} images per FID set vs {first['reference_count']} "
           f"reference images, protocol {first['protocol']['name']}:{first['protocol']['digest']}).")
with atomic_path(snakemake.output.tex) as tmp:
    tmp.write_text(tables.to_latex(df, caption))
figures.figure3(df, snakemake.output.figure3)
job.log("\n" + df.to_string(index=False))
