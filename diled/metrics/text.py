"""Text-generation metrics of the DiLED text track: BLEU, self-BLEU, distinct-n, copy rate, perplexity.

The definitions follow the official evaluation code of EDDPM (guangyliu/EDDPM) and LatentOps
(guangyliu/LatentOps), so numbers are comparable with the papers' tables:

* reconstruction BLEU: nltk ``corpus_bleu`` on whitespace tokens, each source the single reference of
  its output, 4-gram, no smoothing, x 100;
* per-sentence BLEU (input-BLEU of edits, bootstrap error bars): nltk ``sentence_bleu`` with
  ``SmoothingFunction().method1``, x 100;
* self-BLEU: each sample against all the others as references (``sentence_bleu``, method1), mean x 100;
* perplexity: the Hugging Face sliding-window recipe.

Upstream bugs fixed here, as named differences:

* perplexity divides the summed NLL by the number of tokens actually predicted; upstream divides by
  ``end_loc``, which counts the first token that is never predicted (``corpus_perplexity``);
* every metric refuses empty or mismatched inputs instead of silently scoring a truncated zip.

Uncertainty: ``bootstrap_corpus_bleu`` (resampling sentence pairs), ``bootstrap_mean`` (percentile
interval of a mean, e.g. of per-sentence scores) and ``binomial_ci`` (Wilson interval of a rate, e.g.
the copy rate). ``diled.metrics.uncertainty`` only covers FID/KID, so these live here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
from nltk.translate.bleu_score import (
    SmoothingFunction,
    closest_ref_length,
    corpus_bleu,
    modified_precision,
    sentence_bleu,
)
from nltk.util import ngrams

if TYPE_CHECKING:
    import torch

BLEU_ORDER = 4  # nltk's default weights (0.25, 0.25, 0.25, 0.25): BLEU-4


def tokens(sentence: str) -> list[str]:
    """Whitespace tokens: upstream scores BLEU on ``str.split()``, so no tokenizer is involved."""
    return sentence.split()


def _pairs(sources: Sequence[str], outputs: Sequence[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Tokenised (sources, outputs), refusing unequal lengths and empty input (a zip would truncate)."""
    if len(sources) != len(outputs):
        raise ValueError(f"need one output per source, got {len(sources)} sources and {len(outputs)} outputs")
    if len(sources) == 0:
        raise ValueError("need at least one (source, output) pair")
    return [tokens(s) for s in sources], [tokens(o) for o in outputs]


