"""The training loop: exact resume, checkpoint rotation, spec mismatch, EMA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diled import checkpoint
from diled.train import TrainSpec, train


class Quadratic(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def loss(self, x):
        noise = torch.randn(x.shape[0], 1)  # from torch's RNG, which the loop seeds per step
        loss = (self.lin(x) - x.sum(1, keepdim=True) - 0.1 * noise).pow(2).mean()
        return loss, {"mse": loss.item()}


def run(tmp, steps, seed=0, keep=2, lr=1e-2):
    torch.manual_seed(123)
    model = Quadratic()
    spec = TrainSpec(steps=steps, batch_size=8, lr=lr, ema_decay=0.9, seed=seed, ckpt_every=5, keep=keep)
    data = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    return model, train(model, lambda m, x: m.loss(x), data, spec, tmp, progress=False)


def test_resume_is_exact(tmp_path):
    straight, _ = run(tmp_path / "a", 20)
    # interrupted after 10 steps, then started again with the same spec in the same run directory
    run(tmp_path / "b", 10)
    for ckpt in (tmp_path / "b").glob("ckpt-*.pt"):
        state = checkpoint.load(ckpt)
        state["spec"] = TrainSpec(steps=20, batch_size=8, lr=1e-2, ema_decay=0.9, seed=0, ckpt_every=5, keep=2).digest()
        checkpoint.save(state, ckpt)
    resumed, res = run(tmp_path / "b", 20)
    assert res.resumed_from == 10
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_rotation_keeps_last_checkpoints_and_log(tmp_path):
    run(tmp_path, 20, keep=2)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.pt")) == ["ckpt-00000015.pt", "ckpt-00000020.pt"]
    lines = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert lines[0].startswith("step") and len(lines) == 21


def test_finished_run_is_not_retrained(tmp_path):
    _, first = run(tmp_path, 10)
    _, again = run(tmp_path, 10)
    assert again.resumed_from == 10 and again.steps == 10
    # the rerun reports the run's own cost and loss, not a zero-step fragment's (NaN loss, ~0 s/step)
    assert again.final_loss == first.final_loss and again.s_per_step == pytest.approx(first.s_per_step, rel=1e-3)
    for p, q in zip(first.ema.parameters(), again.ema.parameters()):
        assert torch.equal(p, q)


def test_different_spec_in_same_run_dir_is_refused(tmp_path):
    run(tmp_path, 10)
    with pytest.raises(RuntimeError, match="different training spec"):
        run(tmp_path, 10, seed=1)


def test_training_reduces_loss_and_ema_lags(tmp_path):
    model, res = run(tmp_path, 300, lr=5e-2)
    assert res.final_loss < 0.05  # the noise floor is 0.01
    assert not torch.equal(model.lin.weight, res.ema.lin.weight)


def test_invalid_spec():
    with pytest.raises(ValueError):
        TrainSpec(steps=0, batch_size=1, lr=1e-3)
