"""Schedules and samplers against closed forms (analytic denoisers for Gaussian data)."""

from __future__ import annotations

import math

import pytest
import torch

from diled.diffusion import (
    Schedule,
    ddim_invert,
    ddim_sample,
    ddpm_sample,
    derive_seed,
    make_betas,
    seeded_normal,
    slerp,
    timestep_subsequence,
)


def test_constant_schedule_indexing_default_and_official():
    s0 = Schedule.make("constant", 1000, value=0.008)
    s1 = Schedule.make("constant", 1000, shift=1, value=0.008)
    for t in (1, 2, 10, 1000):
        assert s0.alphabar[t].item() == pytest.approx(0.992**t, rel=1e-12)
        assert s1.alphabar[t].item() == pytest.approx(0.992 ** (t + 1), rel=1e-12)
    assert s0.alphabar[0].item() == 1.0 and s1.alphabar[0].item() == 1.0
    assert s0.alphas[1].item() == pytest.approx(0.992) and s0.betas[5].item() == pytest.approx(0.008)


def test_linear_schedule_endpoints_and_lambda():
    betas = make_betas("linear", 1000)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    s = Schedule.from_betas(betas)
    t = torch.tensor([1, 500, 1000])
    ab = torch.cumprod(1 - betas, 0)
    expected = betas[t - 1] / (2 * (1 - betas[t - 1]) * (1 - ab[t - 1]))
    torch.testing.assert_close(s.lambda_t(t), expected)


@pytest.mark.parametrize("bad", [dict(kind="cosine", T=10), dict(kind="constant", T=0), dict(kind="constant", T=10, value=1.5)])
def test_bad_schedules_raise(bad):
    with pytest.raises(ValueError):
        make_betas(**bad)


def test_timestep_subsequence():
    assert timestep_subsequence(1000, 10) == [1, 112, 223, 334, 445, 556, 667, 778, 889, 1000]
    assert timestep_subsequence(1000, 1) == [1000]
    assert timestep_subsequence(5, 5) == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        timestep_subsequence(10, 11)


def test_q_sample_moments():
    s = Schedule.make("linear", 1000)
    x0 = torch.full((200_000, 1), 2.0)
    t = torch.full((200_000,), 300)
    xt = s.q_sample(x0, t, torch.randn(200_000, 1, generator=torch.Generator().manual_seed(0)))
    ab = s.alphabar[300].item()
    assert xt.mean().item() == pytest.approx(2 * math.sqrt(ab), abs=0.01)
    assert xt.var().item() == pytest.approx(1 - ab, abs=0.01)


def gaussian_eps(schedule: Schedule, mean: torch.Tensor, cov: torch.Tensor):
    """The exact eps-predictor E[eps | x_t] for data ~ N(mean, cov)."""

    def eps_fn(x, t):
        ab = schedule.alphabar[t[0]].item()
        marg = ab * cov + (1 - ab) * torch.eye(len(mean), dtype=cov.dtype)
        centred = x - math.sqrt(ab) * mean
        return math.sqrt(1 - ab) * torch.linalg.solve(marg, centred.T).T

    return eps_fn


MEAN = torch.tensor([1.5, -0.5], dtype=torch.float64)
COV = torch.tensor([[0.5, 0.3], [0.3, 0.4]], dtype=torch.float64)


def _moments(x):
    return x.mean(0), torch.cov(x.T)


def test_ddpm_recovers_gaussian_mean_and_covariance():
    s = Schedule.make("linear", 1000)
    n = 20_000
    x_T = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    out = ddpm_sample(gaussian_eps(s, MEAN, COV), x_T, s, lambda i: torch.randn(n, 2, dtype=torch.float64, generator=g))
    mu, cov = _moments(out)
    torch.testing.assert_close(mu, MEAN, atol=0.03, rtol=0)
    torch.testing.assert_close(cov, COV, atol=0.03, rtol=0)


