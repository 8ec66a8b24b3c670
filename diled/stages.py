"""Build, train, save and load any registered model: the generic half of every training and sampling job.

What a model is lives in ``diled.registry``; what each stage trains lives in the model's own module: a
``StageTrainer`` is a function of a ``StageContext`` (the stage's inputs, its ``TrainSpec`` already read from
``models.<name>.<stage section>``) that returns a ``StagePlan`` (model, loss, rows, parameters). The one
stage runner here, ``run_stage``, then calls ``diled.train.train``; a trainer never calls back into the runner.
A step count thus travels config -> ``scripts/train.py`` -> ``run_stage`` -> ``train()``. Workflow scripts and
the benchmarks call these functions, so everything here runs (and is tested) without Snakemake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from diled import checkpoint, registry
from diled.diffusion import derive_seed
from diled.hardware import choose_precision, resolve_precision
from diled.train import LossFn, TrainResult, TrainSpec, train


def build(track: str, name: str, cfg: dict) -> nn.Module:
    """A freshly initialised model of a registered kind, sized by the track config."""
    return registry.load_object(registry.get(track, name).build)(cfg)


@dataclass(frozen=True)
class StageContext:
    """What a stage trainer gets: the model's name and stage, its track config, data, device, the model it starts
    from and the stage's ``TrainSpec`` (read by the runner from the stage's config section).

    A variant (e.g. DiLED at another w) trains under its base model's name, so its seeds, batches and
    noise equal the main run's and only the overridden config differs.
    """

    track: str
    name: str
    stage: str
    cfg: dict
    data: Any
    device: torch.device
    spec: TrainSpec
    init: nn.Module | None = None

    def build(self) -> nn.Module:
        return build(self.track, self.name, self.cfg)


@dataclass
class StagePlan:
    """What a stage trains: ``loss(model, batch)`` (``loss(model, batch, ema)`` with ``ema_target``) minimised over
    ``params`` (default: every parameter that requires grad) on the rows of ``data``."""

    model: nn.Module
    loss: LossFn
    data: Any
    params: Iterable[nn.Parameter] | None = None
    ema_target: bool = False


# A stage trainer returns the plan the runner trains, or a finished result (weights taken from a release).
StageTrainer = Callable[[StageContext], StagePlan | TrainResult]


def stage_spec(cfg: dict, name: str, stage: registry.Stage, device: torch.device, track: str | None = None) -> TrainSpec:
    """TrainSpec of one stage: ``models.<name>.<stage.section>`` of the track config, ``precision: auto`` resolved
    for the device and the track's kind of work (``diled.hardware.choose_precision``), the seed derived from the
    config's seed, the model and the stage."""
    fields = dict(cfg["models"][name][stage.section])
    fields["precision"] = resolve_precision(fields.get("precision", "fp32"), device, track)
    return TrainSpec(seed=derive_seed(cfg["seed"], name, stage.name), **fields)


def plan_stage(variant: registry.Variant, stage: str, cfg: dict, data: Any, device: torch.device,
               init: nn.Module | None = None) -> tuple[StageContext, StagePlan | TrainResult]:
    """What one stage of a resolved model or variant would train: its context (the ``TrainSpec`` and the config with
    the variant's overrides) and its trainer's plan, with the seeded weight initialisation ``run_stage`` trains from
    (``benchmarks/image_step.py`` times the plan's step without training it)."""
    spec = variant.spec
    st = spec.stage(stage)
    trainer: StageTrainer = registry.load_object(st.train)
    cfg = registry.apply_overrides(cfg, variant.overrides)
    ctx = StageContext(spec.track, spec.name, stage, cfg, data, device, stage_spec(cfg, spec.name, st, device, spec.track), init)
    torch.manual_seed(derive_seed(ctx.spec.seed, "init"))  # weight initialisation is part of the run's determinism
    return ctx, trainer(ctx)


def run_stage(variant: registry.Variant, stage: str, cfg: dict, data: Any, run_dir: Path, device: torch.device,
              init: nn.Module | None = None, progress: bool = True) -> tuple[nn.Module, TrainResult, dict]:
    """The stage runner: one stage of a resolved model or variant, trained by ``diled.train.train`` with state in
    ``run_dir``; returns (EMA model, result, the config it trained under)."""
    spec = variant.spec
    ctx, plan = plan_stage(variant, stage, cfg, data, device, init)
    cfg = ctx.cfg
    if isinstance(plan, TrainResult):
        return plan.ema, plan, cfg
    res = train(plan.model, plan.loss, plan.data, ctx.spec, run_dir, params=plan.params, desc=f"{spec.name}/{stage}",
                progress=progress, ema_target=plan.ema_target)
    return res.ema, res, cfg


