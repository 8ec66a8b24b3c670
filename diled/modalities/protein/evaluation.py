"""The protein track's metric suite: judges, then per model fitness, reconstruction, generation and optimisation.

Called by the workflow's ``protein_judges`` and ``evaluate_protein`` jobs (and testable without them).
Latents follow the official evaluation (``z`` *sampled* from the encoder, fixed here by a seed)
and, beside it, the encoder mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diled import checkpoint
from diled.diffusion import derive_seed
from diled.metrics import protein as pm
from diled.modalities.protein.codec import ProteinCodec
from diled.modalities.protein.data import PAD


def encoder_std(model: torch.nn.Module) -> float:
    """The fixed encoder std of a stochastic encoder (DiLED, ReLSO-VAE); 0 for the deterministic ReLSO."""
    if getattr(model, "variational", True) is False:
        return 0.0
    return float(getattr(model, "encoder_std", 0.0))


@torch.no_grad()
def latents(model: torch.nn.Module, tokens: np.ndarray, batch_size: int, seed: int | None = None) -> torch.Tensor:
    """Encoder means of ``tokens`` (``seed`` None) or samples mean + std * eps with a seeded eps (the official z)."""
    x = torch.from_numpy(np.asarray(tokens, np.int64))
    z = torch.cat([model.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    if seed is not None and encoder_std(model):
        z = z + encoder_std(model) * torch.randn(z.shape, generator=torch.Generator().manual_seed(seed % 2**63))
    return z


@torch.no_grad()
def decode_tokens(model: torch.nn.Module, z: torch.Tensor, batch_size: int) -> np.ndarray:
    """Greedy decoding of latents to token ids."""
    return torch.cat([model.decode(z[i : i + batch_size], 1, [0] * len(z[i : i + batch_size]))
                      for i in range(0, len(z), batch_size)]).numpy()


@torch.no_grad()
def logits(model: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    net = model.decoder.net if hasattr(model.decoder, "net") else model.decoder
    return net(z)


# ----------------------------------------------------------------------------- judges


def fit_judges(codec: ProteinCodec, data: str | Path, cfg: dict, seed: int) -> tuple[dict, dict]:
    """(arrays to save, calibration record): the PSSM and judge LM on the test split, the oracle on the train split."""
    test_x, _ = codec.load(data, "test")
    train_x, train_y = codec.load(data, "train")
    valid_x, valid_y = codec.load(data, "valid")
    j = cfg["eval"]["judge"]
    lm = pm.train_judge(test_x, cfg["net"]["length"], j["steps"], j["batch_size"], j["lr"], derive_seed(seed, "judge") % 2**63,
                        j["dim"], j["heads"], j["layers"])
    pssm = pm.fit_pssm(test_x)
    oracle = pm.fit_oracle(train_x, train_y)
    rng = np.random.default_rng(derive_seed(seed, "judge-calibration") % 2**32)
    shuffled = np.array([_shuffle_residues(row, rng) for row in valid_x])
    uniform = np.where(valid_x == PAD, PAD, rng.integers(0, PAD, valid_x.shape))  # random residues, same padding
    calib = {}
    n = cfg["eval"]["num_samples"]  # set metrics on as many sequences as a model generates
    pick = rng.choice(len(valid_x), min(n, len(valid_x)), replace=False)
    train_strings = codec.to_metric(train_x)
    for name, x in (("valid (natural)", valid_x), ("valid, residues shuffled", shuffled), ("valid, random residues", uniform)):
        calib[name] = {"judge_ppl": float(np.median(pm.judge_perplexity(lm, x))), "pssm_nll": float(pm.pssm_nll(pssm, x).mean()),
                       "oracle_fitness_mean": float(oracle.predict(pm.one_hot(x[pick])).mean()),
                       **pm.sequence_set_metrics(codec.to_metric(x[pick]), train_strings)}
    oracle_test = pm.fitness_metrics(oracle.predict(pm.one_hot(codec.load(data, "test")[0])), codec.load(data, "test")[1])
    record = {"judge": {"trained_on": "test split", "sequences": int(len(test_x)), **j}, "calibration": calib,
              "oracle": {"kind": "ridge regression (alpha 1) on one-hot residues, fit on the train split", "test": oracle_test,
                         "valid": pm.fitness_metrics(oracle.predict(pm.one_hot(valid_x)), valid_y)}}
    arrays = {"pssm": torch.from_numpy(pssm), "oracle_coef": torch.from_numpy(oracle.coef_.astype(np.float64)),
              "oracle_intercept": torch.tensor(float(oracle.intercept_)), "lm_state": {k: v.clone() for k, v in lm.state_dict().items()}}
    return arrays, record


def _shuffle_residues(row: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = row.copy()
    idx = np.flatnonzero(row != PAD)
    out[idx] = row[rng.permutation(idx)]
    return out


class Judges:
    """The saved judges: judge LM, PSSM and oracle, scoring token arrays."""

    def __init__(self, path: str | Path, cfg: dict):
        state = checkpoint.load(path)
        j = cfg["eval"]["judge"]
        self.lm = pm.CausalLM(cfg["net"]["length"], j["dim"], j["heads"], j["layers"])
        self.lm.load_state_dict(state["lm_state"])
        self.lm.eval()
        self.pssm = state["pssm"].numpy()
        self.coef, self.intercept = state["oracle_coef"].numpy(), float(state["oracle_intercept"])

    def oracle(self, tokens: np.ndarray) -> np.ndarray:
        return pm.one_hot(tokens) @ self.coef + self.intercept

    def score(self, tokens: np.ndarray) -> dict[str, float]:
        """Oracle fitness (max/mean/median/min), judge PPL (median) and PSSM NLL (mean) of a set of sequences."""
        fit = self.oracle(tokens)
        return {"oracle_fitness_max": float(fit.max()), "oracle_fitness_mean": float(fit.mean()),
                "oracle_fitness_sem": float(fit.std(ddof=1) / np.sqrt(len(fit))) if len(fit) > 1 else float("nan"),
                "oracle_fitness_median": float(np.median(fit)), "oracle_fitness_min": float(fit.min()),
                "judge_ppl": float(np.median(pm.judge_perplexity(self.lm, tokens))),
                "pssm_nll": float(pm.pssm_nll(self.pssm, tokens).mean())}


# ----------------------------------------------------------------------------- one model


def _summary(values: np.ndarray, prefix: str) -> dict[str, float]:
    return {f"{prefix}_max": float(values.max()), f"{prefix}_mean": float(values.mean()),
            f"{prefix}_median": float(np.median(values)), f"{prefix}_min": float(values.min())}


def evaluate_model(model: torch.nn.Module, codec: ProteinCodec, data: str | Path, judges: Judges, generated: np.ndarray | None,
                   cfg: dict, seed: int, threads: int = 1, progress=print) -> tuple[dict, dict[str, np.ndarray]]:
    """Every protein metric of one trained model; returns (record, arrays for the figures)."""
    from diled import optimize

    ev, opt_cfg, bs = cfg["eval"], cfg["optimisation"], cfg["eval"]["batch_size"]
    model.eval().requires_grad_(False)  # gradients flow to z only (gradient ascent, the LatentOps ODE)
    rng = np.random.default_rng(derive_seed(seed, "protein-eval") % 2**32)
    train_x, train_y = codec.load(data, "train")
    pick = rng.choice(len(train_x), min(len(train_x), max(ev["fitness_subsample"], opt_cfg["pool"] or len(train_x))), replace=False)
    splits = {"train": (train_x[pick[: ev["fitness_subsample"]]], train_y[pick[: ev["fitness_subsample"]]]),
              "valid": codec.load(data, "valid"), "test": codec.load(data, "test")}
    record: dict = {"fitness": {}, "reconstruction": {}}
    z_cache = {}
    for split, (x, y) in splits.items():
        for kind, z_seed in (("sampled z", derive_seed(seed, "z", split)), ("mean", None)):
            z = latents(model, x, bs, z_seed)
            z_cache[(split, kind)] = z
            record["fitness"][f"{split}/{kind}"] = pm.fitness_metrics(model.fitness(z).numpy(), y)
        if split != "train":
            for kind in ("sampled z", "mean"):  # the splits are in file order: BLEU on a seeded subsample
                order = torch.from_numpy(rng.permutation(len(x)))
                record["reconstruction"][f"{split}/{kind}"] = pm.reconstruction_metrics(
                    logits(model, z_cache[(split, kind)])[order], torch.from_numpy(x)[order], ev["bleu_subsample"])
        progress(f"{split}: fitness spearman {record['fitness'][f'{split}/sampled z']['spearman']:.3f}"
                 + (f", recon BLEU {record['reconstruction'][f'{split}/sampled z']['bleu']:.3f}" if split != "train" else ""))
    train_strings = codec.to_metric(train_x)
    if generated is not None:
        gen_z = latents(model, generated, bs)  # where the decoded sequences land back in the latent
        record["generation"] = {"count": int(len(generated)), **_summary(model.fitness(gen_z).numpy(), "own_fitness"),
                                **judges.score(generated),
                                **pm.sequence_set_metrics(codec.to_metric(generated), train_strings, threads)}
        progress(f"generation: oracle mean {record['generation']['oracle_fitness_mean']:.3f}, "
                 f"judge PPL {record['generation']['judge_ppl']:.2f}, diversity {record['generation']['diversity_plain']:.2f}")
    # latent optimisation from training seeds, official setting: sampled z of the train split
    pool_x, pool_y = train_x[pick], train_y[pick]
    pool = latents(model, pool_x, bs, derive_seed(seed, "z", "pool"))
    delta = optimize.knn_delta(pool.numpy(), rng)
    seeds_idx = rng.choice(len(pool), opt_cfg["seeds"], replace=True)
    fitness = lambda z: model.fitness(z)  # noqa: E731 (the regressor in eval mode)
    std = encoder_std(model)
    cyc_gen = torch.Generator().manual_seed(derive_seed(seed, "cycle") % 2**63)

    @torch.no_grad()
    def cycle(z: torch.Tensor) -> torch.Tensor:
        back = model.encode(torch.from_numpy(decode_tokens(model, z, bs)))
        return back + std * torch.randn(back.shape, generator=cyc_gen) if std else back

    trajectories = optimize.run_all(pool[seeds_idx], fitness, cycle, pool, opt_cfg, delta, seed)
    record["optimisation"] = {"delta": delta, "seeds": int(opt_cfg["seeds"]), "steps": int(opt_cfg["steps"]),
                              "start": {**_summary(fitness(pool[seeds_idx]).numpy(), "own_fitness"),
                                        **judges.score(pool_x[seeds_idx])}}
    for name, traj in trajectories.items():
        final = traj[-1]
        tokens = decode_tokens(model, final, bs)
        record["optimisation"][name] = {**_summary(fitness(final).numpy(), "own_fitness"), **judges.score(tokens),
                                        **pm.sequence_set_metrics(codec.to_metric(tokens), train_strings, threads)}
    progress("optimisation: " + ", ".join(f"{k} {v['oracle_fitness_mean']:.2f}" for k, v in record["optimisation"].items()
                                          if isinstance(v, dict) and "oracle_fitness_mean" in v))
    # how smoothly fitness varies over the latent: k-NN regression from training z to held-out z
    from sklearn.neighbors import KNeighborsRegressor

    knn = KNeighborsRegressor(n_neighbors=10).fit(pool.numpy(), pool_y)
    record["latent_smoothness"] = {"knn10_r2_test": float(knn.score(z_cache[("test", "sampled z")].numpy(), splits["test"][1])),
                                   "knn10_r2_valid": float(knn.score(z_cache[("valid", "sampled z")].numpy(), splits["valid"][1]))}
    arrays = {"train_z": pool.numpy()[:5000], "train_fitness": pool_y[:5000],
              **{f"traj_{k}": v.numpy() for k, v in trajectories.items() if k.startswith("latentops")}}
    return record, arrays