@pytest.mark.parametrize("steps", [50, 200])
def test_ddim_recovers_gaussian_mean_and_covariance(steps):
    s = Schedule.make("linear", 1000)
    x_T = torch.randn(20_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    out = ddim_sample(gaussian_eps(s, MEAN, COV), x_T, s, timestep_subsequence(1000, steps))
    mu, cov = _moments(out)
    torch.testing.assert_close(mu, MEAN, atol=0.03, rtol=0)
    torch.testing.assert_close(cov, COV, atol=0.04, rtol=0)


def test_ddim_inversion_round_trip_with_exact_denoiser():
    """Invert then decode returns the input, with the first-order error of DDIM inversion: error * steps ~ const."""
    s = Schedule.make("linear", 1000)
    eps_fn = gaussian_eps(s, MEAN, COV)
    x0 = MEAN + torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) @ torch.linalg.cholesky(COV).T
    scaled = {}
    for steps in (20, 100, 1000):
        ts = timestep_subsequence(1000, steps)
        back = ddim_sample(eps_fn, ddim_invert(eps_fn, x0, s, ts), s, ts)
        scaled[steps] = (back - x0).abs().max().item() * steps
    assert scaled[1000] / 1000 < 0.01
    assert max(scaled.values()) / min(scaled.values()) < 1.2  # error shrinks as 1 / steps


def test_ddim_eta1_equals_ddpm():
    s = Schedule.make("linear", 50)
    eps_fn = gaussian_eps(s, MEAN, COV)
    x_T = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(50, 8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    a = ddpm_sample(eps_fn, x_T, s, lambda i: noise[i])
    b = ddim_sample(eps_fn, x_T, s, list(range(1, 51)), eta=1.0, noise_fn=lambda i: noise[i])
    torch.testing.assert_close(a, b)


def test_sampler_argument_errors():
    s = Schedule.make("linear", 10)
    eps_fn = lambda x, t: torch.zeros_like(x)  # noqa: E731
    with pytest.raises(ValueError):
        ddim_sample(eps_fn, torch.zeros(1, 2), s, [5, 3])
    with pytest.raises(ValueError):
        ddim_sample(eps_fn, torch.zeros(1, 2), s, [1, 11])
    with pytest.raises(ValueError):
        ddim_sample(eps_fn, torch.zeros(1, 2), s, [1, 5], eta=0.5)


def test_seeded_noise_does_not_depend_on_batch():
    seeds = [derive_seed(0, "gen", i) for i in range(6)]
    full = seeded_normal((3, 4), seeds)
    torch.testing.assert_close(seeded_normal((3, 4), seeds[2:5]), full[2:5])
    assert not torch.equal(full[0], full[1])
    assert derive_seed(0, "gen", 1) == derive_seed(0, "gen", 1) != derive_seed(0, "rec", 1)


def test_slerp_endpoints_and_norm():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 1000, generator=g), torch.randn(4, 1000, generator=g)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b, atol=1e-5, rtol=1e-5)
    mid = slerp(a, b, 0.5)
    # two independent Gaussian vectors are nearly orthogonal: slerp keeps the norm, lerp shrinks it by ~1/sqrt(2)
    assert (mid.norm(dim=1) / a.norm(dim=1)).sub(1).abs().max() < 0.1


def test_clip_bounds_every_prediction_and_is_inactive_inside_range():
    s = Schedule.make("linear", 1000)
    x_T = torch.randn(256, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    far = gaussian_eps(s, torch.tensor([5.0, 5.0], dtype=torch.float64), COV)
    out = ddim_sample(far, x_T, s, timestep_subsequence(1000, 20), clip=1.0)
    assert out.abs().max() <= 1.0 + 1e-9
    # data well inside [-1, 1]: clipping changes nothing
    near = gaussian_eps(s, torch.zeros(2, dtype=torch.float64), 1e-4 * torch.eye(2, dtype=torch.float64))
    ts = timestep_subsequence(1000, 20)
    torch.testing.assert_close(ddim_sample(near, x_T, s, ts, clip=1.0)[:, :], ddim_sample(near, x_T, s, ts))
