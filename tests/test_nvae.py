"""The NVAE baseline: its KL against torch.distributions, the hierarchy's shapes, seeds, protocols, warm-up, L_SR."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from baselines.nvae import KL_FLOOR, NVAE, balanced_kl, build, residual_kl
from diled import capabilities, registry, stages
from diled.config import load_config, track_view

ROOT = Path(__file__).resolve().parent.parent


def tiny(**kw) -> NVAE:
    torch.manual_seed(0)
    return NVAE(1, 32, channels=8, latent_channels=2, groups=(2, 1), **kw).eval()


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_residual_kl_is_the_kl_of_the_two_normals():
    g = torch.Generator().manual_seed(1)
    mu_p, logsig_p, dmu, dlogsig = (torch.randn(50, generator=g) for _ in range(4))
    q = Normal(mu_p + dmu, (logsig_p + dlogsig).exp())
    p = Normal(mu_p, logsig_p.exp())
    torch.testing.assert_close(residual_kl(dmu, dlogsig, logsig_p), kl_divergence(q, p))
    assert torch.equal(residual_kl(torch.zeros(3), torch.zeros(3), torch.randn(3)), torch.zeros(3))  # q = p


def test_groups_shapes_and_capabilities():
    m = tiny()
    assert m.group_shapes() == [(2, 4, 4), (2, 4, 4), (2, 8, 8)]  # top (coarsest) scale first
    assert capabilities.missing(m, ["generate", "encode", "reconstruct", "interpolate", "represent"]) == []
    x = images(3)
    assert m.encode(x).shape == (3, 2 * 16 + 2 * 16 + 2 * 64)
    assert m.generate([0, 1], 1).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="cannot be halved 4 times"):
        NVAE(1, 24, groups=(1, 1, 1))
    with pytest.raises(ValueError, match="interpolate must be"):
        NVAE(1, 32, interpolate="some")


def test_generation_is_seeded_per_image_and_temperature_scales_the_prior():
    m = tiny()
    a = m.generate([3, 4, 5], 1)
    assert torch.equal(a, m.generate([3, 4, 5], 1))
    torch.testing.assert_close(a[1:], m.generate([4, 5], 1), atol=1e-5, rtol=0)  # sample i never depends on its batch
    assert (a.abs() <= 1).all()  # Bernoulli means, mapped to [-1, 1]
    spread = {t: tiny(temperature=t).generate(list(range(8)), 1).std(0).mean().item() for t in (1.0, 0.3, 1e-6)}
    assert spread[1.0] > spread[0.3] > 100 * spread[1e-6]  # towards temperature 0 every seed gives the prior's mode


def test_reconstruction_decodes_the_posterior_means_under_both_protocols():
    m, x = tiny(), images(4)
    rec = m.reconstruct(x, 1, [0, 1, 2, 3])
    assert torch.equal(rec, m.decode(m.encode(x))) and torch.equal(rec, m.reconstruct(x, 1, [9, 9, 9, 9], "inverted"))


def test_top_mixing_keeps_the_mixed_top_group_and_derives_the_groups_below_from_it():
    m, xa, xb = tiny(interpolate="top"), images(2, 0), images(2, 1)
    za, zb = m.encode(xa), m.encode(xb)
    top = 2 * 4 * 4
    mixed = m.mix(za, zb, 0.25)
    torch.testing.assert_close(mixed[:, :top], 0.75 * za[:, :top] + 0.25 * zb[:, :top])
    other_lower = torch.cat([za[:, :top], torch.randn_like(za[:, top:])], 1)
    assert torch.equal(m.mix(za, zb, 0.25), m.mix(other_lower, zb, 0.25))  # below the top: the prior's means given it
    assert not torch.allclose(mixed[:, top:], (0.75 * za + 0.25 * zb)[:, top:])
    every = tiny()  # interpolate: all, the default
    torch.testing.assert_close(every.interpolate(xa, xb, 0.0, 1, [7, 8]), every.reconstruct(xa, 1, [7, 8]))
    torch.testing.assert_close(every.mix(za, zb, 0.25), 0.75 * za + 0.25 * zb)


def test_kl_balancing_weighs_each_group_by_its_share_of_the_kl():
    kl = torch.tensor([[2.0, 2.0], [4.0, 4.0]])
    torch.testing.assert_close(balanced_kl(kl, torch.ones(2)), kl.sum(1))  # equal groups: the plain sum
    # one group carrying nothing: coefficients (1 + 0.01, 0 + 0.01) / alpha, normalised to mean 1
    c = torch.tensor([1.01, 0.01]) / 0.51
    torch.testing.assert_close(balanced_kl(torch.tensor([[1.0, 0.0]]), torch.ones(2)), c[:1])
    c = torch.tensor([1.01, 0.01 / 4]) / ((1.01 + 0.0025) / 2)  # a group with 4x the dimensions per group pays less per nat
    torch.testing.assert_close(balanced_kl(torch.tensor([[1.0, 0.0]]), torch.tensor([1.0, 4.0])), c[:1])
    assert tiny().balance_weights().tolist() == [1.0, 1.0, 8.0]  # (4 x 4) / 2 groups, twice; (8 x 8) / 1 group


def test_kl_warmup_ramps_from_the_floor_and_its_clock_is_state():
    m = tiny(kl_warmup=4).train()
    seen = [m.loss(images(2))[1]["beta"] for _ in range(6)]
    assert seen == [KL_FLOOR, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert int(m.state_dict()["steps_done"]) == 6
    m.eval()
    m.loss(images(2))
    assert int(m.steps_done) == 6  # evaluation does not advance it


def test_spectral_regularisation_is_the_sum_of_each_convolutions_largest_singular_value():
    m = tiny(spectral_reg=0.1)
    want = sum(torch.linalg.svdvals(c.weight.flatten(1))[0] for c in m.modules() if isinstance(c, torch.nn.Conv2d))
    torch.testing.assert_close(m.spectral_penalty(), want)
    loss, parts = m.train().loss(images(2))
    assert parts["sr"] == pytest.approx(want.item(), rel=1e-5) and loss.requires_grad


def test_the_model_file_builds_and_trains_through_the_pipeline(tmp_path):
    view = track_view(load_config(ROOT / "config/smoke.yaml"), "image")
    spec = registry.get("image", "nvae")
    assert spec.display == "NVAE" and spec.steps(view) == [1] and spec.step_kind != "DDIM steps"
    assert isinstance(build(view), NVAE)
    data = images(16)
    model, res, _ = stages.train_stage("image", "nvae", "train", view, data, tmp_path / "run", torch.device("cpu"))
    assert res.steps == view["models"]["nvae"]["train"]["steps"] and int(model.steps_done) == res.steps
    again, _, _ = stages.train_stage("image", "nvae", "train", view, data, tmp_path / "run2", torch.device("cpu"))
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k  # deterministic from the config's seed
