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