def train_stage(track: str, name: str, stage: str, cfg: dict, data: Any, run_dir: Path, device: torch.device,
                init: nn.Module | None = None, progress: bool = True) -> tuple[nn.Module, TrainResult, dict]:
    """``run_stage`` of a registered model or variant by name (the benchmarks' and tests' entry)."""
    return run_stage(registry.resolve(track, name, cfg), stage, cfg, data, run_dir, device, init, progress)


def train_job(track: str, name: str, stage: str, view: dict, data_path: str, run_dir: str, device: str,
              init_path: str | None, out_model: str, threads: int = 1) -> dict[str, Any] | None:
    """A whole training job in this process, or as one rank of several (``diled.distributed``): load the data and the
    stage it starts from, train, and (rank 0) save the EMA model to ``out_model``; rank 0 returns the training info.

    Module-level so that ``distributed.launch`` can start it in fresh processes.
    """
    from diled import codecs, distributed

    torch.set_num_threads(max(1, int(threads)))
    world = distributed.init_from_env(torch.device(device))
    dev = distributed.device_for(world, torch.device(device))
    codec = codecs.for_track(track, view)
    init = load_model(init_path, dev)[0] if init_path else None
    variant = registry.resolve(track, name, view)
    data = codec.training_data(data_path, pool=True) if variant.spec.stage(stage).pool else codec.training_data(data_path)
    model, res, cfg = run_stage(variant, stage, view, data, Path(run_dir), dev, init)
    if not world.main:
        return None
    section = variant.spec.stage(stage).section
    choice = choose_precision(cfg["models"][variant.spec.name][section].get("precision", "fp32"), dev, track)
    batch = cfg["models"][variant.spec.name][section]["batch_size"]
    info = {"track": track, "model": variant.spec.name, "variant": name, "stage": stage, "overrides": variant.overrides,
            "steps": res.steps, "resumed_from_step": res.resumed_from, "train_wall_s": round(res.wall_s, 3),
            "s_per_step": res.s_per_step and round(res.s_per_step, 5), "final_loss": res.final_loss, "run_dir": str(run_dir),
            "batch_size": batch, "rows_seen": res.steps * batch,  # images, sentences or sequences: the stage's training budget
            "train_cpu_s": res.cpu_s and round(res.cpu_s, 3), "cpu_s_per_step": res.cpu_s_per_step and round(res.cpu_s_per_step, 5),
            "parameters": sum(p.numel() for p in model.parameters()), "processes": world.size,
            **({"weights_from": res.source} if res.source else {"precision": res.precision, "precision_reason": choice["reason"]})}
    save_model(model, track, variant.spec.name, cfg, out_model, info)
    return info


def save_model(model: nn.Module, track: str, name: str, cfg: dict, path: str | Path, info: dict[str, Any]) -> None:
    """Checkpoint with everything needed to rebuild it: track, registered name, config, weights, training info
    (a ``diled.checkpoint`` file: checksummed, loadable without unpickling code)."""
    checkpoint.save({"track": track, "name": name, "config": cfg, "state_dict": model.state_dict(), "info": info}, path)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode, checkpoint record); a corrupt, foreign or unsafe file is a ``CheckpointError`` naming it."""
    try:
        ckpt = checkpoint.load(path)
    except checkpoint.CheckpointError as exc:
        raise checkpoint.CheckpointError(f"{exc}. Delete it and rerun: the training job that wrote it rebuilds it from its "
                                         "checkpoints in the run directory without training again") from exc
    model = build(ckpt["track"], ckpt["name"], ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


@torch.no_grad()
def encode_all(fn, data: torch.Tensor | torch.utils.data.Dataset, batch_size: int, desc: str | None = None,
               device: torch.device | str | None = None, workers: int = 4) -> torch.Tensor:
    """Apply ``fn`` to ``data`` in batches (eval-time encoding, no gradients); a progress bar when ``desc`` is given.

    ``data`` is a tensor or a streamed Dataset (read in order, unflipped, by ``workers`` processes); batches move
    to ``device`` when given.
    """
    if isinstance(data, torch.utils.data.Dataset):
        batches = torch.utils.data.DataLoader(data, batch_size=batch_size, num_workers=workers)  # indices < len: no flips
    else:
        batches = (data[i : i + batch_size] for i in range(0, len(data), batch_size))
    if desc is not None:
        batches = tqdm(batches, desc=desc, mininterval=5.0, leave=False, total=-(-len(data) // batch_size))
    return torch.cat([fn(b if device is None else b.to(device)) for b in batches])
