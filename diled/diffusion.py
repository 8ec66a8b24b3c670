"""Gaussian diffusion on any tensor: schedules, q(x_t | x_start), DDPM/DDIM sampling, DDIM inversion.

Timesteps are 1-indexed, t in {1..T}. ``Schedule.alphabar`` has T + 1 entries and
``alphabar[0] == 1``: index 0 is the clean point the chain starts from (``x_start``). Every sampler
ends with the clean prediction at alphabar = 1.

DiLED's latent chain starts at the encoder sample x1, and the official code indexes its cumulative
product one step further than the plain DDPM convention (alphabar_t = 0.992^(t+1) with t 1-indexed,
i.e. ``torch.cumprod(alphas)[t]`` read with a 1-indexed t). ``Schedule.from_betas(..., shift=1)``
reproduces that: alphabar_t = prod_{s=1}^{t+shift} alpha_s. ``shift=0`` (our default) is the
convention of DESIGN.md: x_t = sqrt(alphabar_t) x1 + sqrt(1 - alphabar_t) eps with
alphabar_t = prod_{s=1}^{t} alpha_s, so that alphabar_1 = alpha_1 and the t = 1 alignment weight is
exactly alpha_1 / beta_1.

Samplers take ``eps_fn(x_t, t) -> eps`` where ``t`` is a LongTensor of shape (B,): a plain function,
so a model, an analytic denoiser in a test, or a conditioned network all fit.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- schedules


def make_betas(kind: str, T: int, *, value: float = 0.008, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """Beta schedule of length T (float64): ``constant`` (DiLED/DiffAE latents) or ``linear`` (DDPM pixels)."""
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if kind == "constant":
        if not 0.0 < value < 1.0:
            raise ValueError(f"constant beta must lie in (0, 1), got {value}")
        return torch.full((T,), float(value), dtype=torch.float64)
    if kind == "linear":
        if not 0.0 < start <= end < 1.0:
            raise ValueError(f"linear betas need 0 < start <= end < 1, got {start}, {end}")
        return torch.linspace(start, end, T, dtype=torch.float64)
    raise ValueError(f"unknown beta schedule {kind!r}; choose 'constant' or 'linear'")


@dataclass(frozen=True)
class Schedule:
    """Cumulative noise levels of a diffusion chain; ``alphabar[t]`` for t = 0..T with alphabar[0] = 1.

    ``step_betas`` keeps the configured per-step betas (index 0 unused) when the schedule was made from
    them: with an index shift, alphabar_1 is no longer 1 - beta_1, and the t = 1 alignment term of the
    official code uses the single step (``first_step``).
    """

    alphabar: torch.Tensor
    step_betas: torch.Tensor | None = None

    @classmethod
    def from_betas(cls, betas: torch.Tensor, shift: int = 0) -> Schedule:
        """Schedule from per-step betas; ``shift`` extra leading steps reproduce off-by-k indexings."""
        if shift < 0:
            raise ValueError("shift must be >= 0")
        betas = betas.to(torch.float64)
        full = torch.cat([betas[:1].expand(shift), betas]) if shift else betas
        ab = torch.cumprod(1.0 - full, dim=0)[shift:]
        one = torch.ones(1, dtype=torch.float64)
        return cls(torch.cat([one, ab]), torch.cat([0 * one, betas]))

    @classmethod
    def make(cls, kind: str, T: int, shift: int = 0, **kw: float) -> Schedule:
        """Shorthand for ``from_betas(make_betas(kind, T, **kw), shift)``."""
        return cls.from_betas(make_betas(kind, T, **kw), shift)

    @property
    def T(self) -> int:
        return self.alphabar.numel() - 1

    @property
    def alphas(self) -> torch.Tensor:
        """Per-step alpha_t = alphabar_t / alphabar_{t-1}, index 0 unused (= 1)."""
        ab = self.alphabar
        return torch.cat([ab[:1], ab[1:] / ab[:-1]])

    @property
    def betas(self) -> torch.Tensor:
        return 1.0 - self.alphas

    def first_step(self) -> tuple[float, float]:
        """(alpha_1, beta_1) of the single first step: the t = 1 alignment's inversion and weight alpha_1 / beta_1.

        Equal to (alphabar_1, 1 - alphabar_1) without an index shift. With ``shift = 1`` and constant
        beta = 0.008 it is (0.992, 0.008), weight 124, as the official code has it (its x_1 is built with
        alphabar_1 = 0.992^2 all the same: see ``../shared/notes/text-track.md``).
        """
        if self.step_betas is None:
            ab1 = self.alphabar[1].item()
            return ab1, 1.0 - ab1
        b1 = self.step_betas[1].item()
        return 1.0 - b1, b1

    def at(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alphabar_t gathered for a (B,) batch of timesteps, shaped to broadcast against ``like``."""
        ab = self.alphabar.to(like.device)[t].to(like.dtype)
        return ab.view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Closed-form x_t = sqrt(alphabar_t) x_start + sqrt(1 - alphabar_t) noise."""
        ab = self.at(t, x_start)
        return ab.sqrt() * x_start + (1 - ab).sqrt() * noise

    def predict_start(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_start implied by x_t and a noise estimate."""
        ab = self.at(t, x_t)
        return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()

    def lambda_t(self, t: torch.Tensor) -> torch.Tensor:
        """ELBO weight lambda_t = beta_t / (2 alpha_t (1 - alphabar_t)) of the eps-matching term."""
        a, b, ab = self.alphas[t], self.betas[t], self.alphabar[t]
        return b / (2 * a * (1 - ab))


