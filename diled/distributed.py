"""Multi-process training (one process per GPU, or CPU processes on gloo for tests): the world, launching, reduction.

Conventions (EDM's and DiffAE's, see ``../shared/notes/paper-scale.md``):
- a run with ``world.size`` ranks draws each step's *global* batch exactly as a single process would (the same
  per-step generator), and rank r trains on the r-th contiguous slice of it, so the global batch is split, not
  multiplied; gradients are averaged over ranks after every backward pass;
- the diffusion noise and timesteps of rank r at step k come from a generator seeded by (seed, step, rank);
- rank 0 alone keeps the EMA, writes checkpoints, logs and shows progress; every rank resumes from the same file.

``launch`` starts the ranks through torch's elastic launcher, the machinery behind ``torchrun``; a script started
by ``torchrun --standalone --nproc_per_node=N`` finds the same environment (``RANK``, ``WORLD_SIZE``, ...) and
``init_from_env`` joins it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``size``, and its GPU index on the node (``local_rank``)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, global_batch: int) -> slice:
        """This rank's contiguous slice of a global batch (which must split evenly)."""
        if global_batch % self.size:
            raise ValueError(f"batch_size {global_batch} does not split over {self.size} processes: make it a multiple of {self.size}")
        per = global_batch // self.size
        return slice(self.rank * per, (self.rank + 1) * per)


def current() -> World:
    """The world of an initialised process group, else the single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return World()


def init_from_env(device: torch.device) -> World:
    """Join the process group that ``torchrun`` (or ``launch``) described in the environment; a no-op when alone.

    NCCL for CUDA, gloo for CPU. On CUDA each rank takes the GPU of its ``LOCAL_RANK``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend=backend)
    return current()


def device_for(world: World, device: torch.device) -> torch.device:
    """The rank's own device: ``cuda:<local_rank>`` under CUDA, the given device otherwise."""
    return torch.device("cuda", world.local_rank) if device.type == "cuda" and world.size > 1 else device


def all_reduce_mean_(tensors: Iterable[torch.Tensor | None], like: Iterable[torch.Tensor], world: World) -> None:
    """Average gradients over ranks in place, through one flat buffer; a missing gradient counts as zeros.

    (DistributedDataParallel's semantics without its forward wrapper: stage losses call model methods
    such as ``autoencoder_loss``, not ``forward``, which DDP needs to see.)
    """
    if world.size == 1:
        return
    grads, params = list(tensors), list(like)
    flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for p in params:
        n = p.numel()
        chunk = flat[offset : offset + n].view_as(p)
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)
        offset += n


def broadcast_(tensors: Iterable[torch.Tensor], world: World) -> None:
    """Make every rank hold rank 0's values (parameters and buffers at the start or after resuming)."""
    if world.size > 1:
        for t in tensors:
            dist.broadcast(t.data, 0)


def mean_scalar(value: float, world: World, device: torch.device) -> float:
    """A scalar averaged over ranks (the logged loss of a step is the global batch's)."""
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / world.size).item()


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def launch(fn: Callable[..., Any], nproc: int, *args: Any) -> dict[int, Any]:
    """Run ``fn(*args)`` in ``nproc`` fresh processes (torchrun's elastic launcher, single node); {rank: return value}.

    ``fn`` must be importable (a module-level function): the workers are spawned, not forked. A failing rank
    fails the launch with its traceback.
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc == 1:
        return {0: fn(*args)}
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex, rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1, start_method="spawn")
    return elastic_launch(config, fn)(*args)
