"""The text track's metric suite (Table 1): judges trained on the judge split, then one evaluation per model.

Judges (no generator sees the judge split, and no judge ever selects an output):

* reference LM -- a GPT-2 of ``judges.lm`` trained on the judge split as one stream ``s1 <eos> s2 <eos> ..``
  (random windows); generated samples are joined the same way and scored with the sliding-window recipe;
* sentiment judge -- TF-IDF (1-2 grams) + logistic regression (scikit-learn) fit on the judge split.

Per model (``diled.metrics.text`` for the formulas): reconstruction BLEU of the test split (greedy from the
mean, each sentence capped at its own length: upstream caps a whole batch at its first sentence's length),
with a bootstrap interval; generation at each step count: perplexity (interval by resampling sentences),
self-BLEU, distinct-1/2, copy rate, mean length; sentiment editing along the difference of the class
means of the training codes, at fixed scales, judged by the sentiment judge (upstream lets its judge
pick among candidates, which inflates accuracy); interpolation examples; latent health (active units,
code spread, NLL gain of the true z over a shuffled z).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from diled.diffusion import derive_seed
from diled.metrics import text as mt
from diled.modalities.text.data import EOS, PAD, decode_ids

# ----------------------------------------------------------------------------- judges


def sentiment_judge(sentences: Sequence[str], labels: np.ndarray, seed: int = 0):
    """TF-IDF 1-2 grams + logistic regression, fit on the judge split (deterministic)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    judge = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                          LogisticRegression(C=4.0, max_iter=2000, random_state=seed))
    return judge.fit(list(sentences), np.asarray(labels))


def stream(tok, sentences: Sequence[str]) -> np.ndarray:
    """``s1 <eos> s2 <eos> ..`` as one id array (the reference LM's training and scoring layout)."""
    out: list[int] = [EOS]
    for enc in tok.encode_batch(list(sentences)):
        out += enc.ids + [EOS]
    return np.asarray(out, dtype=np.int64)


def stream_windows(ids: np.ndarray, length: int, stride: int) -> torch.Tensor:
    """Overlapping rows of ``length`` ids every ``stride`` (what the reference LM trains on)."""
    starts = range(0, max(1, len(ids) - length + 1), stride)
    return torch.from_numpy(np.stack([ids[s : s + length] for s in starts]))


