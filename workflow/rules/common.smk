# Helpers shared by every rule module.
import json
import hashlib
import re

MODELS = ["ddim", "diffae", "diled", "ldm", "cmcd"]  # Table 6 rows, in order
REPRESENTED = ["ddim", "diffae", "diled", "ldm"]  # models with a representation (CM-CD has no encoder)
EDITED = ["diffae", "diled", "ldm"]  # models with a semantic latent to edit
STEPS = [int(s) for s in config["eval"]["sampling_steps"]]
OUT = config["outdir"]


def w_model(w):
    """Model name of DiLED trained with weight w: the main run for the configured w, else diled_w<w>."""
    return "diled" if float(w) == float(config["models"]["diled"]["w"]) else f"diled_w{float(w):g}"


W_MODELS = [w_model(w) for w in config["w_ablation"]["w"]]
ABLATION_ONLY = [m for m in W_MODELS if m not in MODELS]


def model_steps(model):
    """Sampling steps a model is evaluated at: consistency steps for CM-CD, the w-ablation's T for w variants."""
    if model == "cmcd":
        return [int(s) for s in config["models"]["cmcd"]["steps"]]
    if model in ABLATION_ONLY:
        return [int(config["w_ablation"]["steps"])]
    return STEPS


wildcard_constraints:
    model="|".join(re.escape(m) for m in MODELS + ABLATION_ONLY),
    steps=r"\d+",
    setting=r"[a-z0-9-]+",
    w=r"[0-9.]+",


def out(*parts):
    """Path under the configured output directory."""
    return os.path.join(OUT, *parts)


def run_dir(name, stage):
    """Resumable training state, never a declared output: keyed by the config that shapes this model's
    training (pipeline.stage_config), so editing one model's section reruns that model and its dependants only."""
    from diled.pipeline import stage_config

    digest = hashlib.sha256(json.dumps([name, stage, stage_config(config, name)], sort_keys=True).encode()).hexdigest()[:12]
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
    from baselines.cm import schedule_problems

    cm = cfg["models"]["cmcd"]
    problems += [f"models.cmcd: {p}" for p in schedule_problems(cfg["image"]["pixel_T"], cm["encode_t"], cm["intermediate_ts"], cm["steps"])]
    if cm["grid"] > cfg["image"]["pixel_T"]:
        problems.append(f"models.cmcd.grid ({cm['grid']}) exceeds image.pixel_T ({cfg['image']['pixel_T']})")
    ldm_levels = len(cfg["models"]["ldm"]["autoencoder_net"]["mults"])
    latent_size = cfg["image"]["size"] // 2 ** (ldm_levels - 1)
    if cfg["image"]["size"] % 2 ** (ldm_levels - 1) or latent_size % 2 ** (len(cfg["models"]["ldm"]["unet"]["mults"]) - 1):
        problems.append(f"models.ldm: a {cfg['image']['size']} px image with {ldm_levels} autoencoder levels gives a {latent_size} px latent "
                        f"that the latent UNet ({len(cfg['models']['ldm']['unet']['mults'])} levels) cannot halve evenly")
    if cfg["w_ablation"]["steps"] not in cfg["eval"]["sampling_steps"]:
        problems.append(f"w_ablation.steps ({cfg['w_ablation']['steps']}) must be one of eval.sampling_steps {cfg['eval']['sampling_steps']} "
                        "(the configured w's row comes from the main DiLED run)")
    if float(cfg["models"]["diled"]["w"]) not in [float(w) for w in cfg["w_ablation"]["w"]]:
        problems.append(f"w_ablation.w {cfg['w_ablation']['w']} must include models.diled.w ({cfg['models']['diled']['w']})")
    n_levels = len(cfg["image"]["unet"]["mults"])
    if cfg["image"]["size"] % 2 ** (n_levels - 1):
        problems.append(f"image.size {cfg['image']['size']} is not divisible by 2^{n_levels - 1} (unet.mults)")
    if problems:
        raise ValueError("invalid configuration:\n  - " + "\n  - ".join(problems))


check_config(config)
