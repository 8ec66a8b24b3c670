"""The model registry: the mechanism by which a model says what it is.

A model is one module (its networks, losses, builder and stage trainers) and one config file,
``config/models/<track>/<name>.yaml``, with these sections:

- ``spec``: the registry entry as data: display name, table position (``order``), training stages and
  what each starts from, capabilities, the step counts it is evaluated at, table note, checks;
- ``defaults``: its config section (the track config's ``models.<name>`` after ``diled.config``
  resolves a config: the user's ``<track>.model_settings.<name>`` merged over these);
- ``presets`` (optional): named settings merged over the defaults when a config says ``model_preset: <name>``
  (``smoke``: the tiny sizes of ``config/smoke.yaml``), so a new model brings its smoke size with it;
- ``schema``: the JSON schema of that section (``$ref`` may name the main schema's definitions).

The workflow's job lists, the tables, the training-cost table and the benchmark all read this
registry; nothing else names a model. The built-in catalogue is ``config/models``; ``model_dirs``
(a config key) adds folders laid out the same way, and ``plugins`` still imports modules that call
``register`` themselves.

This module imports no torch: Snakemake parses the DAG from it, and that must stay fast. Builders,
stage trainers and checks are named as ``"module:function"`` (or a bare function of the spec's
``module``) and imported only when they run; a check runs while the workflow is parsed, so it must
live in a module that imports without torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRACKS = ("image", "text", "protein")
CATALOGUE = Path(__file__).resolve().parent.parent / "config" / "models"  # the built-in models' config files

# What evaluation may ask of a model (diled.capabilities defines the methods behind each).
CAPABILITIES = frozenset({"generate", "encode", "reconstruct", "interpolate", "represent", "edit"})


@dataclass(frozen=True)
class Stage:
    """One training stage: ``train`` is ``"module:function"`` (a ``diled.stages.StageTrainer``).

    ``section`` is the key of the model's config section holding the stage's ``TrainSpec`` fields (steps, batch
    size, lr, ...; default: the stage's name); ``starts_from`` names the stage whose trained model this one is
    initialised from, as ``"model/stage"``; ``needs_weights`` marks stages that read pretrained files (e.g. LPIPS);
    ``pool`` stages train on the track's unlabeled pool as well as its training split (the text track's
    pre-training), where the data has one.
    """

    name: str
    train: str
    section: str = ""
    starts_from: str | None = None
    needs_weights: bool = False
    pool: bool = False

    def __post_init__(self) -> None:
        if not self.section:
            object.__setattr__(self, "section", self.name)


def lookup(cfg: Mapping, dotted: str) -> Any:
    """The value at a dotted key of a track config (``"eval.sampling_steps"``)."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"the track config has no {dotted!r}")
        node = node[part]
    return node


@dataclass(frozen=True)
class StepRule:
    """The step counts a model is evaluated at, as data: each entry an integer or a dotted key of the
    track config holding an integer or a list; flattened in order, repeats dropped.

    ``("eval.sampling_steps",)`` is the image models' T column; ``("latent.T", "eval.ddim_steps")`` the
    text latent models' ancestral chain followed by DDIM; ``(1,)`` one row, ``()`` no generation row.
    """

    entries: tuple[int | str, ...] = ()

    def __call__(self, cfg: Mapping) -> list[int]:
        out: list[int] = []
        for entry in self.entries:
            value = lookup(cfg, entry) if isinstance(entry, str) else entry
            for v in value if isinstance(value, list | tuple) else [value]:
                if int(v) not in out:
                    out.append(int(v))
        return out


@dataclass(frozen=True)
class VariantRule:
    """Extra trained models swept over a config list (an ablation): for each value of ``over`` (a dotted key
    of the track config), the model with ``key`` (a dotted key) set to it, named by ``name`` (``str.format``
    with ``model`` and ``value``). The value the config already has is the main run, under the model's name.
    """

    key: str
    over: str
    name: str

    def __call__(self, cfg: Mapping) -> dict[str, dict[str, Any]]:
        configured = lookup(cfg, self.key)
        model = self.key.split(".")[1]
        out = {}
        for value in lookup(cfg, self.over):
            value = float(value) if isinstance(value, int | float) else value
            out[model if value == configured else self.name.format(model=model, value=value)] = {self.key: value}
        return out


