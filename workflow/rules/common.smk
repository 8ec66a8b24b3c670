# Helpers shared by every rule module.
import json
import hashlib

MODELS = ["ddim", "diffae", "diled"]
STEPS = [int(s) for s in config["eval"]["sampling_steps"]]
OUT = config["outdir"]


wildcard_constraints:
    model="|".join(MODELS),
    steps=r"\d+",
    setting=r"[a-z0-9-]+",


def out(*parts):
    """Path under the configured output directory."""
    return os.path.join(OUT, *parts)


def run_dir(name, stage):
    """Resumable training state: keyed by everything that shapes the run, never a declared output."""
    keys = {k: config[k] for k in ("seed", "data", "image", "latent", "models", "device")}
    digest = hashlib.sha256(json.dumps([name, stage, keys], sort_keys=True).encode()).hexdigest()[:12]
    return out("runs", f"{name}-{stage}-{digest}")


def check_config(cfg):
    """Cross-field checks the schema cannot express; fail before any job runs."""
    problems = []
    t_max = min(cfg["image"]["pixel_T"], cfg["latent"]["T"])
    bad_steps = [s for s in cfg["eval"]["sampling_steps"] if s > t_max]
    if bad_steps:
        problems.append(f"eval.sampling_steps {bad_steps} exceed the number of training timesteps ({t_max})")
    if cfg["eval"]["num_samples"] > cfg["data"]["reference_size"]:
        problems.append(
            f"eval.num_samples ({cfg['eval']['num_samples']}) exceeds data.reference_size "
            f"({cfg['data']['reference_size']}): reconstructions are drawn from the reference set"
        )
    fs = cfg["fid_settings"]
    if fs["steps"] > t_max:
        problems.append(f"fid_settings.steps ({fs['steps']}) exceeds the number of training timesteps ({t_max})")
    if fs["adm_reference"] and not fs["adm_reference_sha256"]:
        problems.append(
            f"fid_settings.adm_reference is set ({fs['adm_reference']}) but adm_reference_sha256 is not: "
            "pin the file you downloaded (sha256sum it once) so every score names its exact reference"
        )
    for key in ("images", "reference_images", "alternate_reference_images", "adm_reference"):
        if fs[key] and not os.path.exists(fs[key]):
            problems.append(f"fid_settings.{key}: {fs[key]} does not exist")
    if cfg["probe"]["ddim_steps"] > t_max:
        problems.append(f"probe.ddim_steps ({cfg['probe']['ddim_steps']}) exceeds the number of training timesteps ({t_max})")
    n_train = 5000 - cfg["data"]["reference_size"]  # the embedded data: 5,000 digits
    if cfg["probe"]["train_size"] > n_train:
        problems.append(f"probe.train_size ({cfg['probe']['train_size']}) exceeds the training split ({n_train} images)")
    if cfg["editing"]["num_edits"] > cfg["data"]["reference_size"]:
        problems.append(f"editing.num_edits ({cfg['editing']['num_edits']}) exceeds data.reference_size ({cfg['data']['reference_size']})")
    if cfg["editing"]["steps"] > t_max:
        problems.append(f"editing.steps ({cfg['editing']['steps']}) exceeds the number of training timesteps ({t_max})")
    n_levels = len(cfg["image"]["unet"]["mults"])
    if cfg["image"]["size"] % 2 ** (n_levels - 1):
        problems.append(f"image.size {cfg['image']['size']} is not divisible by 2^{n_levels - 1} (unet.mults)")
    if problems:
        raise ValueError("invalid configuration:\n  - " + "\n  - ".join(problems))


check_config(config)
