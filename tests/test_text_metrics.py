"""Text-track metrics: BLEU against nltk called directly, self-BLEU, distinct-n, copy rate, perplexity windows,
the bootstrap's recombination of BLEU statistics, and the Wilson interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu

from diled.metrics.text import (
    binomial_ci,
    bleu_from_statistics,
    bleu_statistics,
    bootstrap_corpus_bleu,
    bootstrap_mean,
    copy_rate,
    corpus_perplexity,
    distinct_n,
    perplexity_from_nll,
    reconstruction_bleu,
    self_bleu,
    sentence_bleus,
    tokens,
)

SOURCES = [
    "the food was great and the staff were friendly",
    "i will never come back to this place again",
    "the pizza was cold and the service slow",
    "ok",
    "we loved the quiet patio in the evening",
]
OUTPUTS = [
    "the food was great and the staff was friendly",
    "i will never go back to this place",
    "the pasta was cold and service was slow",
    "ok then",
    "we loved the patio",
]
LONG = [s for s in SOURCES if len(s.split()) >= 4]


def _nltk_corpus(sources, outputs, **kw):
    return 100 * corpus_bleu([[s.split()] for s in sources], [o.split() for o in outputs], **kw)


def test_tokens_are_whitespace_split():
    assert tokens("  a  b\tc\n") == ["a", "b", "c"]


def test_reconstruction_bleu_matches_nltk_and_hand_cases():
    assert reconstruction_bleu(SOURCES, OUTPUTS) == pytest.approx(_nltk_corpus(SOURCES, OUTPUTS), abs=1e-12)
    assert 0 < reconstruction_bleu(SOURCES, OUTPUTS) < 100
    # identical sentences (of >= 4 tokens): every precision 1, brevity penalty 1
    assert reconstruction_bleu(LONG, LONG) == pytest.approx(100.0, abs=1e-12)
    # nltk's quirk, kept: the 1-token "ok" adds 0 matches of 1 (not 0) for n = 2, 3, 4:
    # sentence lengths 9, 9, 8, 1, 8 -> matches/totals 35/35, 30/31, 26/27, 22/23 (n-grams of a length-L
    # sentence: L - n + 1; "ok" adds 0/1 for n >= 2), brevity penalty 1
    want = 100 * (1 * 30 / 31 * 26 / 27 * 22 / 23) ** 0.25
    assert reconstruction_bleu(SOURCES, SOURCES) == pytest.approx(want, abs=1e-9)
    # no shared unigram: BLEU 0
    assert reconstruction_bleu(["a b c d e"], ["v w x y z"]) == 0.0


def test_sentence_bleus_match_nltk_method1():
    got = sentence_bleus(SOURCES, OUTPUTS)
    smooth = SmoothingFunction().method1
    want = [100 * sentence_bleu([s.split()], o.split(), smoothing_function=smooth) for s, o in zip(SOURCES, OUTPUTS)]
    assert got.shape == (5,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert got[0] < 100 and sentence_bleus(["a b c d"], ["a b c d"])[0] == pytest.approx(100.0)


@pytest.mark.parametrize("sources,outputs", [
    (SOURCES, OUTPUTS),  # mixed; a hypothesis shorter than 4 tokens (totals floored at 1 by nltk)
    (["a b c d e f g h"], ["a b c d"]),  # brevity penalty < 1
    (["a b c d e", "f g h i j"], ["a b x d e", "f y h z j"]),  # zero 4-gram matches -> 0
    (["a b c d e"], ["v w x y z"]),  # zero unigram matches -> 0
    (LONG, LONG),  # 100
    (SOURCES, SOURCES),  # < 100: the 1-token pair adds to the 2..4-gram totals
])
def test_bleu_statistics_identity_resample_equals_nltk(sources, outputs):
    stats = bleu_statistics(sources, outputs)
    assert stats.shape == (len(sources), 10)
    identity = np.bincount(np.arange(len(sources)), minlength=len(sources)) @ stats
    assert float(bleu_from_statistics(identity)) == pytest.approx(reconstruction_bleu(sources, outputs), abs=1e-9)


def test_bleu_statistics_resample_with_repeats_equals_nltk_on_repeated_pairs():
    stats = bleu_statistics(SOURCES, OUTPUTS)
    idx = [0, 0, 2, 4, 4, 4, 1]
    got = float(bleu_from_statistics(np.bincount(idx, minlength=len(SOURCES)) @ stats))
    want = _nltk_corpus([SOURCES[i] for i in idx], [OUTPUTS[i] for i in idx])
    assert got == pytest.approx(want, abs=1e-9)
    # vectorised over leading axes
    both = bleu_from_statistics(np.stack([stats.sum(0), stats[[0, 0, 2, 4, 4, 4, 1]].sum(0)]))
    np.testing.assert_allclose(both, [reconstruction_bleu(SOURCES, OUTPUTS), want], rtol=0, atol=1e-9)


def test_bootstrap_corpus_bleu_interval():
    point = reconstruction_bleu(SOURCES, OUTPUTS)
    lo, hi = bootstrap_corpus_bleu(SOURCES, OUTPUTS, n_boot=200, seed=0)
    assert 0 <= lo < point < hi <= 100
    assert (lo, hi) == bootstrap_corpus_bleu(SOURCES, OUTPUTS, n_boot=200, seed=0)  # seeded
    assert bootstrap_corpus_bleu(LONG, LONG, n_boot=50) == pytest.approx((100.0, 100.0))
    with pytest.raises(ValueError):
        bootstrap_corpus_bleu(SOURCES, OUTPUTS, n_boot=1)


def test_self_bleu():
    same = "the service was quick and the food was hot"
    assert self_bleu([same, same, same]) == pytest.approx(100.0, abs=1e-12)
    samples = ["the food was great", "the food was cold and bland", "great staff and great food", "never again"]
    smooth = SmoothingFunction().method1
    want = np.mean([
        100 * sentence_bleu([t.split() for j, t in enumerate(samples) if j != i], s.split(),
                            weights=(0.25,) * 4, smoothing_function=smooth)
        for i, s in enumerate(samples)
    ])
    assert self_bleu(samples) == pytest.approx(want, abs=1e-12)
    want2 = np.mean([
        100 * sentence_bleu([t.split() for j, t in enumerate(samples) if j != i], s.split(),
                            weights=(0.5, 0.5), smoothing_function=smooth)
        for i, s in enumerate(samples)
    ])
    assert self_bleu(samples, max_n=2) == pytest.approx(want2, abs=1e-12)
    # an empty sample scores 0 and is still a (useless) reference of the others
    assert self_bleu([same, same, ""]) == pytest.approx(200.0 / 3, abs=1e-12)
    with pytest.raises(ValueError):
        self_bleu([same])


def test_distinct_n_hand_counts():
    samples = ["the cat sat on the mat", "the cat sat"]
    # unigrams: 6 + 3 = 9 in all; distinct {the, cat, sat, on, mat} = 5 -> 5/9
    assert distinct_n(samples, 1) == pytest.approx(5 / 9)
    # bigrams: (the cat)(cat sat)(sat on)(on the)(the mat) + (the cat)(cat sat) = 7, none across the two
    # sentences; distinct 5 -> 5/7
    assert distinct_n(samples, 2) == pytest.approx(5 / 7)
    assert distinct_n(["a b", "c"], 3) == 0.0
    assert distinct_n([], 1) == 0.0
    with pytest.raises(ValueError):
        distinct_n(samples, 0)


def test_copy_rate():
    training = ["the food was great", "never  again", "ok"]
    samples = ["the food  was great ", "never again", "the food was good", "OK"]
    assert copy_rate(samples, iter(training)) == pytest.approx(0.5)  # whitespace-normalised, case-sensitive
    assert copy_rate(["x"], []) == 0.0
    with pytest.raises(ValueError):
        copy_rate([], training)


def test_corpus_perplexity_one_nat_per_token():
    def nll_fn(ids, mask):
        assert ids.shape == mask.shape and ids.shape[0] == 1 and not bool(mask[0, 0])
        return float(mask.sum())

    assert corpus_perplexity(nll_fn, list(range(10)), window=4, stride=2) == pytest.approx(math.e, abs=1e-12)
    assert corpus_perplexity(nll_fn, list(range(7)), window=16, stride=8) == pytest.approx(math.e, abs=1e-12)


@pytest.mark.parametrize("window,stride", [(4, 2), (3, 1), (5, 3), (4, 3)])
def test_corpus_perplexity_windows_score_every_token_once(window, stride):
    seen: list[int] = []
    calls: list[int] = []

    def nll_fn(ids, mask):
        seen.extend(ids[mask].tolist())  # the ids are their own positions
        calls.append(int(mask.sum()))
        return float(ids[mask].sum())  # NLL of position t is t nats

    ppl = corpus_perplexity(nll_fn, list(range(10)), window=window, stride=stride)
    assert sorted(seen) == list(range(1, 10))  # 9 targets: every position once but the first
    assert sum(calls) == 9
    assert ppl == pytest.approx(math.exp(45 / 9), rel=1e-12)
    if (window, stride) == (4, 2):
        assert calls == [3, 2, 2, 2]


def test_corpus_perplexity_disjoint_windows_skip_each_window_start():
    seen: list[int] = []

    def nll_fn(ids, mask):
        seen.extend(ids[mask].tolist())
        return float(mask.sum())

    # stride == window: windows [0,4) [4,8) [8,10); positions 0, 4, 8 have no context and are not scored
    assert corpus_perplexity(nll_fn, list(range(10)), window=4, stride=4) == pytest.approx(math.e)
    assert seen == [1, 2, 3, 5, 6, 7, 9]


def test_perplexity_errors_and_helper():
    assert perplexity_from_nll(9.0, 9) == pytest.approx(math.e)
    with pytest.raises(ValueError):
        perplexity_from_nll(1.0, 0)
    for window, stride in [(4, 5), (4, 0), (1, 1)]:
        with pytest.raises(ValueError):
            corpus_perplexity(lambda ids, mask: 0.0, list(range(10)), window=window, stride=stride)
    with pytest.raises(ValueError):
        corpus_perplexity(lambda ids, mask: 0.0, [3], window=4, stride=2)


def test_bootstrap_mean():
    values = np.array([0.0, 1.0] * 50)
    lo, hi = bootstrap_mean(values, n_boot=1000, seed=0)
    assert lo < 0.5 < hi and 0.15 < hi - lo < 0.25  # normal approx: 2 * 1.96 * 0.05 = 0.196
    assert (lo, hi) == bootstrap_mean(values, n_boot=1000, seed=0)
    assert bootstrap_mean(np.full(7, 3.0), n_boot=20) == (3.0, 3.0)
    with pytest.raises(ValueError):
        bootstrap_mean(np.array([]))


def test_binomial_ci_wilson():
    # 0 of 10 at 95%: lower 0, upper (z^2/n) / (1 + z^2/n) with z = 1.959964 -> 0.384146 / 1.384146
    lo, hi = binomial_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.384146 / 1.384146, abs=1e-6)
    from scipy.stats import binomtest

    for k, n, level in [(0, 10, 0.95), (3, 10, 0.95), (10, 10, 0.9), (17, 200, 0.99)]:
        ref = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
        assert binomial_ci(k, n, level) == pytest.approx((ref.low, ref.high), abs=1e-12)
    with pytest.raises(ValueError):
        binomial_ci(11, 10)


@pytest.mark.parametrize("fn", [reconstruction_bleu, sentence_bleus, bleu_statistics, bootstrap_corpus_bleu])
def test_pairwise_metrics_refuse_unequal_or_empty(fn):
    with pytest.raises(ValueError, match="one output per source"):
        fn(SOURCES, OUTPUTS[:-1])
    with pytest.raises(ValueError):
        fn([], [])
