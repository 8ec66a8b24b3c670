"""Track views (a track's resolved section with the global keys), the tracks that run, and run-directory keys."""

from __future__ import annotations

import hashlib
import json

from diled import registry

GLOBAL_KEYS = ("outdir", "seed", "device", "threads")  # merged into every track view ("tracks", "plugins" are not)
LABELLED_IMAGE_DATASETS = ("mnist32",)  # image datasets with digit classes: the digit judge, probe and editing need them


def image_labelled(view: dict) -> bool:
    """Whether the image view's dataset has class labels (torch-free: the DAG asks before any job runs)."""
    return view["data"]["dataset"] in LABELLED_IMAGE_DATASETS


def track_view(config: dict, track: str) -> dict:
    """The track's section with the global keys merged in (what builders, trainers and scripts read)."""
    if track not in config:
        raise KeyError(f"the config has no {track!r} section")
    return {**config[track], **{k: config[k] for k in GLOBAL_KEYS}}


def tracks(config: dict) -> list[str]:
    """The tracks the config runs, in the registry's order: those with a section, narrowed by ``tracks`` when set."""
    wanted = config.get("tracks") or registry.TRACKS
    return [t for t in registry.TRACKS if t in config and t in wanted]


def stage_config(view: dict, track: str, name: str) -> dict:
    """The part of a track view that shapes a model's training, and nothing else.

    The workflow keys each run directory (and so Snakemake's rerun decision) by this: changing
    ``models.cmcd`` re-distills CM-CD but leaves the DDIM teacher, DiffAE, DiLED and LDM runs alone.
    """
    spec = registry.resolve(track, name, view).spec
    keys = {k: view[k] for k in ("seed", "device", *spec.reads)}
    keys["models"] = {m: view["models"][m] for m in registry.trained_from(spec)}
    return keys


def run_key(view: dict, track: str, name: str, stage: str) -> str:
    """A short digest of (model, stage, the config that shapes it): the run directory's name suffix."""
    blob = json.dumps([name, stage, stage_config(view, track, name)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def text_judges_key(view: dict) -> str:
    """The text judges' run-directory key: the data and judge sections that shape the reference LM."""
    blob = json.dumps([view["seed"], view["data"], view["net"]["encoder"], view["judges"]], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


ANALYSES = ("figure3", "probe", "editing", "w_ablation", "latent_health", "fid_settings")


def analyses(view: dict) -> list[str]:
    """The image track's analyses beyond Table 6 that ``all`` builds (``image.analyses``; default every one)."""
    return list(view.get("analyses", ANALYSES))
