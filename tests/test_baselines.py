"""LDM and CM-CD behind the capability interface: losses, boundary conditions, mixing, determinism, training."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from baselines import LDM, ConsistencyModel
from diled import registry, stages
from diled.config import load_config, track_view
from diled.diffusion import GaussianDiffusion, Schedule, ddim_sample, ddim_step
from diled.nets import ConvDecoder, KLEncoder, UNet
from diled.train import TrainSpec, train

SEEDS = [3, 4, 5, 6]
ROOT = Path(__file__).resolve().parent.parent


def _ldm(kl_weight: float = 1e-6) -> LDM:
    torch.manual_seed(0)
    latent = GaussianDiffusion(UNet(2, 8, (1, 2)), Schedule.make("linear", 100), (2, 4, 4), clip=None)
    return LDM(KLEncoder(1, 8, (1, 2), 2), ConvDecoder(1, 8, (1, 2), 2), latent, kl_weight, perceptual_weight=0.0)


def _cm(**kw) -> ConsistencyModel:
    torch.manual_seed(0)
    return ConsistencyModel(GaussianDiffusion(UNet(1, 8, (1, 2)), Schedule.make("linear", 1000), (1, 8, 8)), **kw).eval()


def test_ldm_shapes_scale_and_t_free_reconstruction():
    model = _ldm().eval()
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    model.fit_scale(model.encoder(x)[0])
    z = model.encode(x)
    assert z.shape == (4, 2, 4, 4) and abs(z.std().item() - 1) < 1e-5  # scaled to unit variance
    torch.testing.assert_close(model.reconstruct(x, 3, SEEDS), model.reconstruct(x, 7, SEEDS))  # the autoencoder alone
    torch.testing.assert_close(model.interpolate(x, x.flip(0), 0.25, 3, SEEDS), model.decode(0.75 * z + 0.25 * z.flip(0)))
    gen = model.generate(SEEDS, steps=4)
    assert gen.shape == (4, 1, 8, 8)
    torch.testing.assert_close(model.generate(SEEDS[2:], steps=4), gen[2:])  # per-sample seeds
    with pytest.raises(ValueError, match="must not clip"):
        LDM(model.encoder, model.decoder, GaussianDiffusion(UNet(2, 8, (1, 2)), Schedule.make("linear", 10), (2, 4, 4)))


def test_ldm_autoencoder_loss_matches_hand_computation():
    """L1 per pixel + kl_weight * KL (summed over latent dims) / pixels, on the reparameterized sample."""
    model = _ldm(kl_weight=0.5)
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    torch.manual_seed(1)
    loss, parts = model.autoencoder_loss(x)
    mean, logvar = model.encoder(x)
    torch.manual_seed(1)
    z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
    l1 = (x - model.decoder(z)).abs().flatten(1).mean(1)
    kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)
    torch.testing.assert_close(loss, (l1 + 0.5 * kl / 64).mean())
    assert parts["kl"] == pytest.approx(kl.mean().item(), rel=1e-5)


def test_ddim_step_is_one_step_of_the_sampler():
    """Per-sample ddim_step reproduces ddim_sample's update (exact denoiser-free check with a fixed eps function)."""
    sched = Schedule.make("linear", 1000)
    eps_fn = lambda x, t: torch.tanh(x) * (t.view(-1, 1) / 1000.0)  # noqa: E731
    x = torch.randn(3, 5)
    stepped = ddim_step(eps_fn, x, sched, torch.full((3,), 400), torch.full((3,), 0), clip=1.0)
    torch.testing.assert_close(stepped, ddim_sample(eps_fn, x, sched, [400], clip=1.0))
    mixed = ddim_step(eps_fn, x, sched, torch.tensor([400, 300, 200]), torch.tensor([350, 0, 100]))
    for i, (t, tp) in enumerate([(400, 350), (300, 0), (200, 100)]):
        one = ddim_step(eps_fn, x[i : i + 1], sched, torch.tensor([t]), torch.tensor([tp]))
        torch.testing.assert_close(mixed[i : i + 1], one)


