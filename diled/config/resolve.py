"""Reading a config: merging files as Snakemake does, resolving each track's models from their files, the full schema."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from diled import registry


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
            shown = ["model_settings" if i == 1 and p == "models" and path[0] in registry.TRACKS else p for i, p in enumerate(path)]
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
    registry.load_extensions(config)
    preset = config.pop("model_preset", None)  # consumed here, like model_settings: the resolved sections carry it
    problems = []
    if preset is not None and not isinstance(preset, str):
        problems.append(f"model_preset = {json.dumps(preset, default=str)[:60]}: the name of a preset (e.g. smoke) or null")
    elif preset and preset not in (offered := {p for t in registry.TRACKS for s in registry.models(t) for p in s.presets or {}}):
        problems.append(f"model_preset: no registered model has a preset {preset!r} (presets: {sorted(offered)})")
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