@dataclass(frozen=True)
class ModelSpec:
    """Everything the workflow, tables and benchmark need to know about one model."""

    name: str
    display: str
    track: str
    build: str  # "module:function" taking the track config, returning a fresh nn.Module
    stages: tuple[Stage, ...]
    capabilities: frozenset[str]
    reads: tuple[str, ...]  # sections of the track config (besides models.*) that shape its training
    steps: Callable[[dict], list[int]]  # evaluated step counts, from the track config
    representation: str = ""  # what ``encode`` returns, for the probe table
    note: str = ""  # Table note; ``str.format`` fields are read from the track config
    checks: str | None = None  # "module:function": track config -> problems with this model's section
    variants: Callable[[dict], dict[str, dict[str, Any]]] | None = None  # name -> dotted-key overrides
    bold_per_step: bool = False  # the bold rule compares it with its peers at each step count (DDIM, DiffAE, DiLED)
    defaults: Mapping[str, Any] | None = None  # its config section's default values (from its config file)
    schema: Mapping[str, Any] | None = None  # the JSON schema of that section
    presets: Mapping[str, Mapping[str, Any]] | None = None  # named settings over the defaults (config key model_preset)
    order: float = float("inf")  # position among the track's models (the tables' row order); unset: after the rest
    source: str = ""  # the config file it was read from
    step_kind: str = "DDIM steps"  # what its step counts count (CM-CD: consistency steps)
    rec_protocols: tuple[str, ...] = ("random",)  # reconstruction protocols its plain ``rec`` set realizes (Table 6 columns)

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or not self.name.islower():
            raise ValueError(f"model name must be a lower-case identifier, got {self.name!r}")
        if self.track not in TRACKS:
            raise ValueError(f"model {self.name!r}: track must be one of {TRACKS}, got {self.track!r}")
        unknown = set(self.capabilities) - CAPABILITIES
        if unknown:
            raise ValueError(f"model {self.name!r}: unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}")
        if not self.stages:
            raise ValueError(f"model {self.name!r} has no training stage")

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    @property
    def final_stage(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"model {self.name!r} has no stage {name!r}; stages: {[s.name for s in self.stages]}")


@dataclass(frozen=True)
class Variant:
    """A registered model trained under config overrides (e.g. DiLED at another w): same stages, own name."""

    name: str
    spec: ModelSpec  # the registered model it is a variant of (itself, for a plain model)
    overrides: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model; names are unique within a track."""
    key = f"{spec.track}/{spec.name}"
    if key in _REGISTRY and _REGISTRY[key] != spec:
        raise ValueError(f"model {key} is already registered")
    _REGISTRY[key] = spec
    return spec


def unregister(track: str, name: str) -> None:
    """Remove a model (tests that register a throw-away one)."""
    _REGISTRY.pop(f"{track}/{name}", None)


def load_plugins(modules: Iterable[str]) -> None:
    """Import plugin modules (their import calls ``register``)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ValueError(f"plugins: cannot import {name!r} ({e})") from e


def load_extensions(config: Mapping) -> None:
    """Register what a config adds to the built-in catalogue: its ``plugins`` (modules) and ``model_dirs``
    (folders of model files). Every process that looks a model up (the DAG's parse, each job) calls this."""
    load_plugins(config.get("plugins") or [])
    for folder in config.get("model_dirs") or []:
        load_catalogue(folder)


SPEC_KEYS = frozenset({"display", "module", "order", "build", "stages", "capabilities", "reads", "steps", "representation",
                       "note", "checks", "variants", "bold_per_step", "step_kind", "rec_protocols"})
STAGE_KEYS = frozenset({"name", "train", "section", "starts_from", "needs_weights", "pool"})


def _ref(module: str, name: str) -> str:
    """``"module:function"``; a bare name is a function of the spec's own module."""
    return name if ":" in name else f"{module}:{name}"