def test_consistency_function_boundary_and_high_noise_limit():
    cm = _cm()
    torch.nn.init.normal_(cm.pixel.unet.out[-1].weight, std=0.1)  # the UNet's head starts at zero: make it speak
    ab = cm.pixel.schedule.alphabar
    x = torch.randn(2, 1, 8, 8)
    # t = 1: c_skip = 1, f is the identity on x / sqrt(alphabar_1), whatever the network says
    torch.testing.assert_close(cm.consistency(x, torch.ones(2, dtype=torch.long)), x / ab[1].sqrt().float())
    # t = T: sigma_T = 157.4 (linear schedule), c_skip = 1.0e-5: f is almost the v-prediction's clean point
    t = torch.full((2,), 1000)
    ab_T = ab[1000].float()
    sigma_T, sigma_1 = ((1 - ab[1000]) / ab[1000]).sqrt().item(), ((1 - ab[1]) / ab[1]).sqrt().item()
    assert sigma_T == pytest.approx(157.407, abs=1e-3)
    c_skip = 0.25 / ((sigma_T - sigma_1) ** 2 + 0.25)
    x0_hat = ab_T.sqrt() * x - (1 - ab_T).sqrt() * cm.pixel.unet(x, t)  # no coefficient above 1
    torch.testing.assert_close(cm.consistency(x, t), c_skip * x / ab_T.sqrt() + (1 - c_skip) * x0_hat)
    teacher = _cm().pixel
    torch.nn.init.normal_(teacher.unet.out[-1].weight, std=0.1)
    cm.init_from(teacher)  # the teacher's trunk, a zeroed head: v = 0
    torch.testing.assert_close(cm.pixel.unet.inp.weight, teacher.unet.inp.weight)
    assert not cm.pixel.unet.out[-1].weight.any() and teacher.unet.out[-1].weight.any()


def test_cm_times_sampling_and_real_mixing():
    cm = _cm(encode_t=350, intermediate_ts=(350, 150))
    assert cm.times(1000, 1) == [1000] and cm.times(1000, 2) == [1000, 350] and cm.times(350, 2) == [350, 150]
    with pytest.raises(ValueError, match="intermediate"):
        cm.times(350, 3)
    gen = cm.generate(SEEDS, 2)
    assert gen.shape == (4, 1, 8, 8) and gen.abs().max() <= 1
    torch.testing.assert_close(cm.generate(SEEDS[:2], 2), gen[:2])
    xa, xb = torch.rand(4, 1, 8, 8) * 2 - 1, torch.rand(4, 1, 8, 8) * 2 - 1
    with pytest.raises(ValueError, match="seed"):
        cm.encode(xa)
    za, zb = cm.encode(xa, 1, SEEDS), cm.encode(xb, 1, [9, 8, 7, 6])
    torch.testing.assert_close(cm.interpolate(xa, xb, 0.4, 1, SEEDS, [9, 8, 7, 6]), cm.decode(0.6 * za + 0.4 * zb, 1, SEEDS))
    assert not torch.allclose(cm.interpolate(xa, xb, 0.4, 1, SEEDS, [9, 8, 7, 6]), cm.reconstruct(xa, 1, SEEDS))
    with pytest.raises(ValueError, match="descending"):
        _cm(intermediate_ts=(150, 350))
    with pytest.raises(ValueError, match="cond_dim"):
        ConsistencyModel(GaussianDiffusion(UNet(1, 8, (1, 2), cond_dim=3), Schedule.make("linear", 100), (1, 8, 8)))


