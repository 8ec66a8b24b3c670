"""The configuration: per-track views, the checks the schema cannot express, and run-directory keys.

The config has global keys (``outdir``, ``seed``, ``device``, ``threads``, ``plugins``, ``model_dirs``)
and one section per track (``image``, ``text``, ``protein``). A track section names the models that run
(``models: [ddim, diled]``; absent: every model of the catalogue) and overrides their settings under
``model_settings.<name>``; ``resolve_models`` turns the two into ``models: {name: section}``, each
section the model's file defaults (``config/models/<track>/<name>.yaml``) with the user's values merged
over. Code that runs one track reads a *track view*: the resolved section with the global keys merged
in. No torch here: Snakemake imports this module when it parses the DAG.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from diled import registry

GLOBAL_KEYS = ("outdir", "seed", "device", "threads")  # merged into every track view ("tracks", "plugins" are not)

# glibc's malloc hands every block over 32 MiB (and, below that, freed heap tops) back to the kernel, so each CPU
# forward pass page-faults freshly zeroed memory: 22% of FID extraction's CPU time was system time. Keeping freed
# memory in the process removes it (150 digits, stock + ours, one thread: sys 28.8 s -> 1.7 s, wall 135 -> 103 s).
# The Snakefile sets these for every job it starts; a value already in the environment wins. Other allocators ignore them.
JOB_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**32), "MALLOC_TRIM_THRESHOLD_": str(2**36), "MALLOC_TOP_PAD_": str(2**28)}


def set_job_env(environ: dict | None = None) -> dict[str, str]:
    """Put ``JOB_ENV`` into ``environ`` (``os.environ``) where not already set; what the jobs will see."""
    environ = os.environ if environ is None else environ
    for key, value in JOB_ENV.items():
        environ.setdefault(key, value)
    return {key: environ[key] for key in JOB_ENV}


def niceness(table: dict[str, int] | None, track: str | None, model: str | None = None, stage: str | None = None) -> int:
    """The niceness of one job: the most specific of ``track/model/stage``, ``track/model``, ``track``, ``default``.

    Why: ``snakemake --cores 8`` on a 2-core machine runs eight jobs on two cores, and the kernel shares them
    equally, so the image track's longest chain (the DiffAE autoencoder stage, then everything fine-tuned
    from it) ran at a quarter of a core while short jobs that nothing waits for ran beside it. Niceness lets
    the long chain take the cores first; the total work is unchanged. On a cluster (one job per allocation)
    it changes nothing.
    """
    table = table or {}
    return most_specific(table, track, model, stage, int(table.get("default", 0)))


def most_specific(table: dict[str, int] | None, track: str | None, model: str | None, stage: str | None, default: int) -> int:
    """The value of the most specific key of ``track/model/stage``, ``track/model``, ``track`` in ``table``, else ``default``."""
    table = table or {}
    parts = list(itertools.takewhile(lambda part: part is not None, (track, model, stage)))
    for n in range(len(parts), 0, -1):  # most specific first
        key = "/".join(parts[:n])
        if key in table:
            return int(table[key])
    return default


def job_threads(config: dict, track: str, model: str | None = None, stage: str | None = None) -> int:
    """Torch threads (and Snakemake cores) of one training job: ``threads``, or the most specific ``stage_threads`` entry.

    Why: a chain that nothing runs beside (the text track's shared autoencoder) would leave a core idle at one thread."""
    return most_specific(config.get("stage_threads"), track, model, stage, int(config["threads"]))


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


# ----------------------------------------------------------------------------- checks


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
            out.append(f"{where} = {json.dumps(err.instance, default=str)[:80]}: {err.message}")
    return out


def merge(base: Mapping, over: Mapping) -> dict:
    """``over`` merged into ``base`` recursively (mappings merge, anything else replaces), as Snakemake does."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def defaulted(config: Mapping, user: Mapping, default_name: str = "config/config.yaml") -> list[str]:
    """Which values of a merged config the user never set: one line per section they did set.

    Snakemake merges ``--configfile`` files over the workflow's default, so a key left out silently
    takes the default's value. For every mapping the user wrote, the keys it lacks are listed, with the
    file they come from (a model's settings: its own ``config/models/<track>/<name>.yaml``); a top-level
    key the user never wrote at all is listed once.
    """
    lines = []

    preset = user.get("model_preset")

    def source(path: list[str]) -> str:
        if len(path) >= 3 and path[0] in registry.TRACKS and path[1] == "models":
            try:
                spec = registry.get(path[0], path[2])
            except KeyError:
                return default_name
            return _relative(spec.source) + (f" (presets.{preset})" if preset in (spec.presets or {}) else "")
        if len(path) == 2 and path[0] in registry.TRACKS and path[1] == "models":
            return f"{_relative(registry.CATALOGUE)}/{path[0]}/<name>.yaml" + (f" (presets.{preset})" if preset else "")
        return default_name

    def walk(merged: Mapping, mine: Mapping, path: list[str]) -> None:
        missing = [k for k in merged if k not in mine]
        if missing:
            shown = [p if (i != 1 or p != "models" or path[0] not in registry.TRACKS) else "model_settings"
                     for i, p in enumerate(path)]
            where = f"{'.'.join(shown)}: " if path else ""
            lines.append(f"{where}{', '.join(map(str, missing))} not set, using the default from {source(path)}")
        for k in merged:
            if k in mine and isinstance(merged[k], Mapping) and isinstance(mine[k], Mapping):
                walk(merged[k], mine[k], [*path, str(k)])

    mine = {k: dict(v) if isinstance(v, Mapping) else v for k, v in user.items()}
    for track in registry.TRACKS:  # a resolved models section is the user's model_settings over the model's file
        if isinstance(mine.get(track), dict) and isinstance(config.get(track), Mapping):
            mine[track]["models"] = dict(mine[track].pop("model_settings", None) or {})
    walk(config, mine, [])
    return lines


def _relative(path: str | Path) -> str:
    """A path inside the repository as the README names it (``config/models/image/ldm.yaml``)."""
    root = registry.CATALOGUE.parent.parent
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)


def user_config(files: Sequence[str | Path], overrides: Mapping) -> dict:
    """What the user wrote: their ``--configfile`` files merged in order, then ``--config`` overrides."""
    import yaml

    mine: dict = {}
    for f in files:
        mine = merge(mine, yaml.safe_load(Path(f).read_text()) or {})
    return merge(mine, overrides)


def resolve_models(config: dict) -> None:
    """Turn each track's ``models`` (names) and ``model_settings`` (overrides) into ``models: {name: section}``, in place.

    A section is the model's file defaults, then its ``presets.<model_preset>`` where the config names a
    preset and the file has it, then its ``model_settings`` entry, each merged over the last (mappings
    merge, anything else replaces, as Snakemake merges config files). Settings of a model the track does not run
    are allowed (one file can serve narrowed runs); of a model nobody registered, not. Raises a ValueError
    naming every problem.
    """
    registry.load_plugins(config.get("plugins") or [])
    for folder in config.get("model_dirs") or []:
        registry.load_catalogue(folder)
    preset = config.pop("model_preset", None)  # consumed here, like model_settings: the resolved sections carry it
    problems = []
    if preset is not None and not isinstance(preset, str):
        problems.append(f"model_preset = {json.dumps(preset, default=str)[:60]}: the name of a preset (e.g. smoke) or null")
    elif preset and not any(preset in (s.presets or {}) for t in registry.TRACKS for s in registry.models(t)):
        problems.append(f"model_preset: no registered model has a preset {preset!r} "
                        f"(presets: {sorted({p for t in registry.TRACKS for s in registry.models(t) for p in s.presets or {}})})")
    for track in registry.TRACKS:
        section = config.get(track)
        if not isinstance(section, dict):
            continue
        known = registry.names(track)
        chosen = section.get("models", known)
        settings = section.pop("model_settings", None) or {}
        if isinstance(chosen, Mapping):
            problems.append(f"{track}.models: a list of the models to run (e.g. [{', '.join(known[:3])}]); per-model settings "
                            f"go under {track}.model_settings.<name> (config/README.md: Models)")
            continue
        if not isinstance(chosen, list) or not all(isinstance(n, str) for n in chosen):
            problems.append(f"{track}.models = {json.dumps(chosen, default=str)[:60]}: a list of model names; registered: {known}")
            continue
        if not isinstance(settings, Mapping):
            problems.append(f"{track}.model_settings: a mapping of model name to its settings, got {type(settings).__name__}")
            continue
        for key, names in (("models", chosen), ("model_settings", list(settings))):
            if unknown := [n for n in names if n not in known]:
                problems.append(f"{track}.{key}: no registered model {unknown}; registered: {known}")
        if nulled := [n for n, v in settings.items() if v is None]:
            problems.append(f"{track}.model_settings: {nulled} set to null; leave a model out of {track}.models instead")
        if problems:
            continue
        section["models"] = {spec.name: merge(merge(spec.defaults or {}, (spec.presets or {}).get(preset) or {}),
                                              settings.get(spec.name) or {})
                             for spec in registry.models(track) if spec.name in chosen}
    if problems:
        raise ValueError("invalid configuration:\n  - " + "\n  - ".join(problems))


def full_schema(schema_path: str | Path) -> dict:
    """The workflow's schema with each registered model's section schema under ``<track>.models.<name>``."""
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    for track in registry.TRACKS:
        props = schema["properties"][track]["properties"]["models"].setdefault("properties", {})
        for spec in registry.models(track):
            props[spec.name] = spec.schema or {"type": "object"}
    return schema


def load_config(*files: str | Path, overrides: Mapping | None = None, default: str | Path | None = None) -> dict:
    """A config as the workflow sees it: config/config.yaml, then ``files`` and ``overrides`` merged over, models resolved.

    What tests, benchmarks and notebooks use to read a config file without Snakemake.
    """
    import yaml

    default = Path(default) if default else registry.CATALOGUE.parent / "config.yaml"
    config = merge(yaml.safe_load(default.read_text()), user_config(files, overrides or {}))
    resolve_models(config)
    return config


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
        from diled.data import mnist  # numpy only: the size of the embedded set

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
            from diled.files import sha256_file

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
    from diled.data import protein

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
    from diled.runtime import device_problem

    found = device_problem(config["device"])
    return [f"device: {found}"] if found else []


def check_device(config: dict) -> None:
    """Raise a ValueError naming the configured device when this machine cannot run it."""
    if found := device_problems(config):
        raise ValueError("invalid configuration:\n  - " + "\n  - ".join(found))


ANALYSES = ("figure3", "probe", "editing", "w_ablation", "latent_health", "fid_settings")


def analyses(view: dict) -> list[str]:
    """The image track's analyses beyond Table 6 that ``all`` builds (``image.analyses``; default every one)."""
    return list(view.get("analyses", ANALYSES))


def check(config: dict, schema_path: str | Path | None = None) -> None:
    """Resolve the models (``resolve_models``), then raise one ValueError listing every problem (before any job
    runs): schema first, then cross-field."""
    resolve_models(config)
    found = schema_problems(config, schema_path) if schema_path else []
    if not found:
        found = problems(config)
    if found:
        raise ValueError("invalid configuration:\n  - " + "\n  - ".join(found[:20]) +
                         (f"\n  ... and {len(found) - 20} more" if len(found) > 20 else ""))
