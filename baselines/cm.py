"""CM-CD baseline: a consistency model distilled from the suite's own DDIM teacher (Song et al. 2023, CD).

Parameterization on the VP chain of the teacher: with alphabar_t, sigma_t = sqrt((1 - alphabar_t) / alphabar_t)
(the EDM noise level of x_t / sqrt(alphabar_t)) and the student network's output u_theta(x_t, t) read as
v-prediction (Salimans & Ho 2022),

    f_theta(x_t, t) = c_skip(t) * x_t / sqrt(alphabar_t) + (1 - c_skip(t)) * x0_hat,
    x0_hat          = sqrt(alphabar_t) x_t - sqrt(1 - alphabar_t) u_theta
    c_skip(t)       = sigma_data^2 / ((sigma_t - sigma_min)^2 + sigma_data^2),   sigma_min = sigma_1

so f(x, 1) = x / sqrt(alphabar_1) exactly (the boundary condition). Why v and not the teacher's eps:
x0 from eps divides by sqrt(alphabar_T) (0.0064 for the linear schedule at T = 1000), so a one-step
sample would amplify any eps error 157 times; from v no coefficient exceeds 1. The student's UNet
starts from the teacher's weights (its features) with a zeroed output layer (u = 0: f starts at
sqrt(alphabar_t) x_t off the boundary).

Distillation (``distillation_loss``): t_{n+1} drawn from an N-point grid over 1..T, x_{t_{n+1}} from
q(x_t | x0), one teacher DDIM step (the solver distilled) to t_n, target f_{theta^-}(x_{t_n}, t_n) with
theta^- the training loop's EMA, distance: mean squared error over pixels (CD's L2; see config/README.md).

Sampling: one step f(x_T, T), or multistep (re-noise the estimate to the next of ``times``, apply f).
Reconstruction and interpolation as the DiLED paper's recipe: noise the real image to ``encode_t``
(``encode``), mix two noised inputs linearly (``mix``; the official script had this line commented
out, so its "interpolations" were reconstructions), apply the consistency function (``decode``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from diled.config import schedule_problems
from diled.diffusion import GaussianDiffusion, batch_t, ddim_step, derive_seed, seeded_normal, timestep_subsequence
from diled.model import Autoencoding
from diled.stages import StagePlan


class ConsistencyModel(Autoencoding):
    """A consistency function on the teacher's VP chain behind the shared capability interface."""

    def __init__(self, pixel: GaussianDiffusion, sigma_data: float = 0.5, encode_t: int = 350,
                 intermediate_ts: Sequence[int] = (350, 150), grid: int = 25):
        super().__init__()
        if pixel.unet.cond_dim:
            raise ValueError("CM-CD distils an unconditional teacher: its UNet needs cond_dim = 0")
        problems = schedule_problems(pixel.T, encode_t, intermediate_ts)
        if problems:
            raise ValueError("; ".join(problems))
        self.pixel = pixel
        self.sigma_data = float(sigma_data)
        self.encode_t = int(encode_t)
        self.intermediate_ts = [int(t) for t in intermediate_ts]
        self.grid = timestep_subsequence(pixel.T, grid)
        ab1 = pixel.schedule.alphabar[1].item()
        self.sigma_min = ((1 - ab1) / ab1) ** 0.5  # the boundary's noise level, sigma_1

    # ------------------------------------------------------------------ the consistency function

    @torch.no_grad()
    def init_from(self, teacher: GaussianDiffusion) -> None:
        """Start from the teacher's UNet weights, output layer zeroed (it predicts v, the teacher eps)."""
        self.pixel.load_state_dict(teacher.state_dict())
        for p in self.pixel.unet.out[-1].parameters():
            p.zero_()

    def consistency(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """f_theta(x_t, t) for a (B,) batch of timesteps; f(x, 1) = x / sqrt(alphabar_1)."""
        ab = self.pixel.schedule.at(t, x_t)
        sigma = ((1 - ab) / ab).sqrt()
        c_skip = self.sigma_data**2 / ((sigma - self.sigma_min) ** 2 + self.sigma_data**2)
        x0_hat = ab.sqrt() * x_t - (1 - ab).sqrt() * self.pixel.unet(x_t, t)
        return c_skip * x_t / ab.sqrt() + (1 - c_skip) * x0_hat

    def distillation_loss(self, x0: torch.Tensor, teacher: GaussianDiffusion, target: ConsistencyModel) -> tuple[torch.Tensor, dict[str, float]]:
        """CD loss: || f_theta(x_{t_{n+1}}) - f_target(teacher DDIM step to t_n) ||^2, mean over pixels and batch."""
        grid = torch.as_tensor(self.grid, device=x0.device)
        n = torch.randint(0, len(self.grid) - 1, (x0.shape[0],), device=x0.device)
        t_hi, t_lo = grid[n + 1], grid[n]
        x_hi = self.pixel.schedule.q_sample(x0, t_hi, torch.randn_like(x0))
        with torch.no_grad():
            x_lo = ddim_step(lambda x, t: teacher.unet(x, t), x_hi, teacher.schedule, t_hi, t_lo, clip=teacher.clip)
            y = target.consistency(x_lo, t_lo)
        loss = (self.consistency(x_hi, t_hi) - y).pow(2).flatten(1).mean(1).mean()
        return loss, {"cd": loss.item()}

    # ------------------------------------------------------------------ sampling

    def times(self, start: int, steps: int) -> list[int]:
        """``start`` then the next ``steps - 1`` intermediate times below it."""
        below = [t for t in self.intermediate_ts if t < start]
        if not 1 <= steps <= 1 + len(below):
            raise ValueError(f"{steps}-step consistency sampling from t={start} needs {steps - 1} intermediate times below it; "
                             f"configured: {self.intermediate_ts}")
        return [start, *below[: steps - 1]]

    @torch.no_grad()
    def _multistep(self, x: torch.Tensor, times: Sequence[int], seeds: Sequence[int]) -> torch.Tensor:
        out = self.consistency(x, batch_t(times[0], x)).clamp(-1, 1)
        for j, t in enumerate(times[1:]):
            noise = seeded_normal(self.pixel.image_shape, [derive_seed(s, "cm-step", j) for s in seeds], x.device)
            tt = batch_t(t, x)
            out = self.consistency(self.pixel.schedule.q_sample(out, tt, noise), tt).clamp(-1, 1)
        return out

    @torch.no_grad()
    def generate(self, seeds: Sequence[int], steps: int) -> torch.Tensor:
        """``steps``-step consistency sampling from seeded x_T."""
        x_T = self.pixel.noise(seeds, next(self.parameters()).device)
        return self._multistep(x_T, self.times(self.pixel.T, steps), seeds)

    @torch.no_grad()
    def encode(self, x0: torch.Tensor, steps: int | None = None, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """x0 noised to ``encode_t`` with per-sample seeded noise (not a representation: there is no encoder)."""
        if seeds is None:
            raise ValueError("CM-CD's encoding noises the image: pass one seed per image")
        noise = seeded_normal(self.pixel.image_shape, [derive_seed(s, "cm-encode") for s in seeds], x0.device)
        return self.pixel.schedule.q_sample(x0, batch_t(self.encode_t, x0), noise)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, steps: int, seeds: Sequence[int]) -> torch.Tensor:
        """Consistency function from ``encode_t`` (then ``steps - 1`` re-noise-and-denoise steps)."""
        return self._multistep(z, self.times(self.encode_t, steps), seeds)


def build(cfg: dict) -> ConsistencyModel:
    from diled.modalities.image.model import pixel_diffusion

    c = cfg["models"]["cmcd"]
    return ConsistencyModel(pixel_diffusion(cfg, 0), c["sigma_data"], c["encode_t"], c["intermediate_ts"], c["grid"])


def train(ctx):
    """Stage ``distill``: consistency distillation of the trained DDIM (``ctx.init``), the EMA as target."""
    teacher = ctx.init.to(ctx.device).eval().requires_grad_(False).pixel
    model = ctx.build().to(ctx.device)
    model.init_from(teacher)
    return StagePlan(model, lambda m, x, target: m.distillation_loss(x, teacher, target), ctx.data, ema_target=True)
