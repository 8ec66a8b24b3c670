"""How close each image training step comes to this CPU's arithmetic limit, and which step-level levers raise images/s.

    python benchmarks/image_step.py --data results/data/image/mnist32.npz --out /tmp/image_step.json

For every image training stage the config runs (the registry's lineage, each stage once) it builds the stage's
``StagePlan`` through the workflow's own stage trainer (the real loss: DiffAE's, LDM's with LPIPS, CM-CD's with its
teacher) and times the optimisation step of ``diled.train.train`` (autocast forward, backward, clipping, Adam, EMA)
under several variants, alternated round by round in one process on the same threads:

* ``configured``: what the workflow runs (the stage's batch size and resolved precision, NCHW, Adam's default
  implementation, the EMA as one ``torch._foreach_lerp_``, as ``diled.train`` does since issue 39);
* ``before``: the same with the per-parameter EMA loop ``diled.train`` ran before (bitwise the same EMA, and no
  faster or slower: the EMA costs about 0.5 ms of a 180-ms DDIM step either way, so the two columns show the noise);
* ``fp32``: the same without autocast;
* ``channels_last``: model and batch in channels-last memory format (oneDNN's preferred layout on some CPUs);
* ``batch_x2``: twice the batch (images per second, not per step, is what a budget buys);
* ``fused_adam``: Adam's fused CPU kernel (other rounding than the default's: not adopted without a gain).

It counts the FLOPs of one forward + backward pass (``torch.utils.flop_counter``: convolutions and matmuls; the
element-wise work is not counted) and reports the configured step's achieved GFLOP/s against a measured peak: the
median GFLOP/s of a 2048 x 2048 matmul in the same dtype on the same threads (a compute-bound kernel: what oneDNN/MKL
reach here, not the datasheet's peak). The `torch.profiler` table of the configured DDIM step (``--profile``) shows
where the rest goes.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from diled.train import PRECISIONS, update_ema

VARIANTS = ("before", "configured", "fp32", "channels_last", "batch_x2", "fused_adam")


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Median GFLOP/s of an n x n matmul in ``dtype`` on this process's threads."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


class StepTimer:
    """The optimisation step of ``diled.train.train`` on one stage's plan, under a variant."""

    def __init__(self, plan, spec, variant: str):
        self.variant = variant
        moved = plan.params if plan.params is not None else [p for p in plan.model.parameters() if p.requires_grad]
        trained = {n for n, p in plan.model.named_parameters() if any(p is q for q in moved)}
        self.model = copy.deepcopy(plan.model).train()
        self.loss, self.ema_target = plan.loss, plan.ema_target
        self.params = [p for n, p in self.model.named_parameters() if n in trained]
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.decay = spec.ema_decay
        self.batch = spec.batch_size * (2 if variant == "batch_x2" else 1)
        self.dtype = None if variant == "fp32" else PRECISIONS[spec.precision]
        self.loop_ema = variant == "before"
        self.opt = torch.optim.Adam(self.params, lr=spec.lr, fused=True if variant == "fused_adam" else None)
        self.data = plan.data
        if variant == "channels_last":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.gen = torch.Generator().manual_seed(0)

    def _batch(self):
        rows = self.data if not isinstance(self.data, (tuple, list)) else self.data[0]
        idx = torch.randint(0, len(rows), (self.batch,), generator=self.gen)
        batch = tuple(d[idx] for d in self.data) if isinstance(self.data, (tuple, list)) else self.data[idx]
        if self.variant == "channels_last" and torch.is_tensor(batch) and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def forward_backward(self, batch) -> torch.Tensor:
        with torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype is not None):
            loss, _ = self.loss(self.model, batch, self.ema) if self.ema_target else self.loss(self.model, batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def step(self) -> float:
        """Seconds of one step (batch drawing included, as in ``train``)."""
        t0 = time.perf_counter()
        self.forward_backward(self._batch())
        nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        with torch.no_grad():
            if self.loop_ema:
                for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
                    pe.lerp_(pm, 1 - self.decay)
            else:
                update_ema(self.ema, self.model, self.decay, self.params)
        return time.perf_counter() - t0

    def flops(self) -> int:
        """FLOPs of one forward + backward pass (counted ops: convolutions, matmuls)."""
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            self.forward_backward(self._batch())
        return counter.get_total_flops()


def stage_plan(view: dict, name: str, stage: str, data, init: nn.Module | None = None):
    """(TrainSpec, StagePlan with its parameter list materialised) of one image stage on the CPU, through the stage
    runner's own ``diled.stages.plan_stage``; (spec, None) where the stage takes released weights instead."""
    from diled import registry, stages

    ctx, plan = stages.plan_stage(registry.resolve("image", name, view), stage, view, data, torch.device("cpu"), init)
    if not isinstance(plan, stages.StagePlan):
        return ctx.spec, None
    if plan.params is not None:
        plan.params = list(plan.params)  # a generator would be spent by the first variant
    return ctx.spec, plan


def bench(config: dict, data: Path, steps: int, repeats: int, only: list[str] | None) -> dict:
    """Images per second of every image stage under every variant, FLOPs per image and the share of the peak."""
    from diled import codecs, registry
    from diled.config import track_view

    view = track_view(config, "image")
    x = codecs.for_track("image", view).training_data(data)
    plan_order: list[tuple[str, str]] = []
    for spec in registry.models("image", config=view):
        if only is None or spec.name in only:
            plan_order += [p for p in registry.lineage(spec) if p not in plan_order]
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"measured matmul peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s", flush=True)
    built: dict[tuple[str, str], nn.Module] = {}
    rows = {}
    for name, stage in plan_order:
        starts = registry.get("image", name).stage(stage).starts_from
        spec, plan = stage_plan(view, name, stage, x, built[tuple(starts.split("/"))] if starts else None)
        if plan is None:
            continue  # weights from a release: nothing trains
        built[(name, stage)] = plan.model.eval()
        timers = {v: StepTimer(plan, spec, v) for v in VARIANTS if not (v == "fp32" and spec.precision == "fp32")}
        times: dict[str, list[float]] = {v: [] for v in timers}
        for r in range(repeats + 1):  # round 0 warms every variant up (oneDNN builds its kernels on first use)
            for v, timer in timers.items():
                per = [timer.step() for _ in range(steps)]
                if r:
                    times[v].append(statistics.median(per))
        flops = timers["configured"].flops() / timers["configured"].batch
        row = {"batch_size": spec.batch_size, "precision": spec.precision, "gflop_per_image": flops / 1e9, "variants": {}}
        for v, timer in timers.items():
            s = statistics.median(times[v])
            row["variants"][v] = {"s_per_step": s, "images_per_s": timer.batch / s}
        conf = row["variants"]["configured"]
        row["gflop_per_s"] = flops * conf["images_per_s"] / 1e9
        row["share_of_peak"] = row["gflop_per_s"] / peaks["bf16" if spec.precision == "bf16" else "fp32"]
        rows[f"{name}/{stage}"] = row
        print(f"{name}/{stage}: " + ", ".join(f"{v} {r['images_per_s']:.0f} img/s" for v, r in row["variants"].items())
              + f"; {row['gflop_per_image']:.3f} GFLOP/img, {row['gflop_per_s']:.1f} GFLOP/s = {row['share_of_peak']:.0%} of peak",
              flush=True)
    return {"peaks_gflop_per_s": peaks, "stages": rows, "steps": steps, "repeats": repeats}


