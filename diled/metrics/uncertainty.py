"""How much of a score is noise: bootstrap intervals of FID and KID (from torch-fidelity) on feature rows.

FID on a few hundred images is biased and noisy; the settings table shows that taking another 100 of
the same model's samples moves it by more than the gap between many table rows. So every FID cell
carries a bootstrap interval over its generated set (``bootstrap_fid``),
and every set gets KID (unbiased MMD^2 with the cubic polynomial kernel, mean and std over random
subsets, torch-fidelity's ``kid_features_to_metric``), which is unbiased at small N.

FID in its Gram form (``fid_gram``, the bootstrap's replicates) is exact in exact arithmetic and cheap when N << d:
with centred feature rows A (n_a x d) and B (n_b x d),

    tr((S_a S_b)^(1/2)) = || A B^T ||_* / sqrt((n_a - 1)(n_b - 1))

(the non-zero eigenvalues of S_a S_b are those of M M^T with M = A B^T / sqrt(...)), so each replicate
costs one n_a x n_b product and one symmetric eigen-decomposition instead of a d x d matrix root.
"""

from __future__ import annotations

import numpy as np
import torch

from diled.diffusion import derive_seed


def fid_gram(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature matrices (rows = images) through the Gram form above."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two (N >= 2, d) feature matrices of one width, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    m = ca @ cb.T
    small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    eig = np.linalg.eigvalsh((small + small.T) / 2).clip(min=0)
    cross = np.sqrt(eig).sum() / np.sqrt(na * nb)
    diff = mu_a - mu_b
    return float(diff @ diff + (ca * ca).sum() / na + (cb * cb).sum() / nb - 2 * cross)


def bootstrap_fid(gen: np.ndarray, ref: np.ndarray, point: float, n_boot: int = 200, level: float = 0.95,
                  seed: int = 0) -> dict[str, float]:
    """Bootstrap interval of FID(gen, ref) over the generated set, the reference held fixed.

    The generated rows are resampled with replacement ``n_boot`` times (seeded); the reference stays
    fixed, since every row of a table is scored against the same reference and what separates two rows
    is the noise of their own samples. Resampling repeats rows, which inflates FID's small-N bias, so the
    replicates sit well above the point (the raw percentile interval would not contain it). The interval
    is therefore the replicates' central ``level`` spread re-centred on the point:
    [point - (median - q_lo), point + (q_hi - median)]. It measures the sampling noise of the cell -- what
    decides whether two cells differ -- not where the infinite-sample FID lies (FID's bias puts that below).

    Everything a replicate needs is precomputed from the two Gram matrices, so one costs an
    n_gen x n_gen eigen-decomposition (n_gen = 100: about 2 ms; 500: about 45 ms).
    """
    if n_boot < 2 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 2 and 0 < level < 1, got {n_boot}, {level}")
    a = np.asarray(gen, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two (N >= 2, d) feature matrices of one width, got {a.shape} and {b.shape}")
    n, nb = len(a), len(b) - 1
    mu_b = b.mean(0)
    cb = b - mu_b
    p = a @ cb.T  # rows of gen against the centred reference
    g = a @ a.T
    a_mu_b = a @ mu_b
    const = mu_b @ mu_b + (cb * cb).sum() / nb
    rng = np.random.default_rng(derive_seed(seed, "bootstrap-fid") % 2**32)
    reps = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        gi = g[np.ix_(idx, idx)]
        mu_sq = gi.mean()  # ||mu_r||^2
        trace_a = (np.trace(gi) - n * mu_sq) / (n - 1)
        pi = p[idx]
        m = pi - pi.mean(0)  # centred resample times the centred reference
        small = m @ m.T
        cross = np.sqrt(np.linalg.eigvalsh((small + small.T) / 2).clip(min=0)).sum() / np.sqrt((n - 1) * nb)
        reps[i] = mu_sq - 2 * a_mu_b[idx].mean() + const + trace_a - 2 * cross
    q_lo, med, q_hi = np.quantile(reps, [(1 - level) / 2, 0.5, (1 + level) / 2])
    return {"lo": float(point - (med - q_lo)), "hi": float(point + (q_hi - med)), "std": float(reps.std(ddof=1)),
            "n_boot": n_boot, "level": level, "resampled": "generated set (reference fixed)",
            "interval": "bootstrap spread re-centred on the point"}


def kid(gen: np.ndarray, ref: np.ndarray, subsets: int = 100, subset_size: int | None = None, seed: int = 0) -> dict[str, float]:
    """KID mean and std over ``subsets`` random subsets (torch-fidelity; subset size: the smaller set, at most 1000)."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = subset_size or min(len(gen), len(ref), 1000)
    out = kid_features_to_metric(torch.as_tensor(np.asarray(gen)), torch.as_tensor(np.asarray(ref)), kid_subsets=subsets,
                                 kid_subset_size=size, rng_seed=derive_seed(seed, "kid") % 2**32, verbose=False,
                                 kid_degree=3, kid_gamma=None, kid_coef0=1, kid_kernel="poly")
    return {"mean": out[KEY_METRIC_KID_MEAN], "std": out[KEY_METRIC_KID_STD], "subsets": subsets, "subset_size": size}


def clearly_better(best: dict[str, float], runner_up: dict[str, float]) -> bool:
    """Lower-is-better scores with intervals: the best's upper bound lies below the runner-up's lower bound."""
    return best["hi"] < runner_up["lo"]
