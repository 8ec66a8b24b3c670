"""benchmarks/image_step.py: FLOPs counted as a hand computation gives them, and every variant runs the same step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from diled.stages import StagePlan
from diled.train import TrainSpec

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("image_step", ROOT / "benchmarks" / "image_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OneConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)

    def loss(self, x):
        loss = self.conv(x).pow(2).mean()
        return loss, {"l": loss.item()}


def _plan():
    torch.manual_seed(0)
    model = OneConv()
    return StagePlan(model, lambda m, x: m.loss(x), torch.randn(16, 1, 8, 8))


def test_flops_per_step_match_the_hand_count():
    """A 3x3 conv, 1 -> 4 channels on 8 x 8 images, batch 2: forward 2 * 4 * 1 * 9 * 64 * 2 FLOPs, backward the weight
    gradient only (the input needs none): the same again."""
    bench = _bench()
    spec = TrainSpec(steps=1, batch_size=2, lr=1e-3)
    timer = bench.StepTimer(_plan(), spec, "configured")
    assert timer.flops() == 2 * (2 * 4 * 1 * 9 * 64 * 2)


def test_variants_change_speed_not_the_step():
    """`before` (the EMA loop) and `configured` (update_ema) give bitwise the same weights and EMA after the same
    steps; batch_x2 doubles the batch; channels_last keeps its model in that layout; fp32 disables autocast."""
    bench = _bench()
    spec = TrainSpec(steps=1, batch_size=4, lr=1e-2, ema_decay=0.9, precision="bf16")
    plan = _plan()
    timers = {v: bench.StepTimer(plan, spec, v) for v in bench.VARIANTS}
    for timer in (timers["before"], timers["configured"]):
        for _ in range(3):
            assert timer.step() > 0
    assert torch.equal(timers["before"].model.conv.weight, timers["configured"].model.conv.weight)
    assert torch.equal(timers["before"].ema.conv.weight, timers["configured"].ema.conv.weight)
    assert not torch.equal(timers["configured"].ema.conv.weight, plan.model.conv.weight)  # the steps moved it
    assert timers["batch_x2"].batch == 8 and timers["fp32"].dtype is None and timers["configured"].dtype is torch.bfloat16
    assert timers["channels_last"].model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert bench.matmul_peak(torch.float32, n=64, repeats=2) > 0
