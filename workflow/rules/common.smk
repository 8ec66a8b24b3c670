# Helpers shared by every rule module.
import json
import hashlib

MODELS = ["ddim", "diffae", "diled"]
STEPS = [int(s) for s in config["eval"]["sampling_steps"]]
OUT = config["outdir"]


wildcard_constraints:
    model="|".join(MODELS),
    steps=r"\d+",


def out(*parts):
    """Path under the configured output directory."""
    return os.path.join(OUT, *parts)


def run_dir(name, stage):
    """Resumable training state: keyed by everything that shapes the run, never a declared output."""
    keys = {k: config[k] for k in ("seed", "data", "image", "latent", "models", "device")}
    digest = hashlib.sha256(json.dumps([name, stage, keys], sort_keys=True).encode()).hexdigest()[:12]
    return out("runs", f"{name}-{stage}-{digest}")