def test_distillation_loss_matches_hand_computation():
    """With a zeroed output layer (teacher eps = 0, student v = 0) every term has a closed form: the teacher's clipped DDIM
    step and f = c_skip x / sqrt(ab) + (1 - c_skip) sqrt(ab) x."""
    cm = _cm(grid=5)
    for p in cm.pixel.unet.out[-1].parameters():
        torch.nn.init.zeros_(p)  # eps_theta = 0 everywhere, for student, target and teacher alike
    x0 = torch.rand(6, 1, 8, 8) * 2 - 1
    torch.manual_seed(0)
    loss, _ = cm.distillation_loss(x0, cm.pixel, copy.deepcopy(cm))
    torch.manual_seed(0)
    grid = torch.as_tensor(cm.grid)
    n = torch.randint(0, len(cm.grid) - 1, (6,))
    t_hi, t_lo = grid[n + 1], grid[n]
    sched = cm.pixel.schedule
    x_hi = sched.q_sample(x0, t_hi, torch.randn_like(x0))
    ab_hi, ab_lo = sched.at(t_hi, x0), sched.at(t_lo, x0)
    x0c = (x_hi / ab_hi.sqrt()).clamp(-1, 1)  # teacher: clean prediction (eps = 0), clipped, eps re-derived
    x_lo = ab_lo.sqrt() * x0c + (1 - ab_lo).sqrt() * (x_hi - ab_hi.sqrt() * x0c) / (1 - ab_hi).sqrt()

    sigma_min = ((1 - sched.alphabar[1]) / sched.alphabar[1]).sqrt().item()

    def f(x, ab, t):  # v = 0
        c_skip = 0.25 / ((((1 - ab) / ab).sqrt() - sigma_min) ** 2 + 0.25)
        return c_skip * x / ab.sqrt() + (1 - c_skip) * ab.sqrt() * x

    expected = (f(x_hi, ab_hi, t_hi) - f(x_lo, ab_lo, t_lo)).pow(2).mean()
    torch.testing.assert_close(loss, expected)
    assert loss > 0


def test_cd_training_with_ema_target_resumes_exactly(tmp_path):
    """The EMA is CD's target network: it is checkpointed, so a resumed run matches an uninterrupted one."""
    teacher = _cm().pixel
    data = torch.rand(32, 1, 8, 8) * 2 - 1

    def run(directory: Path, steps: int):
        student = _cm(grid=5)
        student.pixel.load_state_dict(teacher.state_dict())
        spec = TrainSpec(steps=steps, batch_size=8, lr=1e-3, ema_decay=0.9, ckpt_every=2, seed=1)
        return train(student, lambda m, x, target: m.distillation_loss(x, teacher, target), data, spec, directory,
                     progress=False, ema_target=True)

    full = run(tmp_path / "full", 4).ema.state_dict()
    run(tmp_path / "cut", 4)
    (tmp_path / "cut" / "ckpt-00000004.pt").unlink()  # as if killed between step 2's and step 4's checkpoints
    resumed = run(tmp_path / "cut", 4)
    assert resumed.resumed_from == 2
    for k, v in full.items():
        assert torch.equal(v, resumed.ema.state_dict()[k]), k


def test_pipeline_trains_ldm_and_cmcd_stages(tmp_path):
    """The smoke config's LDM (two stages) and CM-CD (from a DDIM teacher) through stages.train_stage."""
    cfg = track_view(load_config(ROOT / "config/smoke.yaml"), "image")
    for section in ("autoencoder", "latent"):
        cfg["models"]["ldm"][section]["steps"] = 2
    cfg["models"]["cmcd"]["train"]["steps"] = 2
    cfg["models"]["ddim"]["train"]["steps"] = 1
    data = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cpu = torch.device("cpu")
    ae, _, _ = stages.train_stage("image", "ldm", "autoencoder", cfg, data, tmp_path / "ae", cpu)
    ldm, res, _ = stages.train_stage("image", "ldm", "latent", cfg, data, tmp_path / "lat", cpu, ae)
    assert res.steps == 2 and ldm.z_scale.item() != 1.0
    for name, part in (("encoder", ldm.encoder), ("decoder", ldm.decoder)):  # stage 2 leaves the autoencoder frozen
        for (k, a), b in zip(part.state_dict().items(), getattr(ae, name).state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k}"
    teacher, _, _ = stages.train_stage("image", "ddim", "train", cfg, data, tmp_path / "ddim", cpu)
    cm, _, _ = stages.train_stage("image", "cmcd", "distill", cfg, data, tmp_path / "cm", cpu, teacher)
    assert isinstance(cm, ConsistencyModel) and cm.generate([0, 1], 2).shape == (2, 1, 32, 32)
    w = registry.apply_overrides(cfg, registry.resolve("image", "diled_w0.5", cfg).overrides)
    assert w["models"]["diled"]["w"] == 0.5 and cfg["models"]["diled"]["w"] == 1.0
