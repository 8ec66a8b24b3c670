"""The one training loop: seeded, EMA, resumable from a run directory, with a progress bar.

Step k's randomness (batch indices, timesteps, noise) comes from generators seeded by
(seed, k), so a run resumed from a checkpoint continues exactly as if it had never stopped.
Checkpoints ``ckpt-<step>.pt`` live in ``run_dir`` (which the workflow never declares as an output,
so Snakemake does not delete it); the last ``keep`` are kept. They are ``diled.checkpoint`` files
(checksummed, loaded with ``weights_only=True``); when the newest one is unreadable or corrupt, training
resumes from the one before it with a warning naming both, and the bad file is set aside as ``*.corrupt``.
The checkpoint also carries the wall time and last loss so far, so a resumed (or already finished) run
reports the cost and final loss of the whole run, not of its last fragment.

Under several processes (``diled.distributed``: ``torchrun`` or ``launch``) each rank trains on its slice of
the same global batch, gradients are averaged, and rank 0 alone keeps the EMA and writes checkpoints.
``data`` is an in-memory tensor (the embedded sets) or a map-style ``Dataset`` streamed through a ``DataLoader``
with workers (the paper's image sets); both draw step k's indices from the same seeded generator.
``TrainSpec.precision`` runs the forward pass under bf16 / fp16 autocast (fp16 with a gradient scaler).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from diled import checkpoint, distributed
from diled.diffusion import derive_seed
from diled.fileio import atomic_path, remove_stale_partials

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
    precision: str = "fp32"  # fp32 | bf16 | fp16: autocast of the forward pass (weights, EMA and optimizer stay fp32)
    workers: int = 0  # DataLoader workers when the data is a streamed Dataset
    optimizer: str = "adam"  # adam | adamw (decoupled weight decay, as the official text code's AdamW)
    weight_decay: float = 0.0  # adamw only
    schedule: str = "constant"  # constant | poly: after warm-up, (lr - lr_end) (1 - progress)^power + lr_end
    lr_end: float = 0.0
    power: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or not 0 <= self.ema_decay < 1:
            raise ValueError(f"invalid training spec: {self}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if self.optimizer not in ("adam", "adamw") or self.schedule not in ("constant", "poly"):
            raise ValueError(f"optimizer must be adam or adamw and schedule constant or poly, got {self.optimizer!r}, {self.schedule!r}")
        if self.weight_decay and self.optimizer != "adamw":
            raise ValueError("weight_decay needs optimizer: adamw (Adam's L2 penalty is not what the official code used)")
        if not 0 <= self.lr_end < self.lr or self.power <= 0:
            raise ValueError(f"lr_end must lie in [0, lr) and power be positive, got lr_end={self.lr_end}, power={self.power}")

    def digest(self) -> str:
        """What checkpoints must match to resume: every knob but the loader's workers. Knobs at their defaults
        that were added later (precision fp32, the optimizer and schedule) are left out, so older runs still resume."""
        fields = dataclasses.asdict(self)
        fields.pop("workers")
        for name in ("precision", "optimizer", "weight_decay", "schedule", "lr_end", "power"):
            if fields[name] == _DEFAULTS[name]:
                fields.pop(name)
        return str(derive_seed(json.dumps(fields, sort_keys=True)))

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based): linear warm-up, then constant or polynomial decay
        (``transformers.get_polynomial_decay_schedule_with_warmup``'s formula, which the official text code uses)."""
        if self.warmup and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.schedule == "constant":
            return self.lr
        remaining = 1 - (step - self.warmup) / max(1, self.steps - self.warmup)
        return (self.lr - self.lr_end) * max(0.0, remaining) ** self.power + self.lr_end

    def make_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """Adam, or AdamW with ``weight_decay`` (eps 1e-8 both, as torch's and the official code's defaults)."""
        if self.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.Adam(params, lr=self.lr)


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainSpec)}


class StepBatches(torch.utils.data.Sampler):
    """Step k's batch of row indices, drawn from a generator seeded by (seed, k): identical for an in-memory tensor,
    a streamed Dataset, a resumed run and every rank (which keeps its ``world.shard`` of it)."""

    def __init__(self, n_rows: int, spec: TrainSpec, start: int, world: distributed.World, flips: bool = False):
        self.n_rows, self.spec, self.start, self.world, self.flips = n_rows, spec, start, world, flips
        self.part = world.shard(spec.batch_size)

    def indices(self, step: int) -> torch.Tensor:
        """Row indices of step k (with ``flips``, row i + n_rows stands for row i mirrored: ``diled.modalities.image.photos``)."""
        g = torch.Generator(device="cpu").manual_seed(derive_seed(self.spec.seed, "batch", step))
        idx = torch.randint(0, self.n_rows, (self.spec.batch_size,), generator=g)
        if self.flips:
            idx = idx + self.n_rows * torch.randint(0, 2, (self.spec.batch_size,), generator=g)
        return idx[self.part]

    def __iter__(self):
        for step in range(self.start, self.spec.steps):
            yield self.indices(step).tolist()

    def __len__(self) -> int:
        return self.spec.steps - self.start


