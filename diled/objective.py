"""DiLED's generalized objective (paper Eq. 30-33) as pure tensor functions.

One timestep t ~ U{1..T} per example. With x1 = E(x0) + s1 * eps1 (the encoder sample) and
x_t = sqrt(alphabar_t) x1 + sqrt(1 - alphabar_t) eps (see ``diffusion.Schedule`` for the indexing):

    elbo form   loss = L_rec(x0 | x1) / (T * lambda_t)  +  w * l_t
    image form  loss = (2 - w) * L_decoder(t)            +  w * l_t      (one t shared by both)

    l_t = ||eps - eps_theta(x_t, t)||^2                                         t > 1
    l_1 = (alpha_1 / beta_1) ||mu - (x_t - sqrt(beta_1) eps_theta) / sqrt(alpha_1)||^2

where mu = E(x0) is the encoder *mean* (the alignment term) and (alpha_1, beta_1) the single first step
(``Schedule.first_step``). For the default indexing alpha_1 = alphabar_1 and beta_1 = 1 - alphabar_1;
with the official indexing (``alphabar_shift: 1``) x_1 carries alphabar_1 = 0.992^2 but the alignment
still uses alpha_1 = 0.992, beta_1 = 0.008 (weight 124), as upstream does.
Squared norms are means over latent dimensions; L_rec is whatever per-example reconstruction loss
the decoder reports (token NLL summed over positions for text).
"""

from __future__ import annotations

import torch

from diled.diffusion import Schedule, sample_timesteps

__all__ = ["sample_timesteps", "latent_term", "reconstruction_weight", "elbo_loss", "image_loss"]


def _mean_sq(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).flatten(1).mean(1)


def latent_term(
    schedule: Schedule,
    t: torch.Tensor,
    x_t: torch.Tensor,
    eps: torch.Tensor,
    eps_pred: torch.Tensor,
    mean: torch.Tensor,
) -> torch.Tensor:
    """Per-example l_t: eps matching for t > 1, alignment to the encoder mean for t = 1."""
    eps_term = _mean_sq(eps - eps_pred)
    a1, b1 = schedule.first_step()
    x1_hat = (x_t - b1**0.5 * eps_pred) / a1**0.5
    align_term = a1 / b1 * _mean_sq(mean - x1_hat)
    return torch.where(t == 1, align_term, eps_term)


def reconstruction_weight(schedule: Schedule, t: torch.Tensor) -> torch.Tensor:
    """1 / (T * lambda_t): spreads L_rec over all timesteps so encoder and decoder learn at every t."""
    lam = schedule.lambda_t(t.cpu()).to(torch.float32).to(t.device)
    return 1.0 / (schedule.T * lam)


def elbo_loss(schedule: Schedule, t: torch.Tensor, rec: torch.Tensor, latent: torch.Tensor, w: float) -> torch.Tensor:
    """Per-example elbo-form loss L_rec / (T lambda_t) + w l_t (text, proteins, any likelihood decoder)."""
    return reconstruction_weight(schedule, t) * rec + w * latent


def image_loss(decoder: torch.Tensor, latent: torch.Tensor, w: float) -> torch.Tensor:
    """Per-example image-form loss w * L_latent + (2 - w) * L_decoder (decoder is a pixel diffusion)."""
    if not 0.0 <= w <= 2.0:
        raise ValueError(f"image objective needs 0 <= w <= 2, got {w}")
    return w * latent + (2.0 - w) * decoder