SPACINGS = ("linspace", "ddim")


def timestep_subsequence(T: int, steps: int, spacing: str = "linspace") -> list[int]:
    """``steps`` of the timesteps 1..T, ascending: the sampler's subsequence.

    ``linspace`` (this suite's): spread evenly, always containing 1 and T. ``ddim``: DiffAE's (guided-diffusion's)
    ``ddimN``, the 0-indexed {0, s, 2s, ...} for the smallest stride s giving exactly ``steps`` of them, i.e.
    {1, 1 + s, ...} here (T = 1000, 10 steps: 1, 101, ..., 901); released DiffAE checkpoints were scored with it.
    """
    if not 1 <= steps <= T:
        raise ValueError(f"sampling steps must lie in 1..{T}, got {steps}")
    if spacing == "ddim":
        for stride in range(1, T + 1):
            if len(range(0, T, stride)) == steps:
                return [i + 1 for i in range(0, T, stride)]
        raise ValueError(f"ddim spacing: no stride gives exactly {steps} of {T} steps (guided-diffusion's ddimN rule)")
    if spacing != "linspace":
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {SPACINGS}")
    if steps == 1:
        return [T]
    seq = torch.linspace(1, T, steps, dtype=torch.float64).round().long().tolist()
    if len(set(seq)) != steps:  # only possible when steps is close to T
        raise ValueError(f"cannot place {steps} distinct steps in 1..{T}")
    return seq


# ----------------------------------------------------------------------------- seeded noise


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any hashable description, stable across processes and platforms."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def seeded_normal(shape: Sequence[int], seeds: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """Stack of standard normals, sample i drawn from its own generator seeded by ``seeds[i]``.

    Sample i therefore never depends on the batch it is drawn in (EDM's convention).
    """
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s))
        out.append(torch.randn(tuple(shape), generator=g, dtype=torch.float32))
    return torch.stack(out).to(device) if out else torch.empty(0, *shape, device=device)


# ----------------------------------------------------------------------------- samplers


def batch_t(t: int, x: torch.Tensor) -> torch.Tensor:
    """Timestep ``t`` for every sample of the batch ``x``: a (B,) LongTensor on x's device."""
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


def _ddim_update(x: torch.Tensor, eps: torch.Tensor, a_t, a_prev, clip: float | None, sigma: float = 0.0) -> torch.Tensor:
    """The DDIM move from alphabar ``a_t`` to ``a_prev`` (floats, or tensors broadcasting against x), before any fresh noise."""
    x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
        eps = (x - a_t**0.5 * x0) / (1 - a_t) ** 0.5
    rest = 1 - a_prev - sigma**2
    rest = rest.clamp_min(0.0) if torch.is_tensor(rest) else max(rest, 0.0)
    return a_prev**0.5 * x0 + rest**0.5 * eps


def ddim_step(eps_fn: EpsFn, x: torch.Tensor, schedule: Schedule, t: torch.Tensor, t_prev: torch.Tensor, clip: float | None = None) -> torch.Tensor:
    """One deterministic DDIM step per sample, from timesteps ``t`` to ``t_prev`` ((B,) each; 0 is the clean point).

    The solver a consistency model is distilled from: per-sample times, the same update as ``ddim_sample``.
    """
    return _ddim_update(x, eps_fn(x, t), schedule.at(t, x), schedule.at(t_prev, x), clip)


@torch.no_grad()
def ddim_sample(
    eps_fn: EpsFn,
    x_T: torch.Tensor,
    schedule: Schedule,
    timesteps: Sequence[int],
    eta: float = 0.0,
    noise_fn: Callable[[int], torch.Tensor] | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """DDIM (Song et al. 2021, Eq. 12) from x_T down the ascending ``timesteps``, ending at the clean point.

    ``eta = 0`` is the deterministic ODE-like sampler; ``eta = 1`` on the full sequence 1..T is
    exactly DDPM ancestral sampling. ``noise_fn(i)`` supplies the fresh noise of step i when eta > 0.
    ``clip`` clamps every clean-point prediction to [-clip, clip] and re-derives eps from it, as
    DDPM/DiffAE image samplers do for data known to lie in [-1, 1].
    """
    ts = list(timesteps)
    if ts != sorted(set(ts)) or ts[0] < 1 or ts[-1] > schedule.T:
        raise ValueError(f"timesteps must be ascending, distinct and within 1..{schedule.T}")
    if eta > 0 and noise_fn is None:
        raise ValueError("eta > 0 needs noise_fn")
    ab = schedule.alphabar
    x = x_T
    prevs = [0] + ts[:-1]
    for i, (t, t_prev) in enumerate(zip(reversed(ts), reversed(prevs))):
        a_t, a_prev = ab[t].item(), ab[t_prev].item()
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t)) * math.sqrt(1 - a_t / a_prev)
        x = _ddim_update(x, eps_fn(x, batch_t(t, x)), a_t, a_prev, clip, sigma)
        if sigma > 0:
            x = x + sigma * noise_fn(i).to(x)
    return x


