"""The protein track's report: fitness prediction, reconstruction, generation and optimisation tables and Figure 6, from
the per-model evaluation records (``workflow/scripts/protein_tables.py`` is the adapter). ``out`` maps each output name
of the rule (``fitness``, ``fitness_md``, ...) to its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from diled import optimize, registry
from diled.report import figures, tables


def digits(df: pd.DataFrame) -> pd.DataFrame:
    """What the protein tables show: four decimals."""
    return df.round(4)


def fitness_table(records: Sequence[dict], judges: dict, cfg: dict, name: Mapping[str, str], out: Mapping[str, str]) -> None:
    """Fitness prediction from the latent (each model's regressor), beside the shared oracle."""
    fitness = []
    for r in records:
        for z in ("sampled z", "mean"):
            f = r["fitness"]
            fitness.append({"model": name[r["model"]], "z": z, **{f"{s} Spearman": f[f"{s}/{z}"]["spearman"] for s in ("train", "valid", "test")},
                            "test Pearson": f[f"test/{z}"]["pearson"], "test MSE": f[f"test/{z}"]["mse"],
                            "kNN-10 R² (test z)": r["latent_smoothness"]["knn10_r2_test"] if z == "sampled z" else np.nan})
    oracle = judges["oracle"]["test"]
    fitness.append({"model": "oracle (ridge on one-hot residues)", "z": "—", "test Spearman": oracle["spearman"],
                    "test Pearson": oracle["pearson"], "test MSE": oracle["mse"]})
    tables.write_table(digits(pd.DataFrame(fitness)), title="Protein fitness prediction (Gifford): the regressor on the latent",
                       csv=out["fitness"], md=out["fitness_md"], tex=out["fitness_tex"], caption="Fitness prediction on Gifford.", source="protein_tables.py",
                       notes=["Spearman/Pearson/MSE of each model's jointly trained regressor; 'sampled z' is the official protocol "
                              "(z drawn from the encoder, here with a fixed seed), 'mean' the encoder mean; the deterministic ReLSO has one z.",
                              f"Train: a seeded subsample of {cfg['eval']['fitness_subsample']} sequences; valid and test: all.",
                              "kNN-10 R²: a 10-nearest-neighbour regression from training z to held-out z: how smoothly fitness varies "
                              "over the latent (what Figure 6 shows).",
                              "The oracle row is the shared scorer of the generation and optimisation tables (not a latent model)."])


def reconstruction_table(records: Sequence[dict], cfg: dict, name: Mapping[str, str], out: Mapping[str, str]) -> None:
    """Reconstruction CE / PPL / BLEU / accuracy per split and z."""
    recon = []
    for r in records:
        for key, m in r["reconstruction"].items():
            split, z = key.split("/")
            recon.append({"model": name[r["model"]], "split": split, "z": z, "CE": m["ce"], "PPL": m["ppl"], "BLEU": m["bleu"],
                          "residue accuracy": m["residue_accuracy"], "exact match": m["exact_match"]})
    tables.write_table(digits(pd.DataFrame(recon)), title="Protein reconstruction (Gifford)", csv=out["recon"], md=out["recon_md"],
                       tex=out["recon_tex"], caption="Reconstruction on Gifford.", source="protein_tables.py",
                       notes=["CE: unweighted cross entropy over every position, pads included, PPL = exp(CE) (official); BLEU: nltk "
                              f"sentence_bleu (BLEU-4, method1) on residues incl. J, mean over {cfg['eval']['bleu_subsample']} seeded sequences; "
                              "accuracy and exact match: greedy decoding of every sequence."])


def generation_table(records: Sequence[dict], judges: dict, cfg: dict, name: Mapping[str, str], out: Mapping[str, str]) -> pd.DataFrame:
    """Generation scored by the oracle and the judge, beside the reference rows; returns the rows."""
    oracle = judges["oracle"]["test"]
    calib = judges["calibration"]
    gen = []
    for r in records:
        g = r.get("generation")
        if g:
            gen.append({"model": name[r["model"]], "samples": g["count"], "own fitness (mean)": g["own_fitness_mean"],
                        "oracle fitness (mean)": g["oracle_fitness_mean"], "± sem": g["oracle_fitness_sem"],
                        "oracle fitness (max)": g["oracle_fitness_max"], "judge PPL": g["judge_ppl"], "PSSM NLL": g["pssm_nll"],
                        "diversity (official)": g["diversity_official"], "diversity (plain)": g["diversity_plain"],
                        "novelty (official)": g["novelty_official"], "novelty (plain)": g["novelty_plain"], "unique": g["unique_fraction"]})
    gen += [{"model": f"reference: {k}", "samples": cfg["eval"]["num_samples"], "oracle fitness (mean)": v["oracle_fitness_mean"],
             "judge PPL": v["judge_ppl"], "PSSM NLL": v["pssm_nll"], "diversity (official)": v["diversity_official"],
             "diversity (plain)": v["diversity_plain"], "novelty (official)": v["novelty_official"], "novelty (plain)": v["novelty_plain"],
             "unique": v["unique_fraction"]} for k, v in calib.items()]
    not_gen = [name[r["model"]] for r in records if "generation" not in r]
    tables.write_table(digits(pd.DataFrame(gen)), title="Protein generation (Gifford)", csv=out["generation"], md=out["generation_md"],
                       tex=out["generation_tex"], caption="Generation on Gifford.", source="protein_tables.py",
                       notes=[f"{cfg['eval']['num_samples']} sequences per model: DiLED from the ancestral latent chain over all T = "
                              f"{cfg['latent']['T']} steps, ReLSO-VAE from z ~ N(0, I); greedy decoding.",
                              "Own fitness: the model's regressor on the re-encoded sequence; oracle: one ridge regression on one-hot "
                              f"residues (test Spearman {oracle['spearman']:.3f}) scores every model alike.",
                              "Judge: a small causal transformer trained on the test split (no generator saw it); median per-sequence "
                              "perplexity (judge PPL and PSSM NLL of the reference rows: every valid sequence).",
                              f"Reference rows: {cfg['eval']['num_samples']} seeded valid sequences as they are, with residues shuffled "
                              "within each sequence, and with random residues (same padding): what natural sequences score on each column.",
                              "Diversity: mean pairwise Levenshtein distance; novelty: median distance to the nearest training sequence; "
                              "'official' on space-joined strings with the J pads (upstream), 'plain' without pads.",
                              *([f"Not generating (no prior): {', '.join(not_gen)}."] if not_gen else []),
                              *tables.auto_precision_note(r["training"].get("precision_reason") for r in records if "training" in r)])
    return pd.DataFrame(gen)


def optimisation_table(records: Sequence[dict], cfg: dict, name: Mapping[str, str], out: Mapping[str, str]) -> None:
    """Latent optimisation toward higher fitness, per model and optimiser."""
    opt = []
    for r in records:
        o = r["optimisation"]  # rows in the optimisers' order (the record's keys are sorted)
        for alg in ["start", *optimize.ALGORITHMS, *sorted(k for k in o if k.startswith("latentops"))]:
            m = o[alg]
            opt.append({"model": name[r["model"]], "algorithm": alg, "own fitness (max)": m["own_fitness_max"],
                            "own fitness (mean)": m["own_fitness_mean"], "oracle fitness (mean)": m["oracle_fitness_mean"],
                            "± sem": m["oracle_fitness_sem"], "oracle fitness (max)": m["oracle_fitness_max"], "judge PPL": m["judge_ppl"],
                            "diversity (plain)": m.get("diversity_plain", np.nan), "novelty (plain)": m.get("novelty_plain", np.nan)})
    oc = cfg["optimisation"]
    tables.write_table(digits(pd.DataFrame(opt)), title="Protein latent optimisation toward higher fitness (Gifford)", csv=out["optimisation"],
                       md=out["optimisation_md"], tex=out["optimisation_tex"], caption="Latent optimisation on Gifford.", source="protein_tables.py",
                       notes=[f"{oc['seeds']} seeds drawn (with replacement, seeded) from sampled training z, {oc['steps']} steps; 'start' is the seeds "
                              "themselves. Each optimiser climbs the model's own regressor; the final points are decoded and scored by the "
                              "shared oracle and the judge. Max/mean over the seeds of the final step (official).",
                              f"MCMC: T = {oc['mcmc_temperature']}, step delta = mean 5-NN distance of a 10% subsample; cycle: decode -> encode "
                              f"each proposal (noP: without perturbation); hill climbing: {oc['hill_k']} nearest of {oc['pool']} training z, "
                              f"step {oc['hill_step']} (compares with the current point's fitness; upstream with the previous neighbour's); "
                              f"gradient ascent lr {oc['grad_lr']}; LatentOps: the VP ODE toward target y, from the seeds (as upstream)."])


def write_all(records: Sequence[dict], judges: dict, cfg: dict, arrays: Sequence[str | Path], out: Mapping[str, str]) -> pd.DataFrame:
    """Every protein output; returns the generation rows (the job's log shows them)."""
    name = {r["model"]: registry.get("protein", r["model"]).display for r in records}
    fitness_table(records, judges, cfg, name, out)
    reconstruction_table(records, cfg, name, out)
    gen = generation_table(records, judges, cfg, name, out)
    optimisation_table(records, cfg, name, out)
    figures.figure6({name[r["model"]]: (np.load(p), r["latent_smoothness"]["knn10_r2_test"]) for r, p in zip(records, arrays)},
                    out["figure6"])
    return gen
