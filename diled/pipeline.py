"""Build, train, save and load any registered model: the generic half of every training and sampling job.

What a model is lives in ``diled.registry``; how each stage trains lives in the model's own module
(a ``StageTrainer``: a function of a ``StageContext``). Workflow scripts and the benchmark call
these functions, so everything here runs (and is tested) without Snakemake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from diled import checkpoint, registry
from diled.diffusion import derive_seed
from diled.runtime import resolve_precision
from diled.train import TrainResult, TrainSpec, train


def build(track: str, name: str, cfg: dict) -> nn.Module:
    """A freshly initialised model of a registered kind, sized by the track config."""
    return registry.load_object(registry.get(track, name).build)(cfg)


@dataclass
class StageContext:
    """What a stage trainer gets: the model's name and stage, its track config, data, run directory, device and init.

    A variant (e.g. DiLED at another w) trains under its base model's name, so its seeds, batches and
    noise equal the main run's and only the overridden config differs.
    """

    track: str
    name: str
    stage: str
    cfg: dict
    data: torch.Tensor
    run_dir: Path
    device: torch.device
    init: nn.Module | None = None

    @property
    def seed(self) -> int:
        return derive_seed(self.cfg["seed"], self.name, self.stage)

    def build(self) -> nn.Module:
        return build(self.track, self.name, self.cfg)

    def spec(self, section: str) -> TrainSpec:
        """TrainSpec from ``models.<name>.<section>`` of the track config, ``precision: auto`` resolved for the device."""
        fields = dict(self.cfg["models"][self.name][section])
        fields["precision"] = resolve_precision(fields.get("precision", "fp32"), self.device)
        return TrainSpec(seed=self.seed, **fields)

    def train(self, model: nn.Module, loss_fn: Callable, data: torch.Tensor, section: str, **kw: Any) -> TrainResult:
        """The one training loop on ``data`` with the spec of ``section``, state in the run directory."""
        return train(model, loss_fn, data, self.spec(section), self.run_dir, desc=f"{self.name}/{self.stage}", **kw)


StageTrainer = Callable[[StageContext], TrainResult]


def train_stage(track: str, name: str, stage: str, cfg: dict, data: torch.Tensor, run_dir: Path, device: torch.device,
                init: nn.Module | None = None) -> tuple[nn.Module, TrainResult, dict]:
    """Run one stage of a registered model or variant; returns (EMA model, result, the config it trained under)."""
    variant = registry.resolve(track, name, cfg)
    spec = variant.spec
    trainer: StageTrainer = registry.load_object(spec.stage(stage).train)
    cfg = registry.apply_overrides(cfg, variant.overrides)
    ctx = StageContext(track, spec.name, stage, cfg, data, run_dir, device, init)
    torch.manual_seed(derive_seed(ctx.seed, "init"))  # weight initialisation is part of the run's determinism
    res = trainer(ctx)
    return res.ema, res, cfg


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
    model, res, cfg = train_stage(track, name, stage, view, data, Path(run_dir), dev, init)
    if not world.main:
        return None
    info = {"track": track, "model": variant.spec.name, "variant": name, "stage": stage, "overrides": variant.overrides,
            "steps": res.steps, "resumed_from_step": res.resumed_from, "train_wall_s": round(res.wall_s, 3),
            "s_per_step": res.s_per_step and round(res.s_per_step, 5), "final_loss": res.final_loss, "run_dir": str(run_dir),
            "parameters": sum(p.numel() for p in model.parameters()), "processes": world.size,
            **({"weights_from": res.source} if res.source else {"precision": res.precision})}
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
