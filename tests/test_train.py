"""The training loop: exact resume, checkpoint rotation, spec mismatch, EMA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diled import checkpoint
from diled.diffusion import derive_seed
from diled.train import TrainSpec, train


class Quadratic(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def loss(self, x):
        noise = torch.randn(x.shape[0], 1)  # from torch's RNG, which the loop seeds per step
        loss = (self.lin(x) - x.sum(1, keepdim=True) - 0.1 * noise).pow(2).mean()
        return loss, {"mse": loss.item()}


def run(tmp, steps, seed=0, keep=2, lr=1e-2, **knobs):
    torch.manual_seed(123)
    model = Quadratic()
    spec = TrainSpec(steps=steps, batch_size=8, lr=lr, ema_decay=0.9, seed=seed, ckpt_every=5, keep=keep, **knobs)
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
    first_cpu = checkpoint.load(tmp_path / "b" / "ckpt-00000010.pt")["cpu_s"]
    resumed, res = run(tmp_path / "b", 20)
    assert res.resumed_from == 10
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    assert first_cpu > 0 and res.cpu_s > first_cpu  # process CPU time is summed over the resumed fragments
    assert res.cpu_s_per_step == pytest.approx(res.cpu_s / 20)


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


def test_poly_decay_matches_transformers_schedule():
    """The official text recipe: AdamW, warm-up, then polynomial decay (power 3) to lr_end."""
    from transformers import get_polynomial_decay_schedule_with_warmup

    spec = TrainSpec(steps=50, batch_size=1, lr=5e-5, warmup=5, optimizer="adamw", schedule="poly", lr_end=5e-7, power=3.0)
    opt = spec.make_optimizer([nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, torch.optim.AdamW)
    sched = get_polynomial_decay_schedule_with_warmup(opt, 5, 50, lr_end=5e-7, power=3.0)
    theirs = []
    for _ in range(50):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [spec.lr_at(k) for k in range(50)]
    assert ours[5:] == pytest.approx(theirs[5:], rel=1e-12)  # after warm-up: the same formula
    assert ours[:5] == pytest.approx([5e-5 * (k + 1) / 5 for k in range(5)])  # warm-up: ours starts at lr/warmup, not 0
    assert ours[-1] == pytest.approx(5e-7 + (5e-5 - 5e-7) * (1 / 45) ** 3)
    assert TrainSpec(steps=50, batch_size=1, lr=1e-3, warmup=10).lr_at(30) == 1e-3


def test_resume_is_exact_under_adamw_and_poly_decay(tmp_path):
    """Killed at step 12 (last checkpoint: 10), started again: the same weights as an uninterrupted run."""
    spec = TrainSpec(steps=20, batch_size=8, lr=1e-2, ema_decay=0.9, ckpt_every=5, optimizer="adamw", weight_decay=0.01,
                     schedule="poly", lr_end=1e-4, power=3.0)
    data = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    calls = {"n": 0}

    def dies_at_12(m, x):
        calls["n"] += 1
        if calls["n"] == 13:
            raise KeyboardInterrupt
        return m.loss(x)

    torch.manual_seed(123)
    straight = train(Quadratic(), lambda m, x: m.loss(x), data, spec, tmp_path / "a", progress=False).ema
    torch.manual_seed(123)
    with pytest.raises(KeyboardInterrupt):
        train(Quadratic(), dies_at_12, data, spec, tmp_path / "b", progress=False)
    torch.manual_seed(123)
    res = train(Quadratic(), lambda m, x: m.loss(x), data, spec, tmp_path / "b", progress=False)
    assert res.resumed_from == 10
    assert torch.equal(straight.lin.weight, res.ema.lin.weight)
    torch.manual_seed(123)
    plain = train(Quadratic(), lambda m, x: m.loss(x), data, TrainSpec(steps=20, batch_size=8, lr=1e-2, ema_decay=0.9), tmp_path / "c",
                  progress=False).ema
    assert not torch.equal(straight.lin.weight, plain.lin.weight)  # the knobs reach the optimiser


def test_digest_of_a_default_spec_is_unchanged_by_later_knobs():
    """Runs written before precision/optimizer/schedule existed must still resume: their digest leaves them out."""
    import json

    from diled.diffusion import derive_seed

    spec = TrainSpec(steps=20, batch_size=8, lr=1e-2, ema_decay=0.9, seed=0, ckpt_every=5, keep=2)
    old = {"steps": 20, "batch_size": 8, "lr": 1e-2, "ema_decay": 0.9, "seed": 0, "ckpt_every": 5, "keep": 2, "grad_clip": 1.0, "warmup": 0}
    assert spec.digest() == str(derive_seed(json.dumps(old, sort_keys=True)))
    assert TrainSpec(steps=20, batch_size=8, lr=1e-2, optimizer="adamw").digest() != TrainSpec(steps=20, batch_size=8, lr=1e-2).digest()


@pytest.mark.parametrize("knobs", [{"weight_decay": 0.1}, {"schedule": "cosine"}, {"optimizer": "sgd"}, {"schedule": "poly", "lr_end": 1.0}])
def test_invalid_optimiser_knobs_are_refused(knobs):
    with pytest.raises(ValueError):
        TrainSpec(steps=10, batch_size=1, lr=1e-3, **knobs)


# ----------------------------------------------------------------------------- precision: auto

CPUINFO = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f {extra} \nprocessor\t: 1\n"


@pytest.mark.parametrize("extra,machine,found", [
    ("avx512_bf16 amx_bf16 amx_tile", "x86_64", ("amx_bf16", "avx512_bf16")),
    ("avx512_bf16", "x86_64", ("avx512_bf16",)),
    ("avx512bw", "x86_64", ()),  # AVX-512 without bf16: oneDNN would emulate it, slower than fp32
    ("bf16 sve", "aarch64", ("bf16",)),
])
def test_native_bf16_is_read_from_the_cpu_flags(extra, machine, found):
    from diled.hardware import bf16_flags

    text = CPUINFO.format(extra=extra).replace("flags\t\t", "Features\t") if machine == "aarch64" else CPUINFO.format(extra=extra)
    assert bf16_flags(text, machine) == found


def test_stage_specs_resolve_auto_by_the_probe_and_results_record_it(tmp_path, monkeypatch):
    from diled import hardware, stages
    from diled.registry import Stage

    monkeypatch.setenv("DILED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hardware, "_PROBES", {})
    monkeypatch.setattr(hardware, "native_bf16_features", lambda: ("amx_bf16",))
    monkeypatch.setattr(hardware, "run_probe", lambda: {"seconds": {}, "ratios": {"conv": 1.6, "sequence": 0.8, "conv_sample": 1, "chain_sample": 1}})
    cfg = {"seed": 0, "models": {"m": {"train": {"steps": 4, "batch_size": 8, "lr": 1e-2, "ema_decay": 0.9, "ckpt_every": 2,
                                                  "precision": "auto"}}}}
    spec = stages.stage_spec(cfg, "m", Stage("distill", "x:y", section="train"), torch.device("cpu"), "image")
    assert spec.precision == "bf16" and spec.steps == 4
    assert stages.stage_spec(cfg, "m", Stage("distill", "x:y", section="train"), torch.device("cpu"), "text").precision == "fp32"
    assert spec.seed == derive_seed(0, "m", "distill")  # seeded by the stage, configured by its section
    res = train(Quadratic(), lambda m, x: m.loss(x), torch.randn(64, 3), spec, tmp_path / "run", progress=False)
    assert res.precision == "bf16"


def test_bf16_training_is_deterministic_and_differs_from_fp32(tmp_path):
    a, _ = run(tmp_path / "a", 10, precision="bf16")
    b, _ = run(tmp_path / "b", 10, precision="bf16")
    c, _ = run(tmp_path / "c", 10)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))  # the autocast really ran


def test_update_ema_is_the_per_parameter_lerp_bitwise_and_copies_buffers():
    """The EMA update is one foreach kernel call: same bits as the loop it replaced, buffers (e.g. BatchNorm's) copied."""
    import copy

    from diled.train import update_ema

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(2, 1, 6, 6))
    ema, reference = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        model[1].running_mean.add_(1.0)
    update_ema(ema, model, 0.99)
    with torch.no_grad():
        for pe, pm in zip(reference.parameters(), model.parameters()):
            pe.lerp_(pm, 1 - 0.99)
    for a, b in zip(ema.parameters(), reference.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(next(ema.parameters()), next(model.parameters()))
    assert torch.equal(ema[1].running_mean, model[1].running_mean)


def test_ema_skips_what_the_optimiser_does_not_move_and_a_partly_frozen_run_is_unchanged(tmp_path):
    """update_ema(trained=...) leaves other parameters alone, and a run with a frozen part ends with the same EMA as an
    update of every parameter would give (an unmoved parameter's average is itself)."""
    import copy

    from diled.train import update_ema

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    ema = copy.deepcopy(model)
    before = copy.deepcopy(ema)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    update_ema(ema, model, 0.5, trained=list(model[1].parameters()))
    assert torch.equal(ema[0].weight, before[0].weight)  # skipped
    assert torch.allclose(ema[1].weight, before[1].weight + 0.5)  # averaged

    def frozen_run(tmp, skip):
        torch.manual_seed(123)
        m = Quadratic()
        m.lin.bias.requires_grad_(False)
        spec = TrainSpec(steps=7, batch_size=8, lr=1e-2, ema_decay=0.9, ckpt_every=5)
        data = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
        if not skip:  # the update before: every parameter, frozen ones included
            import diled.train as t
            original = t.update_ema
            t.update_ema = lambda e, mm, d, trained=None: original(e, mm, d)
            try:
                return train(m, lambda mm, x: mm.loss(x), data, spec, tmp, progress=False).ema
            finally:
                t.update_ema = original
        return train(m, lambda mm, x: mm.loss(x), data, spec, tmp, progress=False).ema

    a, b = frozen_run(tmp_path / "a", True), frozen_run(tmp_path / "b", False)
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)