@dataclass
class TrainResult:
    """The EMA model and what the run cost."""

    ema: nn.Module
    steps: int
    resumed_from: int
    wall_s: float  # the whole run's training time, summed over resumed fragments
    s_per_step: float | None  # None when no step was ever timed
    final_loss: float | None  # loss of the last step (None: no step ran)
    source: str | None = None  # a released checkpoint the weights came from instead of training (baselines.released)
    precision: str | None = None  # the autocast the steps ran under (TrainSpec.precision, ``auto`` resolved)
    cpu_s: float | None = None  # process CPU seconds (all threads) of the steps, summed over resumed fragments; None: not recorded

    @property
    def cpu_s_per_step(self) -> float | None:
        """CPU seconds a step cost this process: unlike wall time, not inflated by jobs sharing the cores."""
        return self.cpu_s / self.steps if self.cpu_s and self.steps else None


def _checkpoints(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("ckpt-*.pt"))


def _save(run_dir: Path, step: int, state: dict, keep: int) -> None:
    checkpoint.save(state, run_dir / f"ckpt-{step:08d}.pt")  # atomic: a crash never leaves a half-written one
    for old in _checkpoints(run_dir)[:-keep]:
        old.unlink()


def latest_state(run_dir: Path, device: torch.device | str = "cpu") -> dict | None:
    """The newest usable checkpoint of a run directory (None: no checkpoint yet).

    A corrupt newest file (bad digest, truncated, foreign, unsafe) is renamed to ``*.corrupt`` and the one before it is
    used, with a warning naming both. A file that could not be read *now* (``ReadFailure``: an I/O error, memory
    exhausted) stops the run with every file left as it is: it says nothing about the file. When every checkpoint is
    corrupt they have all been set aside, and the error says that the next run starts from step 0.
    """
    bad: list[str] = []
    for path in reversed(_checkpoints(run_dir)):
        try:
            state = checkpoint.load(path, device)
        except checkpoint.CheckpointError as exc:
            bad.append(str(exc))
            path.replace(path.with_name(path.name + ".corrupt"))
            continue
        if bad:
            warnings.warn(f"resuming from {path} instead: " + "; ".join(bad), stacklevel=2)
        return state
    if bad:
        raise checkpoint.CheckpointError(f"no usable checkpoint in {run_dir}: " + "; ".join(bad) +
                                         ". Each was set aside as *.corrupt: the next run trains this stage from step 0")
    set_aside = sorted(p.name for p in run_dir.glob("ckpt-*.pt.corrupt"))
    if set_aside:
        warnings.warn(f"{run_dir}: training starts from step 0; the checkpoints set aside as corrupt earlier "
                      f"({', '.join(set_aside)}) are kept for inspection", stacklevel=2)
    return None