def reconstruction_bleu(sources: Sequence[str], outputs: Sequence[str]) -> float:
    """Corpus BLEU-4 (x 100) of outputs against their sources, as EDDPM/LatentOps report reconstruction.

    nltk ``corpus_bleu``, each source the single reference of its output, whitespace tokens, default
    weights, no smoothing. nltk's warning about a zero n-gram precision is silenced (the score is then
    ~1e-75, i.e. 0 at any printed precision). Kept from nltk, as upstream scores: a hypothesis shorter
    than n adds 1 (not 0) to the n-gram total, so a perfectly reconstructed sentence of fewer than 4
    tokens still lowers corpus BLEU below 100.
    """
    refs, hyps = _pairs(sources, outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return 100.0 * float(corpus_bleu([[r] for r in refs], hyps))


def sentence_bleus(sources: Sequence[str], outputs: Sequence[str]) -> np.ndarray:
    """Per-pair sentence BLEU-4 (x 100, ``SmoothingFunction().method1``): input-BLEU of edits, error bars."""
    refs, hyps = _pairs(sources, outputs)
    smooth = SmoothingFunction().method1
    return np.array([100.0 * float(sentence_bleu([r], h, smoothing_function=smooth)) for r, h in zip(refs, hyps)],
                    dtype=np.float64)


def bleu_statistics(sources: Sequence[str], outputs: Sequence[str]) -> np.ndarray:
    """Per-pair sufficient statistics of corpus BLEU-4, one int64 row per pair.

    Columns: clipped n-gram matches for n = 1..4, n-gram totals for n = 1..4 (nltk's
    ``modified_precision``, whose total is at least 1), hypothesis length, closest reference length.
    Corpus BLEU of any multiset of pairs is ``bleu_from_statistics`` of the summed rows.
    """
    refs, hyps = _pairs(sources, outputs)
    rows = np.empty((len(refs), 2 * BLEU_ORDER + 2), dtype=np.int64)
    for i, (r, h) in enumerate(zip(refs, hyps)):
        for n in range(1, BLEU_ORDER + 1):
            p = modified_precision([r], h, n)
            rows[i, n - 1] = p.numerator
            rows[i, BLEU_ORDER + n - 1] = p.denominator
        rows[i, 2 * BLEU_ORDER] = len(h)
        rows[i, 2 * BLEU_ORDER + 1] = closest_ref_length([r], len(h))
    return rows


def bleu_from_statistics(totals: np.ndarray) -> np.ndarray:
    """Corpus BLEU-4 (x 100) from summed ``bleu_statistics`` rows (shape (..., 10)); nltk's formula.

    Brevity penalty on the summed lengths times the geometric mean of the modified precisions; a zero
    precision gives 0 (nltk returns 0 for zero unigram matches and ~1e-75 for a zero higher order).
    """
    t = np.asarray(totals, dtype=np.int64)
    num, den = t[..., :BLEU_ORDER], t[..., BLEU_ORDER:2 * BLEU_ORDER]
    hyp, ref = t[..., 2 * BLEU_ORDER], t[..., 2 * BLEU_ORDER + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(hyp > ref, 1.0, np.where(hyp == 0, 0.0, np.exp(1.0 - ref / np.maximum(hyp, 1))))
        log_p = np.log(np.where(num > 0, num, 1) / den)
    geo = np.exp((log_p / BLEU_ORDER).sum(-1))
    return np.where((num > 0).all(-1), 100.0 * bp * geo, 0.0)


def bootstrap_corpus_bleu(sources: Sequence[str], outputs: Sequence[str], n_boot: int = 200, seed: int = 0,
                          level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of corpus BLEU over resamples of (source, output) pairs.

    The n-gram statistics are counted once per pair (``bleu_statistics``); each resample only sums
    rows with its multiplicities and recombines them (``bleu_from_statistics``), so a replicate costs
    one (N,) x (N, 10) product instead of a full nltk pass.
    """
    if n_boot < 2 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 2 and 0 < level < 1, got {n_boot}, {level}")
    stats = bleu_statistics(sources, outputs)
    n = len(stats)
    rng = np.random.default_rng(seed)
    totals = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) @ stats for _ in range(n_boot)])
    reps = bleu_from_statistics(totals)
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def self_bleu(samples: Sequence[str], max_n: int = 4) -> float:
    """Self-BLEU (x 100, LatentOps): mean sentence BLEU of each sample against all the others.

    nltk ``sentence_bleu`` with uniform weights over 1..max_n and ``SmoothingFunction().method1``;
    a sample with no tokens scores 0. Higher means less diverse. Cost is quadratic in the sample count.
    """
    if len(samples) < 2:
        raise ValueError(f"self-BLEU needs at least 2 samples, got {len(samples)}")
    if max_n < 1:
        raise ValueError(f"need max_n >= 1, got {max_n}")
    toks = [tokens(s) for s in samples]
    weights = (1.0 / max_n,) * max_n
    smooth = SmoothingFunction().method1
    scores = []
    for i, hyp in enumerate(toks):
        if not hyp:
            scores.append(0.0)
            continue
        refs = toks[:i] + toks[i + 1:]
        scores.append(100.0 * float(sentence_bleu(refs, hyp, weights=weights, smoothing_function=smooth)))
    return float(np.mean(scores))


def distinct_n(samples: Sequence[str], n: int) -> float:
    """Distinct-n: distinct n-grams / all n-grams over the samples (whitespace tokens, within sentences).

    0.0 when the samples hold no n-gram at all.
    """
    if n < 1:
        raise ValueError(f"need n >= 1, got {n}")
    grams = [g for s in samples for g in ngrams(tokens(s), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def copy_rate(samples: Sequence[str], training: Iterable[str]) -> float:
    """Fraction of samples equal to a training sentence after whitespace normalisation (memorisation)."""
    if len(samples) == 0:
        raise ValueError("need at least one sample")
    seen = {" ".join(s.split()) for s in training}
    return sum(" ".join(s.split()) in seen for s in samples) / len(samples)


def perplexity_from_nll(total_nll: float, count: int) -> float:
    """Perplexity exp(total NLL / number of predicted tokens)."""
    if count <= 0:
        raise ValueError(f"need a positive token count, got {count}")
    return math.exp(total_nll / count)


def corpus_perplexity(nll_fn: Callable[[torch.Tensor, torch.Tensor], float], token_ids: Sequence[int], window: int,
                      stride: int) -> float:
    """Sliding-window perplexity of a token stream (https://huggingface.co/docs/transformers/perplexity).

    Windows start at 0, stride, 2*stride, ... and end at min(begin + window, len); each window scores
    only the tokens the previous window did not (its last end - prev_end positions), so with
    stride < window every token but the first is predicted exactly once, with window - stride tokens
    of context carried over. With stride == window (disjoint windows) the first token of each window
    has no context and is not scored, as in the recipe.
    ``nll_fn(ids (1, n) long, target_mask (1, n) bool)`` returns the summed NLL of the masked positions;
    position 0 of a window is never a target (nothing precedes it).

    Named difference from LatentOps: upstream divides by end_loc, which counts the first token that is
    never predicted; here the summed NLL is divided by the number of tokens actually predicted (len - 1).
    """
    import torch

    if window < 2 or not 0 < stride <= window:
        raise ValueError(f"need window >= 2 and 0 < stride <= window, got window={window}, stride={stride}")
    ids = torch.as_tensor(list(token_ids), dtype=torch.long).unsqueeze(0)
    length = ids.shape[1]
    if length < 2:
        raise ValueError(f"need at least 2 tokens to predict one, got {length}")
    total, count, prev_end = 0.0, 0, 0
    for begin in range(0, length, stride):
        end = min(begin + window, length)
        trg_len = end - prev_end
        mask = torch.zeros(1, end - begin, dtype=torch.bool)
        mask[:, -trg_len:] = True
        mask[:, 0] = False
        total += float(nll_fn(ids[:, begin:end], mask))
        count += int(mask.sum())
        prev_end = end
        if end == length:
            break
    return perplexity_from_nll(total, count)


def bootstrap_mean(values: np.ndarray, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` over ``n_boot`` seeded resamples with replacement."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) == 0:
        raise ValueError("need at least one value")
    if n_boot < 2 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 2 and 0 < level < 1, got {n_boot}, {level}")
    rng = np.random.default_rng(seed)
    reps = np.array([v[rng.integers(0, len(v), len(v))].mean() for _ in range(n_boot)])
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def binomial_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a rate successes / n; unlike the normal interval it stays in [0, 1]
    and is not degenerate at 0 or n successes (copy rates are often 0)."""
    if n <= 0 or not 0 <= successes <= n or not 0 < level < 1:
        raise ValueError(f"need n > 0, 0 <= successes <= n and 0 < level < 1, got {successes}, {n}, {level}")
    z = NormalDist().inv_cdf((1 + level) / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds where the float form is off by an ulp
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi
