"""The model registry: the one place where a model says what it is.

Each entry names the model, its display name and track, its training stages (and what each starts
from), its builder, its capabilities and the step counts it is evaluated at. The workflow's job
lists, the tables, the training-cost table and the benchmark all read it; adding a model means its
module, its config section (``<track>.models.<name>``) and one ``register`` call, nothing else.

This module imports no torch: Snakemake parses the DAG from it, and that must stay fast. Builders
and stage trainers are named as ``"module:function"`` and imported only when a job runs them.
Third-party models register from a plugin module listed under the config's ``plugins`` key.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

TRACKS = ("image", "text", "protein")

# What evaluation may ask of a model (diled.capabilities defines the methods behind each).
CAPABILITIES = frozenset({"generate", "encode", "reconstruct", "interpolate", "represent", "edit"})


@dataclass(frozen=True)
class Stage:
    """One training stage: ``train`` is ``"module:function"`` (a ``diled.pipeline.StageTrainer``).

    ``starts_from`` names the stage whose trained model this one is initialised from, as
    ``"model/stage"``; ``needs_weights`` marks stages that read pretrained files (e.g. LPIPS); ``pool``
    stages train on the track's unlabeled pool as well as its training split (the text track's
    pre-training), where the data has one.
    """

    name: str
    train: str
    starts_from: str | None = None
    needs_weights: bool = False
    pool: bool = False


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


def get(track: str, name: str) -> ModelSpec:
    try:
        return _REGISTRY[f"{track}/{name}"]
    except KeyError:
        raise KeyError(f"no model {name!r} in track {track!r}; registered: {names(track)}") from None


def models(track: str, capability: str | None = None, config: dict | None = None) -> list[ModelSpec]:
    """Registered models of a track in registration order (the table's row order).

    With ``config`` (the track config), only models that have a section under ``models``: a user's
    config that leaves a model out does not run it.
    """
    out = [s for s in _REGISTRY.values() if s.track == track and (capability is None or s.can(capability))]
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


# ----------------------------------------------------------------------------- the built-in image models


def _sampling_steps(cfg: dict) -> list[int]:
    return [int(s) for s in cfg["eval"]["sampling_steps"]]


def _cm_steps(cfg: dict) -> list[int]:
    return [int(s) for s in cfg["models"]["cmcd"]["steps"]]


def w_variant_name(cfg: dict, w: float) -> str:
    """DiLED trained with weight w: the main run for the configured w, else ``diled_w<w>``."""
    return "diled" if float(w) == float(cfg["models"]["diled"]["w"]) else f"diled_w{float(w):g}"


def _w_variants(cfg: dict) -> dict[str, dict[str, Any]]:
    return {w_variant_name(cfg, w): {"models.diled.w": float(w)} for w in cfg["w_ablation"]["w"]}


register(ModelSpec(
    name="ddim", display="DDIM", track="image", build="baselines.ddim:build",
    stages=(Stage("train", "baselines.ddim:train"),),
    capabilities=frozenset({"generate", "encode", "reconstruct", "interpolate", "represent"}), reads=("data", "net"),
    steps=_sampling_steps, representation="DDIM-inverted x_T ({probe[ddim_steps]} steps)", bold_per_step=True,
    rec_protocols=("inverted",),
))
register(ModelSpec(
    name="diffae", display="DiffAE", track="image", build="baselines.diffae:build",
    stages=(Stage("autoencoder", "baselines.diffae:train_autoencoder"),
            Stage("latent", "baselines.diffae:train_latent", starts_from="diffae/autoencoder")),
    capabilities=frozenset({"generate", "encode", "reconstruct", "interpolate", "represent", "edit"}),
    reads=("data", "net", "latent"), steps=_sampling_steps, representation="encoder mean (standardized)",
    bold_per_step=True,
))
register(ModelSpec(
    name="diffae_ft", display="DiffAE + FT", track="image", build="baselines.diffae:build",
    stages=(Stage("train", "baselines.diffae:train_more", starts_from="diffae/latent"),),
    capabilities=frozenset({"generate", "encode", "reconstruct", "interpolate"}),
    reads=("data", "net", "latent"), steps=_sampling_steps, checks="diled.config:control_problems",
    note="DiffAE + FT is the control for DiLED's extra training: the same trained DiffAE continued for DiLED's "
         "{models[diled][train][steps]} steps (same learning rate and batch size) under DiffAE's own losses (decoder loss "
         "through a deterministic z; latent DDPM on the detached code). A DiLED gain over it is the objective's.",
))
register(ModelSpec(
    name="diled", display="DiLED", track="image", build="diled.modalities.image:build_diled",
    stages=(Stage("train", "diled.modalities.image:train_diled", starts_from="diffae/latent"),),
    capabilities=frozenset({"generate", "encode", "reconstruct", "interpolate", "represent", "edit"}),
    reads=("data", "net", "latent"), steps=_sampling_steps, representation="encoder mean (standardized)",
    variants=_w_variants, bold_per_step=True,
    note="DiLED starts from the trained DiffAE (encoder, decoder, latent net and standardization) and adds "
         "{models[diled][train][steps]} joint fine-tuning steps (w = {models[diled][w]}); its difference from DiffAE "
         "includes those extra steps, as in the paper's protocol.",
))
register(ModelSpec(
    name="ldm", display="LDM", track="image", build="baselines.ldm:build",
    stages=(Stage("autoencoder", "baselines.ldm:train_autoencoder", needs_weights=True),
            Stage("latent", "baselines.ldm:train_latent", starts_from="ldm/autoencoder")),
    capabilities=frozenset({"generate", "encode", "reconstruct", "interpolate", "represent", "edit"}),
    reads=("data", "net"), steps=_sampling_steps, checks="diled.config:ldm_problems", rec_protocols=("random", "inverted"),
    representation="KL-autoencoder mean, scaled to unit variance (flattened c x h x w)",
    note="LDM (two-stage, Rombach et al.): a KL autoencoder ({models[ldm][autoencoder_net][latent_channels]}-channel latent; "
         "L1 + LPIPS-{models[ldm][perceptual]} perceptual loss (weight {models[ldm][perceptual_weight]:g}) + KL weight "
         "{models[ldm][kl_weight]:g}, no adversarial term) trained first ({models[ldm][autoencoder][steps]} steps), then a "
         "latent DDPM on its frozen, scaled means ({models[ldm][latent][steps]} steps) sampled with T DDIM steps. "
         "Reconstruction and interpolation (linear mix of the two means) go through the autoencoder alone, so they do not "
         "depend on T. Where its perceptual network is alex, the Rec LPIPS column (AlexNet) is optimistic for LDM.",
))
register(ModelSpec(
    name="cmcd", display="CM-CD", track="image", build="baselines.cm:build",
    stages=(Stage("distill", "baselines.cm:train", starts_from="ddim/train"),),
    capabilities=frozenset({"generate", "reconstruct", "interpolate"}), reads=("data", "net"),
    steps=_cm_steps, step_kind="consistency steps", checks="diled.config:cmcd_problems",
    note="CM-CD: consistency distillation of the DDIM row's model ({models[cmcd][train][steps]} steps, "
         "{models[cmcd][grid]}-point teacher DDIM grid, EMA target {models[cmcd][train][ema_decay]}, L2 distance); T is its "
         "number of consistency steps (2-step generation re-noises to t = {models[cmcd][intermediate_ts][0]}). "
         "Reconstruction: the real image noised to t = {models[cmcd][encode_t]} with a seeded noise, then the consistency "
         "function; interpolation linearly mixes the two noised inputs before it. The official script had its mixing line "
         "commented out, so the paper's CM-CD interpolation columns were plain reconstructions; here the mixing is applied.",
))


# ----------------------------------------------------------------------------- the built-in protein models


def _ancestral_steps(cfg: dict) -> list[int]:
    return [int(cfg["latent"]["T"])]  # the ancestral latent chain over all T steps


register(ModelSpec(
    name="diled", display="DiLED", track="protein", build="diled.modalities.protein:build_diled",
    stages=(Stage("train", "diled.modalities.protein:train_diled"),),
    capabilities=frozenset({"generate", "encode", "reconstruct", "interpolate", "represent"}),
    reads=("data", "net", "latent"), steps=_ancestral_steps, representation="encoder mean", step_kind="ancestral steps",
    note="DiLED: ReLSO's encoder/decoder/regressor, the elbo-form objective (pad-weighted CE averaged over positions, "
         "divided by T lambda_t, + w l_t with w = {models[diled][w]}) + MSE of the regressor on the latent sample; "
         "{models[diled][train][steps]} steps at batch {models[diled][train][batch_size]}.",
))
register(ModelSpec(
    name="relso", display="ReLSO (AE)", track="protein", build="baselines.relso:build",
    stages=(Stage("train", "baselines.relso:train"),),
    capabilities=frozenset({"encode", "reconstruct", "interpolate", "represent"}),
    reads=("data", "net"), steps=lambda cfg: [], representation="encoder output (deterministic)",
    note="ReLSO (AE): the original deterministic ReLSO (Castro et al. 2022): weighted-mean CE + MSE + 0.001 ||z||^2 / 2; "
         "no prior, so no generation row.",
))
register(ModelSpec(
    name="relso_vae", display="ReLSO-VAE", track="protein", build="baselines.relso:build_vae",
    stages=(Stage("train", "baselines.relso:train"),),
    capabilities=frozenset({"generate", "encode", "reconstruct", "interpolate", "represent"}),
    reads=("data", "net"), steps=lambda cfg: [1], representation="encoder mean", step_kind="prior draws",
    note="ReLSO-VAE: the VAE variant the official code trains for generation (--only_vae): fixed encoder variance 0.008, "
         "KL weight {models[relso_vae][kl_weight]:g}; generation decodes z ~ N(0, I).",
))


# ----------------------------------------------------------------------------- the built-in text models


def _text_latent_steps(cfg: dict, T: int) -> list[int]:
    """The ancestral chain over all T latent steps, then DDIM at ``eval.ddim_steps``."""
    return [T, *[int(s) for s in cfg["eval"]["ddim_steps"] if int(s) != T]]


register(ModelSpec(
    name="gpt2", display="GPT-2 (LM)", track="text", build="diled.modalities.text:build_lm",
    stages=(Stage("pretrain", "diled.modalities.text:train_lm", pool=True),
            Stage("train", "diled.modalities.text:finetune_lm", starts_from="gpt2/pretrain")),
    capabilities=frozenset({"generate"}), reads=("data", "net"), steps=lambda cfg: [1], step_kind="ancestral sampling",
    note="GPT-2 (LM): the decoder network alone, pre-trained as a language model on the training split and the unlabeled "
         "pool ({models[gpt2][pretrain][steps]} steps; the autoencoder's decoder starts from it), then fine-tuned on the rated "
         "training split ({models[gpt2][train][steps]} steps). Generation samples tokens "
         "ancestrally (temperature 1); it has no latent, so no reconstruction, editing or interpolation.",
))
register(ModelSpec(
    name="ae", display="Autoencoder (shared pre-training)", track="text", build="diled.modalities.text:build_autoencoder",
    stages=(Stage("train", "diled.modalities.text:train_autoencoder", starts_from="gpt2/pretrain", pool=True),),
    capabilities=frozenset({"encode", "reconstruct", "interpolate", "represent"}), reads=("data", "net"), steps=lambda cfg: [],
    representation="encoder mean",
    note="Autoencoder: the encoder and the z-conditioned decoder trained on reconstruction alone on the training split and the "
         "pool (z = mean + noise of variance {models[ae][encoder_var]:g}, {models[ae][train][steps]} steps from the pre-trained LM); "
         "every latent model starts from it and is then trained on the rated training split only. It has no "
         "prior, so no generation or editing: its row is the reconstruction the latent models' regularisers trade against.",
))
register(ModelSpec(
    name="diled", display="DiLED", track="text", build="diled.modalities.text:build_diled",
    stages=(Stage("train", "diled.modalities.text:train_diled", starts_from="ae/train"),),
    capabilities=frozenset({"generate", "encode", "reconstruct", "interpolate", "represent", "edit"}),
    reads=("data", "net", "latent"), steps=lambda cfg: _text_latent_steps(cfg, int(cfg["latent"]["T"])),
    representation="encoder mean", step_kind="latent steps",
    note="DiLED: elbo-form objective, token NLL / sentence length / (T lambda_t) + w l_t (w = {models[diled][w]:g}), "
         "w warmed up from 0 over {models[diled][w_warmup]} steps, {models[diled][train][steps]} steps from the pre-trained "
         "autoencoder; T latent steps = the ancestral DDPM chain, fewer = DDIM.",
))
register(ModelSpec(
    name="latentops", display="LatentOps", track="text", build="baselines.text_vae:build",
    stages=(Stage("vae", "baselines.text_vae:train_vae", starts_from="ae/train"),
            Stage("latent", "baselines.text_vae:train_latent", starts_from="latentops/vae")),
    capabilities=frozenset({"generate", "encode", "reconstruct", "interpolate", "represent", "edit"}),
    reads=("data", "net"), steps=lambda cfg: _text_latent_steps(cfg, int(cfg["models"]["latentops"]["latent_net"]["T"])),
    representation="VAE posterior mean", step_kind="latent steps",
    note="LatentOps: a GPT-2 VAE (z = {models[latentops][z_dim]}, cyclical beta to {models[latentops][beta]:g} (one cycle per epoch or per stage, whichever is shorter), free bits "
         "{models[latentops][free_bits]:g}, {models[latentops][vae][steps]} steps from the autoencoder), then a latent DDPM on its means "
         "(T = {models[latentops][latent_net][T]}, linear betas, {models[latentops][latent][steps]} steps).",
))
register(ModelSpec(
    name="daae", display="Optimus-DAAE", track="text", build="baselines.daae:build",
    stages=(Stage("train", "baselines.daae:train", starts_from="ae/train"),),
    capabilities=frozenset({"generate", "encode", "reconstruct", "interpolate", "represent", "edit"}),
    reads=("data", "net"), steps=lambda cfg: [1], representation="encoder output (deterministic)", step_kind="prior draws",
    note="Optimus-DAAE: deterministic z of a word-deleted input ({data[word_dropout]:g}), adversarial prior matching "
         "(weight {models[daae][adv_weight]:g}; BCE on D's logits, named 'stable adversarial loss': upstream's sigmoid + BCE, "
         "whose log is clamped at -100, gave a saturated D no gradient and let the codes grow without bound); generation "
         "decodes z ~ N(0, I).",
))