def spec_from_file(path: str | Path) -> ModelSpec:
    """The registry entry a model's config file declares (``config/models/<track>/<name>.yaml``).

    Only ``yaml.safe_load`` reads it: plain mappings, lists and scalars.
    """
    import yaml

    path = Path(path)
    track, name = path.parent.name, path.stem
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("spec"), Mapping):
        raise ValueError(f"{path}: a model's config file needs a 'spec' mapping (and 'defaults', 'schema')")
    unknown = sorted(set(doc) - {"spec", "defaults", "presets", "schema"})
    spec = dict(doc["spec"])
    unknown += sorted(f"spec.{k}" for k in set(spec) - SPEC_KEYS)
    for st in spec.get("stages") or []:
        unknown += sorted(f"spec.stages.{k}" for k in set(st) - STAGE_KEYS) if isinstance(st, Mapping) else ["spec.stages: not a mapping"]
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}")
    defaults = doc.get("defaults") or {}
    presets = doc.get("presets") or {}
    if not isinstance(presets, Mapping) or not all(isinstance(v, Mapping) for v in presets.values()):
        raise ValueError(f"{path}: presets must map a preset name to settings (presets: {{smoke: {{train: ...}}}})")
    for key in ("display", "module", "stages", "capabilities"):
        if key not in spec:
            raise ValueError(f"{path}: spec.{key} is required")
    module = spec.pop("module")
    variants = spec.pop("variants", None)
    if variants and not str(variants.get("key", "")).startswith(f"models.{name}."):
        raise ValueError(f"{path}: spec.variants.key must be a key of this model's section (models.{name}.*)")
    try:
        stages = tuple(Stage(**{**st, "train": _ref(module, st["train"])}) for st in spec.pop("stages"))
        for st in stages:  # each stage's TrainSpec section must exist before a job reads it
            if defaults and st.section not in defaults:
                raise ValueError(f"stage {st.name!r} trains from defaults.{st.section}, which is missing "
                                 f"(set spec.stages[].section to the key holding its steps, batch_size, lr)")
        return ModelSpec(
            name=name, track=track, build=_ref(module, spec.pop("build", "build")), stages=stages,
            capabilities=frozenset(spec.pop("capabilities")), reads=tuple(spec.pop("reads", ())),
            steps=StepRule(tuple(spec.pop("steps", ()))), variants=VariantRule(**variants) if variants else None,
            rec_protocols=tuple(spec.pop("rec_protocols", ("random",))),
            checks=_ref(module, spec.pop("checks")) if spec.get("checks") else None,
            defaults=defaults, presets=presets, schema=doc.get("schema") or {"type": "object"}, source=str(path),
            **{k: v for k, v in spec.items() if k != "checks"},
        )
    except (TypeError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None


def load_catalogue(folder: str | Path) -> list[ModelSpec]:
    """Register every model a folder of config files declares (``<folder>/<track>/<name>.yaml``), in table order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"model_dirs: {folder} is not a folder")
    specs = [spec_from_file(p) for t in TRACKS for p in sorted((folder / t).glob("*.yaml"))]
    return [register(s) for s in sorted(specs, key=lambda s: (TRACKS.index(s.track), s.order, s.name))]


def get(track: str, name: str) -> ModelSpec:
    try:
        return _REGISTRY[f"{track}/{name}"]
    except KeyError:
        raise KeyError(f"no model {name!r} in track {track!r}; registered: {names(track)}") from None


def models(track: str, capability: str | None = None, config: dict | None = None) -> list[ModelSpec]:
    """Registered models of a track in table order (their ``order``, then registration).

    With ``config`` (the track config), only models that have a section under ``models``: a user's
    config that leaves a model out does not run it.
    """
    out = sorted((s for s in _REGISTRY.values() if s.track == track and (capability is None or s.can(capability))),
                 key=lambda s: s.order)
    if config is not None:
        out = [s for s in out if s.name in config.get("models", {})]
    return out


def names(track: str, capability: str | None = None, config: dict | None = None) -> list[str]:
    return [s.name for s in models(track, capability, config)]


def variants(track: str, config: dict) -> list[Variant]:
    """Extra trained models the track config asks for (ablations), each with its overrides."""
    out = []
    for spec in models(track, config=config):
        if spec.variants is not None:
            out += [Variant(name, spec, ov) for name, ov in spec.variants(config).items() if name != spec.name]
    return out


def resolve(track: str, name: str, config: dict) -> Variant:
    """A model or variant by name, as (name, spec, overrides)."""
    for v in variants(track, config):
        if v.name == name:
            return v
    return Variant(name, get(track, name))


def lineage(spec: ModelSpec) -> list[tuple[str, str]]:
    """Every (model, stage) that trains, in order, to make this model: the stages it starts from, then its own."""
    out: list[tuple[str, str]] = []
    for st in spec.stages:
        if st.starts_from:
            model, _, stage = st.starts_from.partition("/")
            if model != spec.name:
                out += [p for p in lineage(get(spec.track, model)) if p not in out]
                if (model, stage) not in out:
                    raise ValueError(f"{spec.name}/{st.name} starts from {st.starts_from}, which {model} does not train")
                out = out[: out.index((model, stage)) + 1]
        out.append((spec.name, st.name))
    return out


def trained_from(spec: ModelSpec) -> list[str]:
    """The models whose config sections shape this model's training: its own and those it starts from."""
    return sorted({m for m, _ in lineage(spec)})


def load_object(ref: str) -> Any:
    """The object named by ``"module:attribute"`` (imported on first use)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def apply_overrides(config: dict, overrides: dict[str, Any]) -> dict:
    """A deep copy of ``config`` with dotted keys (``"models.diled.w"``) replaced."""
    import copy

    out = copy.deepcopy(config)
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return out


load_catalogue(CATALOGUE)
