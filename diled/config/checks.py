"""The checks the schema cannot express: per track, per model (torch-free hooks the registry names), the device."""

from __future__ import annotations

import json
import math
import os
import reprlib
from collections.abc import Sequence
from pathlib import Path

from diled import registry
from diled.config.resolve import full_schema, resolve_models
from diled.config.views import analyses, track_view, tracks

TREE_LIMIT = 100_000  # values a config may hold once its YAML aliases are expanded (the largest shipped one holds a few thousand)
_EXCERPT = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_EXCERPT.maxlevel, _EXCERPT.maxdict, _EXCERPT.maxlist, _EXCERPT.maxtuple = 2, 4, 4, 4
_EXCERPT.maxstring = _EXCERPT.maxother = _EXCERPT.maxlong = 40


def excerpt(value: object, limit: int = 80) -> str:
    """A short, bounded rendering of a config value for an error line: a scalar as JSON, a container through ``reprlib``
    (which never walks a whole huge value)."""
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) and not isinstance(value, str) or \
        isinstance(value, str) and len(value) <= limit else _EXCERPT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tree_problems(config: object, limit: int = TREE_LIMIT) -> list[str]:
    """Problems a walk of the whole config finds, before anything else walks it: a number that is NaN or infinite
    (``lr: .nan`` would otherwise fail deep inside training), and a config that expands past ``limit`` values (a YAML
    alias bomb: its aliases share objects, so loading it is cheap and every walk after it is not). Iterative and
    stopped at the limit, so it costs at most ``limit`` steps."""
    found, seen = [], 0
    stack: list[tuple[tuple[str, ...], object]] = [((), config)]
    while stack:
        path, node = stack.pop()
        seen += 1
        if seen > limit:
            return [f"the configuration expands to more than {limit:,} values (YAML anchors and aliases nested into a bomb?): "
                    "refused before any check walks it"]
        if isinstance(node, dict):
            stack.extend(((*path, str(k)), v) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend(((*path, str(i)), v) for i, v in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            found.append(f"{'.'.join(path) or '(top level)'} = {node}: not a finite number (NaN and infinities are refused everywhere)")
    return sorted(found)


def schema_problems(config: dict, schema_path: str | Path) -> list[str]:
    """Schema violations as one short line each: the key's path, the value and what is allowed.

    (Snakemake's ``validate`` reports the same errors followed by the whole sub-schema: hundreds of lines.)
    """
    import jsonschema

    schema = full_schema(schema_path)
    validator = jsonschema.validators.validator_for(schema)(schema)
    out = []
    for err in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            extra = sorted(set(err.instance) - set(allowed))
            out.append(f"{where}: unknown key(s) {extra}; allowed here: {allowed}")
        elif err.validator == "required":
            out.append(f"{where}: {err.message}")
        else:
            message = err.message if len(err.message) <= 200 else f"fails its {err.validator!r} rule ({excerpt(err.validator_value)})"
            out.append(f"{where} = {excerpt(err.instance)}: {message}")
    return out


def protocol_problems(view: dict) -> list[str]:
    """FID protocol names and parameters the evaluation rules will construct (checked before any job)."""
    from diled.metrics.protocols import get_protocol  # torch-free

    try:
        get_protocol(view["eval"]["fid"]["protocol"])
    except ValueError as exc:
        return [f"eval.fid.protocol: {exc}"]
    return []  # the FID-settings rows' parameters (downscale >= 8, num_samples >= 4) are bounded by the schema


def schedule_problems(T: int, encode_t: int, intermediate_ts: Sequence[int], steps: Sequence[int] = ()) -> list[str]:
    """What is wrong with a consistency sampling schedule (empty when nothing is); ``steps``: the step counts to run."""
    problems = []
    bad = [t for t in [encode_t, *intermediate_ts] if not 1 <= t < T]
    if bad:
        problems.append(f"consistency times {bad} must lie in 1..{T - 1}")
    if list(intermediate_ts) != sorted(set(intermediate_ts), reverse=True):
        problems.append(f"intermediate_ts must be distinct and descending, got {list(intermediate_ts)}")
    for label, start in (("generation", T), ("reconstruction", encode_t)):
        n_below = len([t for t in intermediate_ts if t < start])
        if steps and max(steps) > 1 + n_below:
            problems.append(f"steps {list(steps)}: {label} from t={start} has only {n_below} intermediate_ts below it")
    return problems


def cmcd_problems(view: dict) -> list[str]:
    """CM-CD's schedule against the teacher's chain."""
    cm, T = view["models"]["cmcd"], view["net"]["pixel_T"]
    problems = [f"models.cmcd: {p}" for p in schedule_problems(T, cm["encode_t"], cm["intermediate_ts"], cm["steps"])]
    if cm["grid"] > T:
        problems.append(f"models.cmcd.grid ({cm['grid']}) exceeds net.pixel_T ({T})")
    return problems


def ldm_problems(view: dict) -> list[str]:
    """LDM's latent must be halvable by its latent UNet."""
    net, m = view["net"], view["models"]["ldm"]
    levels = len(m["autoencoder_net"]["mults"])
    latent_size = net["size"] // 2 ** (levels - 1)
    if net["size"] % 2 ** (levels - 1) or latent_size % 2 ** (len(m["unet"]["mults"]) - 1):
        return [f"models.ldm: a {net['size']} px image with {levels} autoencoder levels gives a {latent_size} px latent "
                f"that the latent UNet ({len(m['unet']['mults'])} levels) cannot halve evenly"]
    return []


def control_problems(view: dict) -> list[str]:
    """DiffAE + FT is DiLED's control only while it trains on DiLED's fine-tuning schedule."""
    models = view["models"]
    if "diled" in models and models["diffae_ft"].get("train") != models["diled"].get("train"):
        return [f"models.diffae_ft.train ({models['diffae_ft'].get('train')}) must equal models.diled.train "
                f"({models['diled'].get('train')}): the control trains for DiLED's extra steps (a YAML anchor keeps them equal)"]
    return []


def image_problems(view: dict) -> list[str]:
    """Cross-field checks of the image track (its models' own hooks run after these)."""
    problems = protocol_problems(view)
    net, ev = view["net"], view["eval"]
    t_max = min(net["pixel_T"], view["latent"]["T"])
    bad_steps = [s for s in ev["sampling_steps"] if s > t_max]
    if bad_steps:
        problems.append(f"eval.sampling_steps {bad_steps} exceed the number of training timesteps ({t_max})")
    if ev["num_samples"] > view["data"]["reference_size"]:
        problems.append(f"eval.num_samples ({ev['num_samples']}) exceeds data.reference_size "
                        f"({view['data']['reference_size']}): reconstructions are drawn from the reference set")
    fs = view["fid_settings"]
    if fs["steps"] > t_max:
        problems.append(f"fid_settings.steps ({fs['steps']}) exceeds the number of training timesteps ({t_max})")
    if fs["adm_reference"] and not fs["adm_reference_sha256"]:
        problems.append(f"fid_settings.adm_reference is set ({fs['adm_reference']}) but adm_reference_sha256 is not: "
                        "pin the file you downloaded (sha256sum it once) so every score names its exact reference")
    for key in ("images", "reference_images", "alternate_reference_images", "adm_reference"):
        if fs[key] and not os.path.exists(fs[key]):
            problems.append(f"fid_settings.{key}: {fs[key]} does not exist")
    if fs["model"] not in registry.names("image", "generate", view):
        problems.append(f"fid_settings.model {fs['model']!r} is not a generating image model of this config")
    if view["probe"]["ddim_steps"] > t_max:
        problems.append(f"probe.ddim_steps ({view['probe']['ddim_steps']}) exceeds the number of training timesteps ({t_max})")
    data, wanted = view["data"], analyses(view)
    if data["dataset"] == "mnist32":
        from diled.modalities.image import mnist  # numpy only: the size of the embedded set

        if data["reference_size"] > mnist.TOTAL - 10:
            problems.append(f"data.reference_size ({data['reference_size']}) leaves too few of the {mnist.TOTAL} embedded digits to train on")
        n_train = mnist.TOTAL - data["reference_size"]
        if "probe" in wanted and view["probe"]["train_size"] > n_train:
            problems.append(f"probe.train_size ({view['probe']['train_size']}) exceeds the training split ({n_train} images)")
    else:
        if not data.get("root"):
            problems.append(f"data.root: a {data['dataset']} dataset needs the path of your copy (see config/README.md, 'Paper-scale data')")
        elif not os.path.exists(data["root"]):
            problems.append(f"data.root: {data['root']} does not exist (your copy of the {data['dataset']} dataset; see config/README.md, "
                            "'Paper-scale data')")
        if data["dataset"] == "lmdb" and not data.get("layout"):
            problems.append("data.layout: an lmdb dataset needs DiffAE's layout (ffhq, lsun or celeba)")
        if net["channels"] != 3:
            problems.append(f"net.channels ({net['channels']}): photo datasets are RGB (3)")
        unlabelled = sorted(set(wanted) & {"probe", "editing"})
        if unlabelled:
            problems.append(f"analyses {unlabelled} need class labels, which {data['dataset']} images lack: leave them out of image.analyses")
    if "editing" in wanted and view["editing"]["num_edits"] > data["reference_size"]:
        problems.append(f"editing.num_edits ({view['editing']['num_edits']}) exceeds data.reference_size ({data['reference_size']})")
    for name in ("ddim", "diffae"):
        released = (view["models"].get(name) or {}).get("released")
        if not released:
            continue
        if net.get("arch", "suite") != "diffae":
            problems.append(f"models.{name}.released: a DiffAE checkpoint needs net.arch: diffae (its networks)")
        if not os.path.isfile(released["path"]):
            problems.append(f"models.{name}.released.path: {released['path']} does not exist (DiffAE's README links each last.ckpt)")
        elif not released.get("sha256"):
            from diled.fileio import sha256_file

            problems.append(f"models.{name}.released.sha256: not pinned. The sha256 of {released['path']} is "
                            f"{sha256_file(released['path'])}; once you trust the file, set it, so every result names the exact weights")
    if net.get("arch", "suite") == "diffae":
        d = net.get("diffae")
        if d is None:
            problems.append("net.diffae: net.arch diffae needs the network's shape (ch, mults, encoder_mults)")
        elif net["size"] % 2 ** (len(d["encoder_mults"]) - 1):
            problems.append(f"net.size {net['size']} is not divisible by 2^{len(d['encoder_mults']) - 1} (net.diffae.encoder_mults)")
    if view["editing"]["steps"] > t_max:
        problems.append(f"editing.steps ({view['editing']['steps']}) exceeds the number of training timesteps ({t_max})")
    if "diled" in view["models"] and net["pixel_T"] != view["latent"]["T"]:
        problems.append(f"net.pixel_T ({net['pixel_T']}) must equal latent.T ({view['latent']['T']}): DiLED's image "
                        "objective draws one t for its pixel and latent chains")
    if "diled" in view["models"] and "w_ablation" in wanted:
        if view["w_ablation"]["steps"] not in ev["sampling_steps"]:
            problems.append(f"w_ablation.steps ({view['w_ablation']['steps']}) must be one of eval.sampling_steps {ev['sampling_steps']} "
                            "(the configured w's row comes from the main DiLED run)")
        if float(view["models"]["diled"]["w"]) not in [float(w) for w in view["w_ablation"]["w"]]:
            problems.append(f"w_ablation.w {view['w_ablation']['w']} must include models.diled.w ({view['models']['diled']['w']})")
    if view["data"]["dataset"] == "mnist32" and (net["channels"], net["size"]) != (1, 32):
        problems.append(f"net.channels/size ({net['channels']}, {net['size']}): mnist32 holds 1-channel 32 px images")
    n_levels = len(net["unet"]["mults"])
    if net.get("arch", "suite") == "suite" and net["size"] % 2 ** (n_levels - 1):
        problems.append(f"net.size {net['size']} is not divisible by 2^{n_levels - 1} (unet.mults)")
    return problems


def protein_problems(view: dict) -> list[str]:
    """Cross-field checks of the protein track."""
    from diled.modalities.protein import data as protein

    problems = []
    net, data = view["net"], view["data"]
    if net["length"] != protein.LENGTHS[data["dataset"]]:
        problems.append(f"net.length ({net['length']}) must be {protein.LENGTHS[data['dataset']]} for {data['dataset']}")
    if net["dim"] % net["heads"]:
        problems.append(f"net.dim ({net['dim']}) must be divisible by net.heads ({net['heads']})")
    if view["eval"]["judge"]["dim"] % view["eval"]["judge"]["heads"]:
        problems.append("eval.judge.dim must be divisible by eval.judge.heads")
    if view["optimisation"]["pool"] is not None and view["optimisation"]["pool"] <= view["optimisation"]["hill_k"]:
        problems.append(f"optimisation.pool ({view['optimisation']['pool']}) must exceed optimisation.hill_k ({view['optimisation']['hill_k']})")
    root = protein.resolve_root(data["root"])
    if not root.is_dir():
        problems.append(f"data.root: {root} does not exist (the protein source files; see config/README.md), "
                        "or run without the protein track: --config 'tracks=[image]'")
    return problems


def text_problems(view: dict) -> list[str]:
    """Text-track checks the schema cannot express."""
    problems = []
    dec, tok = view["net"]["decoder"], view["data"]["tokenizer"]
    if dec.get("pretrained") and tok.get("kind") != "gpt2":
        problems.append(f"net.decoder.pretrained ({dec['pretrained']}) needs data.tokenizer.kind: gpt2 (OpenAI's weights read "
                        "GPT-2's own token ids)")
    return problems


TRACK_CHECKS = {"image": image_problems, "protein": protein_problems, "text": text_problems}


def problems(config: dict) -> list[str]:
    """Every cross-field problem of a config: per track, then each configured model's own hook.

    The device is checked apart (``check_device``): only where and when jobs are about to run.
    """
    out = []
    for track in tracks(config):
        view = track_view(config, track)
        unknown = sorted(set(view.get("models", {})) - set(registry.names(track)))
        if unknown:
            out.append(f"{track}.models: no registered model {unknown}; registered: {registry.names(track)}")
            continue
        out += [f"{track}: {p}" for p in TRACK_CHECKS.get(track, lambda v: [])(view)]
        for spec in registry.models(track, config=view):
            if spec.checks:
                out += [f"{track}: {p}" for p in registry.load_object(spec.checks)(view)]
    return out


def device_problems(config: dict) -> list[str]:
    """Whether this machine has the configured device (imports torch only when one must be looked for)."""
    if config.get("device", "auto") in ("auto", "cpu"):
        return []
    from diled.hardware import device_problem

    found = device_problem(config["device"])
    return [f"device: {found}"] if found else []


def check_device(config: dict) -> None:
    """Raise a ValueError naming the configured device when this machine cannot run it."""
    if found := device_problems(config):
        raise ValueError("invalid configuration:\n  - " + "\n  - ".join(found))


def check(config: dict, schema_path: str | Path | None = None) -> None:
    """Resolve the models (``resolve_models``), then raise one ValueError listing every problem (before any job
    runs): the whole tree first (size, finite numbers: ``tree_problems``), then the schema, then cross-field."""
    found = tree_problems(config)
    if found:
        raise ValueError("invalid configuration:\n  - " + "\n  - ".join(found[:20]))
    resolve_models(config)
    found = schema_problems(config, schema_path) if schema_path else []
    if not found:
        found = problems(config)
    if found:
        raise ValueError("invalid configuration:\n  - " + "\n  - ".join(found[:20]) +
                         (f"\n  ... and {len(found) - 20} more" if len(found) > 20 else ""))