def ddpm_sample(eps_fn: EpsFn, x_T: torch.Tensor, schedule: Schedule, noise_fn: Callable[[int], torch.Tensor]) -> torch.Tensor:
    """Ancestral DDPM sampling over all T steps (posterior variance beta-tilde)."""
    return ddim_sample(eps_fn, x_T, schedule, list(range(1, schedule.T + 1)), eta=1.0, noise_fn=noise_fn)


@torch.no_grad()
def ddim_invert(eps_fn: EpsFn, x_start: torch.Tensor, schedule: Schedule, timesteps: Sequence[int]) -> torch.Tensor:
    """Deterministic DDIM inversion: run the eta = 0 update upward from the clean point to x_T.

    Step i -> i+1 reuses the noise estimate at the current point (at the clean point, the estimate
    at the first timestep), the usual first-order inverse of ``ddim_sample(eta=0)``; the round trip
    is exact up to O(step^2) per step, so it tightens as the number of steps grows.
    """
    ts = list(timesteps)
    if ts != sorted(set(ts)) or ts[0] < 1 or ts[-1] > schedule.T:
        raise ValueError(f"timesteps must be ascending, distinct and within 1..{schedule.T}")
    ab = schedule.alphabar
    x = x_start
    for t_cur, t_next in zip([0] + ts[:-1], ts):
        eps = eps_fn(x, batch_t(max(t_cur, ts[0]), x))
        a_cur, a_next = ab[t_cur].item(), ab[t_next].item()
        x0 = (x - math.sqrt(1 - a_cur) * eps) / math.sqrt(a_cur)
        x = math.sqrt(a_next) * x0 + math.sqrt(1 - a_next) * eps
    return x


