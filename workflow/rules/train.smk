# Each rule declares only the final checkpoint; resumable state lives in run_dir(...).


rule train_ddim:
    input:
        data=rules.prepare_data.output.data,
    output:
        model=out("models/ddim.pt"),
        manifest=out("models/ddim.json"),
    params:
        name="ddim",
        stage="train",
        run_dir=run_dir("ddim", "train"),
    threads: config["threads"]
    log:
        out("logs/train_ddim.log"),
    script:
        "../scripts/train.py"


rule train_diffae_autoencoder:
    input:
        data=rules.prepare_data.output.data,
    output:
        model=out("models/diffae_autoencoder.pt"),
        manifest=out("models/diffae_autoencoder.json"),
    params:
        name="diffae",
        stage="autoencoder",
        run_dir=run_dir("diffae", "autoencoder"),
    threads: config["threads"]
    log:
        out("logs/train_diffae_autoencoder.log"),
    script:
        "../scripts/train.py"


rule train_diffae_latent:
    input:
        data=rules.prepare_data.output.data,
        init=rules.train_diffae_autoencoder.output.model,
    output:
        model=out("models/diffae.pt"),
        manifest=out("models/diffae.json"),
    params:
        name="diffae",
        stage="latent",
        run_dir=run_dir("diffae", "latent"),
    threads: config["threads"]
    log:
        out("logs/train_diffae_latent.log"),
    script:
        "../scripts/train.py"


rule train_diled:
    input:
        data=rules.prepare_data.output.data,
        init=rules.train_diffae_latent.output.model,
    output:
        model=out("models/diled.pt"),
        manifest=out("models/diled.json"),
    params:
        name="diled",
        stage="train",
        run_dir=run_dir("diled", "train"),
    threads: config["threads"]
    log:
        out("logs/train_diled.log"),
    script:
        "../scripts/train.py"


rule train_diled_w:
    input:
        data=rules.prepare_data.output.data,
        init=rules.train_diffae_latent.output.model,
    output:
        model=out("models/diled_w{w}.pt"),
        manifest=out("models/diled_w{w}.json"),
    params:
        name="diled",
        stage="train",
        w=lambda wc: float(wc.w),
        run_dir=lambda wc: run_dir("diled", f"train-w{wc.w}"),
    threads: config["threads"]
    log:
        out("logs/train_diled_w{w}.log"),
    script:
        "../scripts/train.py"


rule train_ldm_autoencoder:
    input:
        data=rules.prepare_data.output.data,
        weights=rules.weights.output[0],  # the LPIPS backbone of the perceptual loss
    output:
        model=out("models/ldm_autoencoder.pt"),
        manifest=out("models/ldm_autoencoder.json"),
    params:
        name="ldm",
        stage="autoencoder",
        run_dir=run_dir("ldm", "autoencoder"),
    threads: config["threads"]
    log:
        out("logs/train_ldm_autoencoder.log"),
    script:
        "../scripts/train.py"


rule train_ldm_latent:
    input:
        data=rules.prepare_data.output.data,
        init=rules.train_ldm_autoencoder.output.model,
    output:
        model=out("models/ldm.pt"),
        manifest=out("models/ldm.json"),
    params:
        name="ldm",
        stage="latent",
        run_dir=run_dir("ldm", "latent"),
    threads: config["threads"]
    log:
        out("logs/train_ldm_latent.log"),
    script:
        "../scripts/train.py"


rule train_cmcd:
    input:
        data=rules.prepare_data.output.data,
        init=rules.train_ddim.output.model,  # the teacher
    output:
        model=out("models/cmcd.pt"),
        manifest=out("models/cmcd.json"),
    params:
        name="cmcd",
        stage="distill",
        run_dir=run_dir("cmcd", "distill"),
    threads: config["threads"]
    log:
        out("logs/train_cmcd.log"),
    script:
        "../scripts/train.py"