def profile_table(config: dict, data: Path, model: str = "ddim", stage: str = "train", row_limit: int = 15) -> str:
    """``torch.profiler``'s table (self CPU time) of 3 configured steps of one stage (one without a starting stage)."""
    from torch.profiler import ProfilerActivity, profile

    from diled import codecs
    from diled.config import track_view

    view = track_view(config, "image")
    spec, plan = stage_plan(view, model, stage, codecs.for_track("image", view).training_data(data))
    timer = StepTimer(plan, spec, "configured")
    timer.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            timer.step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=row_limit)


def markdown(result: dict) -> str:
    """The result as benchmarks/README.md's table."""
    head = "| stage | batch, precision | GFLOP / image | " + " | ".join(VARIANTS) + " | configured GFLOP/s (share of peak) |"
    lines = [head, "|" + " --- |" * (len(VARIANTS) + 4)]
    for key, row in result["stages"].items():
        cells = [f"{row['variants'][v]['images_per_s']:.0f}" if v in row["variants"] else "=" for v in VARIANTS]
        lines.append(f"| {key} | {row['batch_size']}, {row['precision']} | {row['gflop_per_image']:.3f} | " + " | ".join(cells)
                     + f" | {row['gflop_per_s']:.1f} ({row['share_of_peak']:.0%}) |")
    return "\n".join(lines)


def main() -> None:
    from diled import config as cfgmod
    from diled import manifest
    from diled.hardware import setup_torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    ap.add_argument("--data", type=Path, default=Path("results/data/image/mnist32.npz"))
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant and round (their median counts)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds (after one warm-up round); the median over rounds is reported")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the workflow's training rules run one)")
    ap.add_argument("--only", help="comma-separated models (with the stages they start from)")
    ap.add_argument("--profile", action="store_true", help="also print the profiler table of the configured DDIM step")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    config = cfgmod.load_config(args.config)
    setup_torch(args.threads, torch.device("cpu"))
    t0 = time.perf_counter()
    result = bench(config, args.data, args.steps, args.repeats, args.only.split(",") if args.only else None)
    result["threads"] = args.threads
    if args.profile:
        result["profile_ddim"] = profile_table(config, args.data)
        print(result["profile_ddim"])
    result["manifest"] = manifest.build(config, config.get("seed"), time.perf_counter() - t0, benchmark="image_step", argv=sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(markdown(result))


if __name__ == "__main__":
    main()
