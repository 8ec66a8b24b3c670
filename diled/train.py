"""The one training loop: seeded, EMA, resumable from a run directory, with a progress bar.

Step k's randomness (batch indices, timesteps, noise) comes from generators seeded by
(seed, k), so a run resumed from a checkpoint continues exactly as if it had never stopped.
Checkpoints ``ckpt-<step>.pt`` live in ``run_dir`` (which the workflow never declares as an output,
so Snakemake does not delete it); the last ``keep`` are kept.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from diled.diffusion import derive_seed

LossFn = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class TrainSpec:
    """Optimisation knobs of one training stage."""

    steps: int
    batch_size: int
    lr: float
    ema_decay: float = 0.999
    seed: int = 0
    ckpt_every: int = 500
    keep: int = 2
    grad_clip: float = 1.0
    warmup: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or not 0 <= self.ema_decay < 1:
            raise ValueError(f"invalid training spec: {self}")

    def digest(self) -> str:
        return str(derive_seed(json.dumps(dataclasses.asdict(self), sort_keys=True)))


@dataclass
class TrainResult:
    """The EMA model and what the run cost."""

    ema: nn.Module
    steps: int
    resumed_from: int
    wall_s: float
    s_per_step: float
    final_loss: float


def _checkpoints(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("ckpt-*.pt"))


def _save(run_dir: Path, step: int, state: dict, keep: int) -> None:
    path = run_dir / f"ckpt-{step:08d}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint behind
    for old in _checkpoints(run_dir)[:-keep]:
        old.unlink()


def train(
    model: nn.Module,
    loss_fn: LossFn,
    data: torch.Tensor | tuple[torch.Tensor, ...],
    spec: TrainSpec,
    run_dir: str | Path,
    params: Iterable[nn.Parameter] | None = None,
    desc: str = "train",
    progress: bool = True,
    ema_target: bool = False,
) -> TrainResult:
    """Optimise ``loss_fn(model, batch)`` with Adam on ``params`` (default: all) for ``spec.steps`` steps.

    Resumes from the newest checkpoint in ``run_dir`` whose spec matches; returns the EMA model.
    ``ema_target`` calls ``loss_fn(model, batch, ema)`` instead: the EMA is the target network of
    consistency distillation (checkpointed with the run, so a resumed run sees the same target).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    paired = isinstance(data, (tuple, list))  # (inputs, targets, ...): batches are tuples of the same rows
    data = tuple(d.to(device) for d in data) if paired else data.to(device)
    n_rows = len(data[0]) if paired else data.shape[0]
    params = list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=spec.lr)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    start = 0
    ckpts = _checkpoints(run_dir)
    if ckpts:
        state = torch.load(ckpts[-1], map_location=device, weights_only=False)
        if state["spec"] != spec.digest():
            raise RuntimeError(f"{ckpts[-1]} was written by a different training spec; use a fresh run directory")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
    log_path = run_dir / "log.csv"
    history: list[dict[str, float]] = []
    model.train()
    t0 = time.perf_counter()
    bar = tqdm(range(start, spec.steps), initial=start, total=spec.steps, desc=desc, disable=not progress, mininterval=2.0)
    loss_value = float("nan")
    for step in bar:
        g = torch.Generator(device="cpu").manual_seed(derive_seed(spec.seed, "batch", step))
        idx = torch.randint(0, n_rows, (spec.batch_size,), generator=g).to(device)
        torch.manual_seed(derive_seed(spec.seed, "step", step))
        lr = spec.lr * min(1.0, (step + 1) / spec.warmup) if spec.warmup else spec.lr
        for group in opt.param_groups:
            group["lr"] = lr
        batch = tuple(d[idx] for d in data) if paired else data[idx]
        loss, parts = loss_fn(model, batch, ema) if ema_target else loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if spec.grad_clip:
            nn.utils.clip_grad_norm_(params, spec.grad_clip)
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - spec.ema_decay)
            for be, bm in zip(ema.buffers(), model.buffers()):
                be.copy_(bm)
        loss_value = loss.item()
        history.append({"step": step + 1, "loss": loss_value, **parts})
        bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
        done = step + 1
        if done % spec.ckpt_every == 0 or done == spec.steps:
            state = {"step": done, "spec": spec.digest(), "model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict()}
            _save(run_dir, done, state, spec.keep)
            _append_log(log_path, history)
            history = []
    wall = time.perf_counter() - t0
    ran = spec.steps - start
    return TrainResult(ema, spec.steps, start, wall, wall / max(ran, 1), loss_value)


def _append_log(path: Path, rows: list[dict[str, float]]) -> None:
    if not rows:
        return
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "step", k))
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerows(rows)