def train(
    model: nn.Module,
    loss_fn: LossFn,
    data: torch.Tensor | tuple[torch.Tensor, ...] | torch.utils.data.Dataset,
    spec: TrainSpec,
    run_dir: str | Path,
    params: Iterable[nn.Parameter] | None = None,
    desc: str = "train",
    progress: bool = True,
    ema_target: bool = False,
) -> TrainResult:
    """Optimise ``loss_fn(model, batch)`` with Adam on ``params`` (default: all) for ``spec.steps`` steps.

    Resumes from the newest checkpoint in ``run_dir`` whose spec matches; returns the EMA model (on ranks
    other than 0 of a multi-process run, the trained model itself: only rank 0 keeps an EMA).
    ``ema_target`` calls ``loss_fn(model, batch, ema)`` instead: the EMA is the target network of
    consistency distillation (checkpointed with the run, so a resumed run sees the same target).
    """
    run_dir = Path(run_dir)
    world = distributed.current()
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(run_dir)  # a checkpoint write killed half-way
    device = next(model.parameters()).device
    streamed = isinstance(data, torch.utils.data.Dataset)
    paired = not streamed and isinstance(data, (tuple, list))  # (inputs, targets, ...): batches are tuples of the same rows
    if not streamed:
        data = tuple(d.to(device) for d in data) if paired else data.to(device)
    n_rows = len(data) if streamed else len(data[0]) if paired else data.shape[0]
    params = list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    opt = spec.make_optimizer(params)
    # rank 0 keeps the EMA; every rank does when the loss reads it (consistency distillation's target)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if world.main or ema_target else None
    start, wall_before, cpu_before, loss_value = 0, 0.0, 0.0, float("nan")
    # rank 0 reads first (and sets a corrupt newest file aside), then the others read what it chose
    state = latest_state(run_dir, device) if world.main else None
    distributed.barrier(world)
    if not world.main:
        state = latest_state(run_dir, device)
    if state is not None:
        if state["spec"] != spec.digest():
            raise RuntimeError(f"{run_dir}: checkpoints were written by a different training spec; use a fresh run directory")
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        start, wall_before, cpu_before = state["step"], state.get("wall_s", 0.0), state.get("cpu_s")
        loss_value = state.get("loss", float("nan"))
    distributed.broadcast_([*model.parameters(), *model.buffers()], world)  # every rank starts from rank 0's weights
    sampler = StepBatches(n_rows, spec, start, world, flips=streamed and getattr(data, "hflip", False))
    batches = iter(torch.utils.data.DataLoader(data, batch_sampler=sampler, num_workers=spec.workers, pin_memory=device.type == "cuda",
                                               persistent_workers=False)) if streamed else None
    autocast_dtype = PRECISIONS[spec.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=spec.precision == "fp16")
    if scaler.is_enabled() and state is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    log_path = run_dir / "log.csv"
    if world.main:
        _trim_log(log_path, start)  # rows past the checkpoint resumed from (a fall-back or a restart) are redone
    history: list[dict[str, float]] = []
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    wall, cpu = wall_before, cpu_before
    bar = tqdm(range(start, spec.steps), initial=start, total=spec.steps, desc=desc, disable=not (progress and world.main), mininterval=2.0)
    for step in bar:
        step_seed = (spec.seed, "step", step) if world.size == 1 else (spec.seed, "step", step, world.rank)
        torch.manual_seed(derive_seed(*step_seed))
        lr = spec.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        if streamed:
            batch = next(batches)
            batch = tuple(b.to(device, non_blocking=True) for b in batch) if isinstance(batch, (tuple, list)) else batch.to(device, non_blocking=True)
        else:
            idx = sampler.indices(step).to(device)
            batch = tuple(d[idx] for d in data) if paired else data[idx]
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss, parts = loss_fn(model, batch, ema) if ema_target else loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        distributed.all_reduce_mean_([p.grad for p in params], params, world)
        scaler.unscale_(opt)
        if spec.grad_clip:
            nn.utils.clip_grad_norm_(params, spec.grad_clip)
        scaler.step(opt)
        scaler.update()
        if ema is not None:
            update_ema(ema, model, spec.ema_decay, params)
        loss_value = distributed.mean_scalar(loss.item(), world, device)
        history.append({"step": step + 1, "loss": loss_value, **parts})
        bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
        done = step + 1
        if done % spec.ckpt_every == 0 or done == spec.steps:
            wall = wall_before + time.perf_counter() - t0
            cpu = None if cpu_before is None else cpu_before + time.process_time() - c0  # a run begun before this was recorded: none
            if world.main:
                state = {"step": done, "spec": spec.digest(), "model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                         "wall_s": wall, "loss": loss_value, **({"cpu_s": cpu} if cpu is not None else {}),
                         **({"scaler": scaler.state_dict()} if scaler.is_enabled() else {})}
                _save(run_dir, done, state, spec.keep)
                _append_log(log_path, history)
            history = []
            distributed.barrier(world)
    # ``wall``: what the final checkpoint recorded (a rerun of a finished run reads it back)
    return TrainResult(ema if ema is not None else model.eval(), spec.steps, start, wall, wall / spec.steps if wall > 0 else None,
                       loss_value if math.isfinite(loss_value) else None, precision=spec.precision, cpu_s=cpu or None)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, trained: Iterable[nn.Parameter] | None = None) -> None:
    """ema <- decay * ema + (1 - decay) * model, buffers copied: one ``_foreach_lerp_`` kernel call (bitwise what a
    per-parameter ``lerp_`` loop gives; about 0.5 ms per step on the embedded pixel UNet either way:
    benchmarks/image_step.py, which also times its step with this function).

    ``trained``: the model's parameters the optimiser moves (default: all). The others are skipped, exactly: the EMA
    starts as a copy of the model, so an untouched parameter's average is the parameter itself. It matters for the
    text stages, whose frozen MiniLM embeddings (11.9M weights, ~140 MB of memory traffic) were averaged every step."""
    pairs = list(zip(ema.parameters(), model.parameters()))
    if trained is not None:
        moved = {id(p) for p in trained}
        pairs = [(pe, pm) for pe, pm in pairs if id(pm) in moved]
    if pairs:
        torch._foreach_lerp_([pe for pe, _ in pairs], [pm for _, pm in pairs], 1 - decay)
    buffers = list(ema.buffers())
    if buffers:
        torch._foreach_copy_(buffers, list(model.buffers()))


def _trim_log(path: Path, last_step: int) -> None:
    """Drop the rows of ``log.csv`` after ``last_step``, so that a resumed run never logs a step twice."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    kept = [r for r in rows if int(float(r["step"])) <= last_step]
    if len(kept) == len(rows):
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(kept)


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