def slerp(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical interpolation per sample (for Gaussian noise latents such as DDIM's x_T)."""
    af, bf = a.flatten(1), b.flatten(1)
    cos = (af * bf).sum(1) / (af.norm(dim=1) * bf.norm(dim=1)).clamp_min(1e-12)
    theta = torch.arccos(cos.clamp(-1.0, 1.0)).view(-1, *([1] * (a.dim() - 1)))
    sin = torch.sin(theta)
    safe = sin.abs() > 1e-6
    w_a = torch.where(safe, torch.sin((1 - alpha) * theta) / sin.where(safe, torch.ones_like(sin)), torch.full_like(sin, 1 - alpha))
    w_b = torch.where(safe, torch.sin(alpha * theta) / sin.where(safe, torch.ones_like(sin)), torch.full_like(sin, alpha))
    return w_a * a + w_b * b


# ----------------------------------------------------------------------------- training and a generic model


def sample_timesteps(batch: int, T: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """t ~ U{1..T}, one per example."""
    return torch.randint(1, T + 1, (batch,), device=device, generator=generator)


LOSS_WEIGHTS = ("uniform", "min_snr", "trunc_snr")


def loss_weight(schedule: Schedule, t: torch.Tensor, kind: str = "uniform", gamma: float = 5.0) -> torch.Tensor:
    """Per-example weight of the eps-matching loss at timesteps ``t`` (float32, on t's device).

    ``uniform``: 1, DDPM's simple loss. ``min_snr``: min(SNR_t, gamma) / SNR_t (Hang et al. 2023), which
    keeps full weight where SNR_t = alphabar_t / (1 - alphabar_t) <= gamma and shrinks it in proportion to
    1 / SNR_t above: the low-noise steps, where x_t alone determines x0, stop dominating the loss, so a
    decoder conditioned on z spends its capacity on the noise levels where z carries the image.
    ``trunc_snr``: min(max(1, 1 / SNR_t), gamma), the eps-space form of Salimans & Ho's (2022) truncated-SNR
    weighting max(SNR_t, 1) of the x0 loss, capped at gamma: the eps loss where SNR_t >= 1, the x0 loss where
    the image is mostly noise. There the eps loss hardly sees the x0 error (it is scaled by SNR_t), which is
    exactly where only z can say which image to draw.
    """
    if kind == "uniform":
        return torch.ones(t.shape, dtype=torch.float32, device=t.device)
    if kind == "min_snr":
        if gamma <= 0:
            raise ValueError(f"min_snr needs gamma > 0, got {gamma}")
        ab = schedule.alphabar[t.cpu()]
        snr = ab / (1 - ab)
        return (snr.clamp(max=gamma) / snr).to(torch.float32).to(t.device)
    if kind == "trunc_snr":
        if gamma < 1:
            raise ValueError(f"trunc_snr needs a cap gamma >= 1, got {gamma}")
        ab = schedule.alphabar[t.cpu()]
        return (ab / (1 - ab)).reciprocal().clamp(1.0, gamma).to(torch.float32).to(t.device)
    raise ValueError(f"unknown loss weighting {kind!r}; choose one of {', '.join(LOSS_WEIGHTS)}")


class GaussianDiffusion(nn.Module):
    """eps-prediction diffusion over a tensor of ``shape`` (pixels, or LDM's latent), optionally conditioned on z.

    ``unet(x_t, t, z)`` is the denoiser (``unet.cond_dim > 0`` makes it p(x0 | z), DiffAE's decoder).
    As DiLED's decoder it reports its eps loss at the shared t (``objective = "image"``);
    sampling and inversion are deterministic DDIM on ``steps`` of the T training steps.
    ``weighting`` (``loss_weight``'s kind and gamma) weights the per-example loss by noise level.
    """

    objective = "image"

    def __init__(self, unet: nn.Module, schedule: Schedule, image_shape: Sequence[int], clip: float | None = 1.0,
                 weighting: str = "uniform", gamma: float = 5.0, spacing: str = "linspace"):
        super().__init__()
        timestep_subsequence(schedule.T, 1, spacing)  # an unknown spacing fails here
        self.spacing = spacing
        loss_weight(schedule, torch.ones(1, dtype=torch.long), weighting, gamma)  # an unknown kind fails here, not mid-training
        self.unet = unet
        self.schedule = schedule
        self.image_shape = tuple(image_shape)
        self.clip = clip  # pixels live in [-1, 1]; an unbounded latent (LDM's) passes None
        self.weighting, self.gamma = weighting, float(gamma)

    @property
    def T(self) -> int:
        return self.schedule.T

    def _eps_fn(self, z: torch.Tensor | None):
        return lambda x, t: self.unet(x, t, z)

    def loss(self, x0: torch.Tensor, z: torch.Tensor | None = None, t: torch.Tensor | None = None) -> torch.Tensor:
        """Per-example weighted ||eps - eps_theta(x_t, t, z)||^2 (mean over pixels); t drawn here if not shared."""
        if t is None:
            t = sample_timesteps(x0.shape[0], self.T, x0.device)
        eps = torch.randn_like(x0)
        x_t = self.schedule.q_sample(x0, t, eps)
        mse = (eps - self.unet(x_t, t, z)).pow(2).flatten(1).mean(1)
        return mse if self.weighting == "uniform" else loss_weight(self.schedule, t, self.weighting, self.gamma) * mse

    def noise(self, seeds: Sequence[int], device: torch.device | str) -> torch.Tensor:
        """x_T for each sample from its own seed."""
        return seeded_normal(self.image_shape, [derive_seed(s, "pixel-xT") for s in seeds], device)

    @torch.no_grad()
    def sample(self, x_T: torch.Tensor, steps: int, z: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic DDIM decode of x_T (conditioned on z) with ``steps`` steps, x0 predictions clipped to [-clip, clip]."""
        ts = timestep_subsequence(self.T, steps, self.spacing)
        return ddim_sample(self._eps_fn(z), x_T, self.schedule, ts, clip=self.clip)

    @torch.no_grad()
    def invert(self, x0: torch.Tensor, steps: int, z: torch.Tensor | None = None) -> torch.Tensor:
        """DDIM inversion x0 -> x_T with ``steps`` steps."""
        ts = timestep_subsequence(self.T, steps, self.spacing)
        return ddim_invert(self._eps_fn(z), x0, self.schedule, ts)