class Scorer:
    """Per-token NLLs of a stream under the reference LM by the sliding-window recipe, attributed to sentences."""

    def __init__(self, lm, window: int, stride: int):
        self.lm, self.window, self.stride = lm, int(window), int(stride)

    @torch.no_grad()
    def token_nll(self, ids: np.ndarray) -> np.ndarray:
        """NLL of every position (NaN where never a target: position 0)."""
        nll = np.full(len(ids), np.nan)
        device = self.lm.lm.lm_head.weight.device

        def fn(chunk: torch.Tensor, mask: torch.Tensor) -> float:
            chunk = chunk.to(device)
            logits = self.lm.lm(input_ids=chunk).logits[0, :-1]
            per = torch.nn.functional.cross_entropy(logits.float(), chunk[0, 1:], reduction="none").cpu().numpy()
            m = mask[0, 1:].cpu().numpy()
            fn.calls.append((per, m))
            return float(per[m].sum())

        fn.calls = []
        mt.corpus_perplexity(fn, ids.tolist(), self.window, self.stride)
        # place each window's scored positions: corpus_perplexity walks begin = 0, stride, 2 * stride, ..
        for k, (per, m) in enumerate(fn.calls):
            begin = k * self.stride
            pos = np.arange(begin + 1, min(begin + self.window, len(ids)))
            nll[pos[m]] = per[m]
        return nll

    def sentences(self, tok, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(summed NLL, scored tokens) per sentence, each sentence owning its tokens and its ``<eos>``."""
        ids = stream(tok, sentences)
        nll = self.token_nll(ids)
        owner = np.cumsum(np.r_[0, (ids[:-1] == EOS).astype(int)])[1:] - 1  # position p belongs to sentence owner[p - 1]
        sums, counts = np.zeros(len(sentences)), np.zeros(len(sentences), dtype=np.int64)
        ok = ~np.isnan(nll[1:])
        np.add.at(sums, owner[ok], nll[1:][ok])
        np.add.at(counts, owner[ok], 1)
        return sums, counts


def perplexity_with_ci(sums: np.ndarray, counts: np.ndarray, n_boot: int = 500, seed: int = 0) -> dict[str, float]:
    """Corpus perplexity exp(sum NLL / tokens) and a percentile interval from resampling sentences."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), (n_boot, len(sums)))
    boot = np.exp(sums[idx].sum(1) / np.maximum(counts[idx].sum(1), 1))
    return {"ppl": float(np.exp(sums.sum() / max(counts.sum(), 1))), "ppl_lo": float(np.percentile(boot, 2.5)),
            "ppl_hi": float(np.percentile(boot, 97.5))}


# ----------------------------------------------------------------------------- per-model metrics


def generation_metrics(samples: Sequence[str], scorer: Scorer, tok, training: Sequence[str]) -> dict[str, float]:
    sums, counts = scorer.sentences(tok, samples)
    return {**perplexity_with_ci(sums, counts), "self_bleu": mt.self_bleu(samples), "distinct_1": mt.distinct_n(samples, 1),
            "distinct_2": mt.distinct_n(samples, 2), "copy_rate": mt.copy_rate(samples, training),
            "mean_words": float(np.mean([len(s.split()) for s in samples])), "empty": int(sum(not s.strip() for s in samples))}


def reconstruction(model, batch: tuple[torch.Tensor, ...], tok, sources: Sequence[str], batch_size: int) -> tuple[list[str], dict[str, float]]:
    """Greedy decoding of each test sentence's mean, capped at the source's own length (tokens + ``<eos>``)."""
    outs = []
    for i in range(0, len(sources), batch_size):
        part = tuple(b[i : i + batch_size] for b in batch)
        caps = (part[1] != PAD).sum(1) - 1
        outs += decode_ids(tok, model.decode_ids(model.encode(part), caps).cpu().numpy())
    lo, hi = mt.bootstrap_corpus_bleu(sources, outs)
    return outs, {"bleu": mt.reconstruction_bleu(sources, outs), "bleu_lo": lo, "bleu_hi": hi,
                  "exact": float(np.mean([a == b for a, b in zip(sources, outs)]))}


AU_FLOOR = 0.01  # Burda et al.'s active-unit threshold


@torch.no_grad()
def noise_variance(model, batch: tuple[torch.Tensor, ...], z_dim: int) -> torch.Tensor:
    """Per dimension, the variance of the noise the decoder's z carries in training: the fixed encoder variance
    (DiLED, the autoencoder), the mean posterior variance over the batch (a VAE), or 0 (deterministic codes)."""
    stats = getattr(model.encoder, "stats", None)
    if stats is not None:
        return stats(batch)[1].float().exp().mean(0)
    return torch.full((z_dim,), float(getattr(model, "encoder_std", 0.0)) ** 2, device=batch[1].device)


@torch.no_grad()
def latent_health(model, batch: tuple[torch.Tensor, ...], seed: int) -> dict[str, float]:
    """Active units, code spread (mean per-dimension std of the mean) and the NLL gain per token of the true z over a
    shuffled z (does the decoder use z?).

    A unit is active when the variance of its mean across sentences exceeds both 0.01 and the variance of the noise
    added to it in training (``noise_variance``): below that the decoder cannot tell two sentences apart along it,
    whatever the fixed 0.01 says (a model whose codes shrink under its latent term keeps no unit above its own noise).
    """
    mean = model.encode(batch)
    var = mean.var(0)
    noise = noise_variance(model, batch, mean.shape[1])
    threshold = torch.clamp(noise, min=AU_FLOOR)
    g = torch.Generator().manual_seed(derive_seed(seed, "shuffle"))
    perm = torch.randperm(len(mean), generator=g)
    ids = batch[1]
    tokens = (ids[:, 1:] != PAD).sum().item()
    true = model.nll_given(batch, mean).sum().item() / tokens
    shuffled = model.nll_given(batch, mean[perm]).sum().item() / tokens
    return {"active_units": int((var > threshold).sum()), "active_units_0.01": int((var > AU_FLOOR).sum()),
            "noise_var": float(noise.mean()), "snr": float((var / threshold).mean()),
            "z_dim": int(mean.shape[1]), "code_spread": float(var.sqrt().mean()),
            "mean_norm": float(mean.norm(dim=1).mean()), "nll_true_z": true, "nll_shuffled_z": shuffled, "z_gain": shuffled - true}


@torch.no_grad()
def editing(model, train_batch, test_batch, tok, judge, scales: Sequence[float], batch_size: int) -> tuple[list[dict], dict]:
    """Move each test code along the training codes' sentiment direction toward the other label, decode, judge.

    The direction is the difference of the class means of the training codes (unit length); a step of scale s is
    s standard deviations of the training codes' projection on it. The judge only scores.
    """
    mu_tr = torch.cat([model.encode(tuple(b[i : i + 512] for b in train_batch)) for i in range(0, len(train_batch[0]), 512)])
    y_tr = train_batch[2]
    d = mu_tr[y_tr == 1].mean(0) - mu_tr[y_tr == 0].mean(0)
    unit = d / d.norm()
    sd = float((mu_tr @ unit).std())
    mu = model.encode(test_batch)
    target = 1 - test_batch[2]
    sign = (2 * target - 1).to(mu.dtype)[:, None]
    rows, examples = [], {}
    for s in [0.0, *scales]:
        z = mu + sign * s * sd * unit
        outs = []
        for i in range(0, len(z), batch_size):
            outs += decode_ids(tok, model.decode_ids(z[i : i + batch_size]).cpu().numpy())
        hit = judge.predict(outs) == target.numpy()
        rows.append({"scale": s, "success": float(hit.mean()), "n": int(len(hit)), "hits": int(hit.sum()), "outputs": outs})
        examples[s] = outs
    return rows, {"direction_sd": sd}


@torch.no_grad()
def interpolations(model, batch, tok, pairs: int, alphas: Sequence[float]) -> list[dict]:
    """Decoded ``mix(z_a, z_b, alpha)`` for the first ``pairs`` (positive, negative) test pairs."""
    y = batch[2]
    pos, neg = torch.nonzero(y == 1).flatten()[:pairs], torch.nonzero(y == 0).flatten()[:pairs]
    mu = model.encode(batch)
    out = []
    for a, b in zip(pos.tolist(), neg.tolist()):
        z = torch.stack([model.mix(mu[a], mu[b], float(al)) for al in alphas])
        out.append({"a": a, "b": b, "alphas": list(alphas), "texts": decode_ids(tok, model.decode_ids(z).cpu().numpy())})
    return out


def generate(model, n: int, steps: int, seed: int, batch_size: int, tok) -> list[str]:
    """``n`` generated sentences, sample i from its own seed (independent of the batch it is drawn in)."""
    seeds = [derive_seed(seed, "text-gen", i) for i in range(n)]
    out = []
    for i in range(0, n, batch_size):
        out += decode_ids(tok, model.generate(seeds[i : i + batch_size], steps).cpu().numpy())
    return out
