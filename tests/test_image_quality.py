"""Issue 10: noise-level weighting, reconstruction protocols, latent health, FID intervals and KID, noise-aware bold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_objective import _unzero_output_layers, image_diled

from baselines import DDIM
from diled import latent_health
from diled.diffusion import GaussianDiffusion, Schedule, derive_seed, loss_weight
from diled.metrics import uncertainty
from diled.nets import UNet
from diled.report import tables

SEEDS = [3, 4, 5, 6]


# ----------------------------------------------------------------------------- loss weighting


def test_loss_weights_against_hand_computed_snr():
    sched = Schedule.make("linear", 1000)
    t = torch.tensor([1, 300, 600, 1000])
    ab = sched.alphabar[t]
    snr = ab / (1 - ab)
    assert torch.equal(loss_weight(sched, t, "uniform"), torch.ones(4))
    # min-SNR-5: 5 / SNR where SNR > 5 (t = 1: SNR ~ 1e4), 1 where SNR <= 5 (t = 600, 1000)
    torch.testing.assert_close(loss_weight(sched, t, "min_snr", 5.0), torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)).div(snr).float())
    w = loss_weight(sched, t, "trunc_snr", 20.0)
    assert w[0] == 1.0 and w[-1] == 20.0  # SNR >= 1: the eps loss; tiny SNR: capped x0 loss
    assert w[2].item() == pytest.approx(min(max(1.0, (1 / snr[2]).item()), 20.0), rel=1e-6)
    with pytest.raises(ValueError, match="unknown loss weighting"):
        loss_weight(sched, t, "p3")
    with pytest.raises(ValueError, match="unknown loss weighting"):
        GaussianDiffusion(UNet(1, 8, (1, 2)), sched, (1, 8, 8), weighting="p3")


def test_weighted_decoder_loss_is_the_weight_times_the_plain_loss():
    torch.manual_seed(0)
    sched = Schedule.make("linear", 1000)
    unet = UNet(1, 8, (1, 2))
    plain = GaussianDiffusion(unet, sched, (1, 8, 8))
    weighted = GaussianDiffusion(unet, sched, (1, 8, 8), weighting="trunc_snr", gamma=20.0)
    x, t = torch.rand(3, 1, 8, 8) * 2 - 1, torch.tensor([5, 500, 990])
    torch.manual_seed(1)
    a = plain.loss(x, t=t)
    torch.manual_seed(1)
    b = weighted.loss(x, t=t)
    torch.testing.assert_close(b, a * loss_weight(sched, t, "trunc_snr", 20.0))


# ----------------------------------------------------------------------------- reconstruction protocols


def test_inverted_protocol_uses_the_decoders_inversion_and_random_does_not():
    model = image_diled().eval()
    _unzero_output_layers(model)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    z = model.encode(x)
    random = model.reconstruct(x, 3, SEEDS)
    inverted = model.reconstruct(x, 3, SEEDS, protocol="inverted")
    torch.testing.assert_close(random, model.decode(z, 3, SEEDS))
    torch.testing.assert_close(inverted, model.decode(z, 3, SEEDS, x_T=model.invert_decoder(x, z, 3)))
    assert not torch.allclose(random, inverted)
    with pytest.raises(ValueError, match="unknown reconstruction protocol"):
        model.reconstruct(x, 3, SEEDS, protocol="oracle")


def test_ddim_protocols_are_one_computation_and_its_mix_is_configurable():
    torch.manual_seed(0)
    pixel = GaussianDiffusion(UNet(1, 8, (1, 2)), Schedule.make("linear", 1000), (1, 8, 8))
    ddim = DDIM(pixel).eval()
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(ddim.reconstruct(x, 4, [0, 1], protocol="inverted"), ddim.reconstruct(x, 4, [0, 1]))
    a, b = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(DDIM(pixel, "lerp").mix(a, b, 0.25), 0.75 * a + 0.25 * b)
    assert not torch.allclose(ddim.mix(a, b, 0.25), 0.75 * a + 0.25 * b)  # slerp keeps the norm of Gaussian noise
    with pytest.raises(ValueError, match="slerp or lerp"):
        DDIM(pixel, "nlerp")


def test_evaluation_sets_carry_both_protocols_for_a_stochastic_decoder():
    from diled.modalities.image.model import evaluation_sets

    model = image_diled().eval()
    ref = np.random.default_rng(0).integers(0, 256, (6, 1, 8, 8), dtype=np.uint8)
    sets = evaluation_sets(model, ref, 2, 4, [0.5], seed=0, batch_size=3)
    assert {"gen", "rec", "rec_inverted", "interp_0.5", "source_a", "source_b"} == set(sets)
    inv = evaluation_sets(model, ref, 2, 4, [0.5], seed=0, batch_size=3, interp_protocol="inverted")
    assert np.array_equal(inv["rec_inverted"], sets["rec_inverted"]) and not np.array_equal(inv["interp_0.5"], sets["interp_0.5"])


# ----------------------------------------------------------------------------- latent health


def test_latent_health_detects_an_ignored_z_and_a_collapsed_code():
    model = image_diled().eval()
    _unzero_output_layers(model)  # a fresh UNet outputs eps = 0 whatever z is
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    assert all(abs(g - 1) > 1e-4 for g in latent_health.eps_gain(model, x, ts=(10, 500)).values())
    for block in model.decoder.unet.modules():
        if getattr(block, "cond", None) is not None:
            torch.nn.init.zeros_(block.cond.weight)  # the decoder now ignores z exactly
            torch.nn.init.zeros_(block.cond.bias)
    gains = latent_health.eps_gain(model, x, ts=(10, 500))
    assert gains == {10: pytest.approx(1.0, abs=1e-6), 500: pytest.approx(1.0, abs=1e-6)}
    assert latent_health.code_spread(torch.ones(5, 4)) == 0.0
    assert latent_health.code_spread(torch.tensor([[0.0, 1.0], [2.0, 3.0]])) == pytest.approx(2**0.5)
    assert latent_health.eps_gain(DDIM(GaussianDiffusion(UNet(1, 8, (1, 2)), Schedule.make("linear", 100), (1, 8, 8))), x) is None
    assert latent_health.class_preservation(lambda im: im[:, 0, 0, 0], np.arange(4).reshape(4, 1, 1, 1), [0, 1, 5, 3]) == 0.75


# ----------------------------------------------------------------------------- intervals and KID


def test_gram_fid_equals_pytorch_fid():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 16)), rng.normal(size=(60, 16)) * 1.3 + 0.2
    ref = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert uncertainty.fid_gram(a, b) == pytest.approx(ref, rel=1e-6)  # scipy sqrtm vs an eigen-decomposition
    # the Gram form holds when N < d (rank-deficient covariances: what 100 images in 2048-d give)
    a, b = rng.normal(size=(12, 64)), rng.normal(size=(20, 64)) + 0.1
    ref = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert uncertainty.fid_gram(a, b) == pytest.approx(ref, rel=1e-6)


def test_bootstrap_interval_is_the_recentred_spread_of_resampled_fids():
    rng = np.random.default_rng(1)
    gen, ref = rng.normal(size=(30, 8)) + 0.5, rng.normal(size=(50, 8))
    point = uncertainty.fid_gram(gen, ref)
    ci = uncertainty.bootstrap_fid(gen, ref, point, n_boot=50, seed=7)
    draw = np.random.default_rng(derive_seed(7, "bootstrap-fid") % 2**32)
    reps = [uncertainty.fid_gram(gen[draw.integers(0, 30, 30)], ref) for _ in range(50)]
    q_lo, med, q_hi = np.quantile(reps, [0.025, 0.5, 0.975])
    assert ci["lo"] == pytest.approx(point - (med - q_lo), rel=1e-6) and ci["hi"] == pytest.approx(point + (q_hi - med), rel=1e-6)
    assert ci["lo"] < point < ci["hi"] and ci["std"] == pytest.approx(np.std(reps, ddof=1), rel=1e-6)
    assert uncertainty.bootstrap_fid(gen, ref, point, n_boot=50, seed=7) == ci  # seeded
    wide = uncertainty.bootstrap_fid(gen[:8], ref, uncertainty.fid_gram(gen[:8], ref), n_boot=50, seed=7)
    assert wide["hi"] - wide["lo"] > ci["hi"] - ci["lo"]  # fewer images, more noise


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(200, 32))
    same = uncertainty.kid(rng.normal(size=(200, 32)), ref, subsets=20, subset_size=100)
    shifted = uncertainty.kid(rng.normal(size=(200, 32)) + 0.5, ref, subsets=20, subset_size=100)
    assert abs(same["mean"]) < 3 * same["std"] and shifted["mean"] > 10 * same["std"] > 0
    assert uncertainty.kid(rng.normal(size=(50, 32)), ref, subsets=2)["subset_size"] == 50  # default: the smaller set


# ----------------------------------------------------------------------------- bold only beyond the noise


def _df(rows):
    return tables.with_not_run(pd.DataFrame([{**{c: np.nan for c in tables.SHOWN}, **r, "manifest": "m"} for r in rows]), {})


def test_bold_needs_intervals_that_do_not_overlap():
    close = _df([
        {"model": "DDIM", "T": 10, "Gen FID": 5.0, "Gen FID lo": 4.0, "Gen FID hi": 6.0},
        {"model": "DiLED", "T": 10, "Gen FID": 4.5, "Gen FID lo": 3.6, "Gen FID hi": 5.4},
    ])
    assert not tables.bold_mask(close)["Gen FID"].any()  # 4.5 vs 5.0 is within the noise
    apart = close.assign(**{"Gen FID lo": [4.0, 2.0], "Gen FID hi": [6.0, 3.9], "Gen FID": [5.0, 3.0]})
    assert tables.bold_mask(apart)["Gen FID"].tolist() == [False, True]
    ssim = _df([
        {"model": "DDIM", "T": 10, "Rec SSIM (random)": 0.50, "Rec SSIM (random) sem": 0.01},
        {"model": "DiLED", "T": 10, "Rec SSIM (random)": 0.52, "Rec SSIM (random) sem": 0.01},
    ])
    assert not tables.bold_mask(ssim)["Rec SSIM (random)"].any()  # 0.02 < 1.96 * sqrt(2) * 0.01 * 2
    assert tables.bold_mask(ssim.assign(**{"Rec SSIM (random)": [0.5, 0.6]}))["Rec SSIM (random)"].tolist() == [False, True]
    cells = tables._cells(apart, "**{}**")
    assert cells.at[1, "Gen FID"] == "**3.00 ±0.95**" and cells.at[0, "Gen FID"] == "5.00 ±1.00"


def test_control_must_train_on_diled_schedule():
    from diled.config import control_problems

    train = {"steps": 10, "batch_size": 4, "lr": 1e-3, "ema_decay": 0.9, "ckpt_every": 5}
    assert control_problems({"models": {"diled": {"train": train}, "diffae_ft": {"train": dict(train)}}}) == []
    bad = control_problems({"models": {"diled": {"train": train}, "diffae_ft": {"train": {**train, "steps": 20}}}})
    assert len(bad) == 1 and "must equal models.diled.train" in bad[0]


def test_editing_decodes_from_the_sources_inverted_x_t():
    from diled.editing import edit

    model = image_diled().eval()
    _unzero_output_layers(model)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    dirs = np.random.default_rng(0).normal(size=(10, 10, 4))
    out = edit(model, x, np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4]), dirs, [0.0, 2.0], 3, SEEDS)
    torch.testing.assert_close(out[0.0], model.reconstruct(x, 3, SEEDS, protocol="inverted"))
    assert not torch.allclose(out[2.0], out[0.0])
