"""Latent optimisation toward higher fitness: the protein section's algorithms, vectorised over seeds.

Each optimiser moves a batch of starting latents (S, d) for ``steps`` steps against ``fitness(z)``
(a model's own regressor, in eval mode) and returns the trajectory (steps + 1, S, d). Official
settings (``guangyliu/EDDPM: Protein/codes/optim/optim_algs.py``, ``evaluations.py``): 60 seeds drawn
from the training embeddings, 200 steps; delta = mean 5-NN distance of a 10% subsample of them;

- gradient ascent: z <- z + lr * grad f(z), lr 0.1;
- Metropolis MCMC: z' = z + delta * N(0, I), accepted with probability min(1, exp((f(z') - f(z)) / T)), T = 0.01;
  the cycle variants pass the proposal through decode -> encode (with, or without, the perturbation);
- hill climbing: move halfway (step 0.5) toward the best of the 30 nearest training embeddings; the
  stochastic variant picks uniformly among the neighbours better than the current point;
- LatentOps ODE: dz/dt = -0.5 beta(t) grad E(z), E = -(f(z) - y)^2 / (2 * 0.1^2), beta(t) = 0.1 + 19.9 t,
  integrated from t = 1 to 0 (dopri5, rtol = atol = 1e-3; here scipy's RK45), one run per target y.

Deliberate differences from upstream, each named: hill climbing compares with the fitness of the
current point (upstream compares with, and logs, the fitness of the previous neighbour); seeds and the
delta subsample come from seeded generators (upstream: unseeded NumPy); seeds are drawn with
replacement as upstream, the delta subsample without.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from diled.diffusion import derive_seed

FitnessFn = Callable[[torch.Tensor], torch.Tensor]


def knn_delta(z: np.ndarray, rng: np.random.Generator, fraction: float = 0.1, k: int = 5) -> float:
    """Mean distance to the k nearest neighbours within a ``fraction`` subsample (the MCMC step size)."""
    from sklearn.neighbors import NearestNeighbors

    sub = z[rng.choice(len(z), max(k + 1, int(fraction * len(z))), replace=False)]
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(sub).kneighbors(sub)
    return float(dist[:, 1:].mean())


def _grad(fitness: FitnessFn, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        f = fitness(z)
        (g,) = torch.autograd.grad(f.sum(), z)
    return f.detach(), g


def gradient_ascent(z0: torch.Tensor, fitness: FitnessFn, steps: int, lr: float = 0.1) -> torch.Tensor:
    traj = [z0]
    z = z0
    for _ in range(steps):
        z = z + lr * _grad(fitness, z)[1]
        traj.append(z)
    return torch.stack(traj)


@torch.no_grad()
def mcmc(z0: torch.Tensor, fitness: FitnessFn, steps: int, delta: float, temperature: float, gen: torch.Generator,
         cycle: Callable[[torch.Tensor], torch.Tensor] | None = None, perturb: bool = True) -> torch.Tensor:
    """Metropolis on the latent; ``cycle`` (decode -> encode) applied to each proposal when given."""
    traj, z, f = [z0], z0, fitness(z0)
    for _ in range(steps):
        prop = z + delta * torch.randn(z.shape, generator=gen) if perturb else z
        if cycle is not None:
            prop = cycle(prop)
        fp = fitness(prop)
        accept = torch.rand(len(z), generator=gen) < torch.exp(((fp - f) / temperature).clamp(max=0.0))
        z = torch.where(accept[:, None], prop, z)
        f = torch.where(accept, fp, f)
        traj.append(z)
    return torch.stack(traj)


@torch.no_grad()
def hill_climb(z0: torch.Tensor, fitness: FitnessFn, steps: int, pool: torch.Tensor, k: int = 30, step: float = 0.5,
               stochastic: bool = False, gen: torch.Generator | None = None) -> torch.Tensor:
    """Move ``step`` of the way to the best (or a random better) of the k nearest pool embeddings."""
    pool_fit = fitness(pool)
    traj, z = [z0], z0
    for _ in range(steps):
        nn_idx = torch.cdist(z, pool).topk(k, largest=False).indices  # (S, k)
        cand_fit = pool_fit[nn_idx]
        if stochastic:
            better = cand_fit > fitness(z)[:, None]
            weights = torch.where(better.any(1, keepdim=True), better.float(), torch.ones_like(cand_fit))
            pick = torch.multinomial(weights, 1, generator=gen).squeeze(1)
        else:
            pick = cand_fit.argmax(1)
        target = pool[nn_idx[torch.arange(len(z)), pick]]
        z = z + step * (target - z)
        traj.append(z)
    return torch.stack(traj)


def latentops_ode(z0: torch.Tensor, fitness: FitnessFn, target: float, sigma: float = 0.1, beta_min: float = 0.1,
                  beta_max: float = 20.0, tol: float = 1e-3, points: int = 11) -> torch.Tensor:
    """LatentOps' VP probability-flow ODE under the energy -(f(z) - y)^2 / (2 sigma^2), from t = 1 to 0.

    Returns the state at ``points`` evenly spaced times (t = 1 .. 0), all seeds integrated as one system.
    """
    from scipy.integrate import solve_ivp

    shape = z0.shape

    def rhs(t: float, flat: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(flat.reshape(shape)).float()
        f, g = _grad(lambda x: -(fitness(x) - target) ** 2 / (2 * sigma**2), z)
        beta = beta_min + t * (beta_max - beta_min)
        return (-0.5 * beta * g).numpy().astype(np.float64).ravel()

    times = np.linspace(1.0, 0.0, points)
    sol = solve_ivp(rhs, (1.0, 0.0), z0.numpy().astype(np.float64).ravel(), method="RK45", t_eval=times, rtol=tol, atol=tol)
    if not sol.success:
        raise RuntimeError(f"LatentOps ODE failed: {sol.message}")
    return torch.from_numpy(sol.y.T.reshape(len(times), *shape)).float()


ALGORITHMS = ("gradient_ascent", "hill_climbing", "stochastic_hill_climbing", "mcmc", "mcmc_cycle", "mcmc_cycle_noP")


def run_all(z0: torch.Tensor, fitness: FitnessFn, cycle: Callable[[torch.Tensor], torch.Tensor], pool: torch.Tensor,
            cfg: dict, delta: float, seed: int) -> dict[str, torch.Tensor]:
    """Every optimiser from the same seeds: name -> trajectory (steps + 1 or ODE points, S, d)."""
    steps = cfg["steps"]

    def gen(name: str) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(seed, "optimise", name) % 2**63)

    out = {
        "gradient_ascent": gradient_ascent(z0, fitness, steps, cfg["grad_lr"]),
        "hill_climbing": hill_climb(z0, fitness, steps, pool, cfg["hill_k"], cfg["hill_step"]),
        "stochastic_hill_climbing": hill_climb(z0, fitness, steps, pool, cfg["hill_k"], cfg["hill_step"], True, gen("shc")),
        "mcmc": mcmc(z0, fitness, steps, delta, cfg["mcmc_temperature"], gen("mcmc")),
        "mcmc_cycle": mcmc(z0, fitness, steps, delta, cfg["mcmc_temperature"], gen("mcmc-cycle"), cycle),
        "mcmc_cycle_noP": mcmc(z0, fitness, steps, delta, cfg["mcmc_temperature"], gen("mcmc-cycle-noP"), cycle, perturb=False),
    }
    for y in cfg["latentops_targets"]:
        out[f"latentops_y{y:g}"] = latentops_ode(z0, fitness, float(y))
    return out
