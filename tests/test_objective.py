"""The generalized objective against hand computation, and gradient flow at every t."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diled import objective as obj
from diled.diffusion import GaussianDiffusion, Schedule
from diled.modalities.tokens import CategoricalDecoder, TokenEncoder
from diled.model import DiLED
from diled.nets import ConvEncoder, MLPSkipNet, UNet

SCHED = Schedule.make("constant", 1000, value=0.008)


def test_reconstruction_weight_is_one_over_T_lambda():
    t = torch.tensor([1, 2, 500, 1000])
    a, b = 0.992, 0.008
    lam = torch.tensor([b / (2 * a * (1 - a**k)) for k in (1, 2, 500, 1000)])
    torch.testing.assert_close(obj.reconstruction_weight(SCHED, t), (1 / (1000 * lam)).float())
    # at t = 1, 1 - alphabar_1 = beta_1, so lambda_1 = 1 / (2 alpha_1)
    assert obj.reconstruction_weight(SCHED, torch.tensor([1])).item() == pytest.approx(2 * 0.992 / 1000, rel=1e-6)


def test_latent_term_eps_matching_for_t_above_one():
    g = torch.Generator().manual_seed(0)
    eps, pred, x_t, mean = (torch.randn(3, 4, generator=g) for _ in range(4))
    t = torch.tensor([2, 10, 1000])
    torch.testing.assert_close(obj.latent_term(SCHED, t, x_t, eps, pred, mean), (eps - pred).pow(2).mean(1))


def test_latent_term_at_t1_aligns_to_encoder_mean():
    g = torch.Generator().manual_seed(1)
    eps, pred, x_t, mean = (torch.randn(2, 4, generator=g) for _ in range(4))
    t = torch.tensor([1, 1])
    a1, b1 = 0.992, 0.008
    x1_hat = (x_t - b1**0.5 * pred) / a1**0.5
    expected = a1 / b1 * (mean - x1_hat).pow(2).mean(1)
    got = obj.latent_term(SCHED, t, x_t, eps, pred, mean)
    torch.testing.assert_close(got, expected)
    # the true noise does not enter the t = 1 term; the mean does
    torch.testing.assert_close(obj.latent_term(SCHED, t, x_t, eps * 7, pred, mean), got)
    assert not torch.allclose(obj.latent_term(SCHED, t, x_t, eps, pred, mean + 1), got)


def test_official_indexing_keeps_the_single_step_alignment():
    """Upstream (alphabar_t = 0.992^(t+1)) still aligns at t = 1 with alpha = 0.992, beta = 0.008: weight 124,
    x1_hat = (x_t - sqrt(0.008) eps_hat) / sqrt(0.992); only x_t itself carries the shifted alphabar_1."""
    shifted = Schedule.make("constant", 1000, shift=1, value=0.008)
    assert shifted.alphabar[1].item() == pytest.approx(0.992**2, rel=1e-12)
    assert shifted.first_step() == pytest.approx((0.992, 0.008), rel=1e-12)
    x_t, eps, pred, mean = torch.full((1, 2), 0.5), torch.zeros(1, 2), torch.full((1, 2), 0.3), torch.ones(1, 2)
    x1_hat = (0.5 - 0.008**0.5 * 0.3) / 0.992**0.5
    expected = 124 * (1 - x1_hat) ** 2
    assert obj.latent_term(shifted, torch.tensor([1]), x_t, eps, pred, mean).item() == pytest.approx(expected, rel=1e-6)
    # without the shift the single step and the cumulative one coincide
    plain = Schedule.make("constant", 1000, value=0.008)
    assert plain.first_step() == pytest.approx((plain.alphabar[1].item(), 1 - plain.alphabar[1].item()), rel=1e-12)


def test_image_loss_weights_and_range():
    dec, lat = torch.tensor([2.0]), torch.tensor([3.0])
    assert obj.image_loss(dec, lat, 1.5).item() == pytest.approx(1.5 * 3 + 0.5 * 2)
    with pytest.raises(ValueError):
        obj.image_loss(dec, lat, 2.5)


def image_diled(w: float = 1.0) -> DiLED:
    torch.manual_seed(0)
    unet = UNet(1, 8, (1, 2), cond_dim=4)
    return DiLED(ConvEncoder(1, 8, (1, 2), 4), MLPSkipNet(4, 16, 3, 8), GaussianDiffusion(unet, Schedule.make("linear", 1000), (1, 8, 8)), SCHED, 4, w=w)


def token_diled(w: float = 8.0) -> DiLED:
    torch.manual_seed(0)
    return DiLED(TokenEncoder(11, 6, 4, 16), MLPSkipNet(4, 16, 3, 8), CategoricalDecoder(11, 6, 4, 16), SCHED, 4, w=w)


def _unzero_output_layers(model: nn.Module) -> None:
    """Fresh nets zero their last layers (eps = 0 at init); give them weights so every path carries gradient."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)) and m.weight.abs().sum() == 0:
            nn.init.normal_(m.weight, std=0.1)


@pytest.mark.parametrize("make,data", [
    (image_diled, lambda: torch.rand(3, 1, 8, 8) * 2 - 1),
    (token_diled, lambda: torch.randint(0, 11, (3, 6))),
], ids=["gaussian-pixel-decoder", "categorical-decoder"])
@pytest.mark.parametrize("t_value", [1, 2, 500, 1000])
def test_encoder_and_decoder_get_gradient_at_every_t(make, data, t_value):
    model = make()
    _unzero_output_layers(model)
    x0 = data()
    loss, _ = model.loss(x0, t=torch.full((3,), t_value))
    loss.backward()
    for part in ("encoder", "decoder", "denoiser"):
        grads = [p.grad for p in getattr(model, part).parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum().item() for g in grads) > 0, f"{part} got no gradient at t={t_value}"


def test_loss_t1_uses_encoder_mean_end_to_end():
    """DiLED.loss at t = 1 equals the hand-built alignment + reconstruction with the encoder *mean* as target."""
    model = token_diled(w=8.0)
    _unzero_output_layers(model)
    x0 = torch.randint(0, 11, (4, 6), generator=torch.Generator().manual_seed(3))
    t = torch.ones(4, dtype=torch.long)
    torch.manual_seed(7)
    loss, _ = model.loss(x0, t=t)
    torch.manual_seed(7)
    mean = model.encoder(x0)
    x1 = mean + 0.008**0.5 * torch.randn_like(mean)
    eps = torch.randn_like(x1)
    x_t = 0.992**0.5 * x1 + 0.008**0.5 * eps
    x1_hat = (x_t - 0.008**0.5 * model.denoiser(x_t, t)) / 0.992**0.5
    align = 0.992 / 0.008 * (mean - x1_hat).pow(2).mean(1)
    rec = model.decoder.loss(x0, x1)
    expected = (rec * (2 * 0.992 / 1000) + 8.0 * align).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
