"""Two CPU processes on gloo: the global batch is split, gradients averaged, rank 0 checkpoints, and the result is the
single-process run's (for a loss without randomness, where the two must agree)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from diled import distributed
from diled.train import StepBatches, TrainSpec, train

SPEC = dict(steps=6, batch_size=8, lr=0.05, ema_decay=0.5, ckpt_every=3, seed=3)


def _problem() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    data = torch.cat([x, x @ torch.randn(5, 1) + 0.1], dim=1)
    return nn.Linear(5, 1), data


def _mse(model: nn.Module, batch: torch.Tensor):
    loss = (model(batch[:, :5]) - batch[:, 5:]).pow(2).mean()
    return loss, {}


def worker(run_dir: str, spec: dict) -> dict:
    """One rank: train the toy regression, report what it saw and what it holds."""
    torch.set_num_threads(1)
    world = distributed.init_from_env(torch.device("cpu"))
    model, data = _problem()
    if world.rank == 1:
        with torch.no_grad():  # a rank that starts elsewhere is brought to rank 0's weights
            model.weight.add_(1.0)
    seen = []

    def loss_fn(m, batch):
        seen.append(batch[:, 0].clone())
        return _mse(m, batch)

    res = train(model, loss_fn, data, TrainSpec(**spec), run_dir, progress=False)
    return {"rank": world.rank, "size": world.size, "weights": [p.detach().clone() for p in model.parameters()],
            "ema": [p.detach().clone() for p in res.ema.parameters()], "seen": seen, "loss": res.final_loss}


def _single(run_dir: Path, spec: dict) -> tuple[nn.Module, object]:
    model, data = _problem()
    res = train(model, _mse, data, TrainSpec(**spec), run_dir, progress=False)
    return model, res


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ddp")
    return run_dir, distributed.launch(worker, 2, str(run_dir), SPEC)


def test_ranks_split_the_global_batch(two_ranks):
    _, out = two_ranks
    assert sorted(out) == [0, 1] and out[0]["size"] == 2
    _, data = _problem()
    single = StepBatches(len(data), TrainSpec(**SPEC), 0, distributed.World())
    for step in range(SPEC["steps"]):
        rows = data[single.indices(step), 0]
        assert torch.equal(torch.cat([out[0]["seen"][step], out[1]["seen"][step]]), rows)


def test_two_processes_equal_one(two_ranks, tmp_path):
    run_dir, out = two_ranks
    model, res = _single(tmp_path / "single", SPEC)
    for rank in (0, 1):  # every rank holds the same weights, equal to the one-process run's
        for got, want in zip(out[rank]["weights"], model.parameters()):
            torch.testing.assert_close(got, want.detach(), rtol=1e-6, atol=1e-6)
    for got, want in zip(out[0]["ema"], res.ema.parameters()):  # rank 0's EMA is the one-process EMA
        torch.testing.assert_close(got, want.detach(), rtol=1e-6, atol=1e-6)
    assert out[0]["loss"] == pytest.approx(res.final_loss, rel=1e-5)  # the logged loss is the global batch's
    assert sorted(p.name for p in run_dir.glob("ckpt-*.pt")) == ["ckpt-00000003.pt", "ckpt-00000006.pt"]


def test_two_processes_resume_from_rank_zeros_checkpoint(tmp_path):
    """Three steps, stop, then six: the same weights as six at once (every rank reads rank 0's file)."""
    run_dir = tmp_path / "resumed"
    distributed.launch(worker, 2, str(run_dir), {**SPEC, "steps": 3})
    for ckpt in run_dir.glob("ckpt-*.pt"):  # the 3-step spec's checkpoint, relabelled as a fragment of the 6-step run
        from diled import checkpoint

        state = checkpoint.load(ckpt)
        state["spec"] = TrainSpec(**SPEC).digest()
        checkpoint.save(state, ckpt)
    out = distributed.launch(worker, 2, str(run_dir), SPEC)
    model, _ = _single(tmp_path / "single", SPEC)
    for got, want in zip(out[1]["weights"], model.parameters()):
        torch.testing.assert_close(got, want.detach(), rtol=1e-6, atol=1e-6)


def test_uneven_batch_is_refused():
    with pytest.raises(ValueError, match="multiple of 3"):
        distributed.World(0, 3).shard(8)
