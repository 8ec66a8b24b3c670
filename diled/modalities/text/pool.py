"""The unlabeled sentence pool of the text track: English sentences for the stages that need no sentiment label.

Sources (``text.data.pool.sources``), every file checked by sha256 before it is read:

* ``wordnet``: WordNet 3.0's glosses: each synset's definition(s) and its quoted usage examples;
* ``austen``: Jane Austen's six novels, paragraphs re-joined and split into sentences;
* ``kjv``: the King James Bible, one verse per line, the reference stripped and verses split into sentences;
  (these three from ``../shared/data/text/`` beside the repository, ``$DILED_TEXT_POOL``, or ``pool.root``)
* ``amazon``, ``nyt``, ``tweets``: the other three rated files of the ``vaderSentiment==3.3.2`` sdist
  (the snippets' archive), used without their ratings.

Every sentence gets the snippets' normalisation (``diled.modalities.text.data.normalise``, after folding typographic
quotes), must have ``min_words`` to ``max_words`` words, and is deduplicated within the pool and against
every labeled sentence (test, judge and train): two sentences are the same when their lower-cased letters
and digits are (``match_key``), so a pool sentence never repeats a scored one with other punctuation. A
seeded permutation orders the pool; ``size`` keeps its first sentences (0: all).

The pool trains the decoder tokenizer, pre-trains the LM and trains the autoencoders' reconstruction; it is
never scored and never seen by the judges or the editing direction (its label is -1).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

# files under the shared text folder: relative path -> sha256 (../shared/data/text/README.md)
SHARED_FILES = {
    "wordnet": {"wordnet/data.noun": "fea17d2f9656611334eac790e5d69e47645fa180c4aa481fb4cd9b3520754ca2",
                "wordnet/data.verb": "adcf43e35b581e8036d8b5a52d63d9cd3d3b4870b2720d3c03c799df44777bc2",
                "wordnet/data.adj": "c89120dfc1f046ddff4a631bf9b7e9fa1a36b5e86565a23bf82dbe14f30b88a7",
                "wordnet/data.adv": "444a63bf3955080ab7524f5079cfc07ff9bc682cb98bdb1db73b0fb9829f1139"},
    "austen": {"austen/emma.txt": "7c67b5985c6d0de1efaeb5d342d52cb82c38083c40e2295129e30e87ee690ebe",
               "austen/mansfieldpark.txt": "98bc90519cdf4ef663ad7de2734bb529435ef24f7abbde6bb1a50898871dafe9",
               "austen/northangerabbey.txt": "51f91bbe0517db8e65cff009b097ce0a1836124c4e0532ac19e6c0cad982abed",
               "austen/persuasion.txt": "8061549557aebd2fd6e353d18d9197cb707029112bd52d4d8b174583a925848a",
               "austen/prideprejudice.txt": "dfc684d4f857fa938268f9ab9c5567b64bd0691251eca959644adeabe6287a4d",
               "austen/sensesensibility.txt": "105e1651fe93bed7130078578efd31e0c557d68667ba672ddc876f735b30fe09"},
    "kjv": {"kjv/kjv.txt": "e53aaf0af1e58f259e35d0d9f7ca1bbe154fd77bb95471279b37b34d3c397a98"},
}
# the other rated files inside the snippets' archive (vaderSentiment sdist -> hutto_ICWSM_2014.tar.gz)
VADER_FILES = {
    "amazon": ("hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt", "11a9807a0974a2506a2d3b4851eaf69b3d6d20688ce4923adda2312a4f6dd6c2"),
    "nyt": ("hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt", "7d8fbcce7dde5d716da53e78f4ef4be6b706e9ef1e1d51887e6d0ad4b69cc27e"),
    "tweets": ("hutto_ICWSM_2014/tweets_GroundTruth.txt", "dfbe7102e2f92579ed8b19df9a3822491880697c67adf712fb66e520cc05102f"),
}
SOURCES = (*SHARED_FILES, *VADER_FILES)
LICENSES = {"wordnet": "WordNet 3.0 licence (Princeton; wordnet/COPYRIGHT)", "austen": "public domain texts (janeaustenr, MIT)",
            "kjv": "public domain (bible-kjv-text: 'provided for unrestricted use')", "amazon": "MIT (vaderSentiment)",
            "nyt": "MIT (vaderSentiment)", "tweets": "MIT (vaderSentiment)"}

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u2014": " - ", "\u2013": " - ", "_": " "})
# no sentence break after these (Mr. Darcy, St. Paul, ...)
_ABBREV = ("mr", "mrs", "ms", "dr", "st", "messrs", "col", "gen", "rev", "capt", "sir", "esq", "vs", "etc", "e.g", "i.e", "no")
_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]*[A-Z0-9])")


class PoolError(ValueError):
    """A pool source is missing, altered or unknown."""


def default_root() -> Path:
    """``$DILED_TEXT_POOL``, else ``../shared/data/text`` next to the repository."""
    env = os.environ.get("DILED_TEXT_POOL")
    return Path(env) if env else Path(__file__).resolve().parents[4] / "shared" / "data" / "text"


def match_key(sentence: str) -> str:
    """What deduplication compares: lower-cased letters and digits, single-spaced."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", sentence.lower()).split())


def split_sentences(text: str) -> list[str]:
    """Sentences of running prose: a break after ``.!?`` (and closing quotes) before a capital, except after a
    title or common abbreviation."""
    out, start = [], 0
    for m in _BREAK.finditer(text):
        head = text[start : m.start()].rstrip("\"')]")
        word = head.rsplit(None, 1)[-1].lower().rstrip(".") if head.split() else ""
        if word in _ABBREV or (len(word) == 1 and word.isalpha()):  # "Mr. Knightley", "J. R."
            continue
        out.append(text[start : m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def _checked_text(path: Path, sha256: str) -> str:
    if not path.is_file():
        raise PoolError(f"text pool file {path} not found (../shared/data/text/README.md; or set text.data.pool.root)")
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise PoolError(f"{path}: sha256 {got} is not the pinned {sha256} (../shared/data/text/README.md): the file was altered")
    return data.decode("utf-8")


def wordnet_sentences(text: str) -> Iterator[str]:
    """Definitions and quoted examples of every synset line (licence header lines start with spaces)."""
    for line in text.splitlines():
        if not line or line[0] == " " or "|" not in line:
            continue
        for part in line.split("|", 1)[1].split(";"):
            part = part.strip().strip('"').strip()
            if part:
                yield part


def austen_sentences(text: str) -> Iterator[str]:
    """Paragraphs (blank-line separated, wrapped lines re-joined) split into sentences; headings skipped."""
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para or para.isupper():  # CHAPTER I, VOLUME II, titles
            continue
        yield from split_sentences(para)


def kjv_sentences(text: str) -> Iterator[str]:
    """Each verse without its ``Book<c>:<v>`` reference, split into sentences (the first line is a title)."""
    for line in text.splitlines()[1:]:
        _, _, verse = line.partition(" ")
        yield from split_sentences(verse.strip())


def vader_sentences(text: str) -> Iterator[str]:
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            yield parts[2]


def vader_members(names: Sequence[str]) -> dict[str, str]:
    """The texts of the requested vader files, verified (``diled.modalities.text.data.vader_files``)."""
    from diled.modalities.text.data import vader_files

    paths = vader_files({n: VADER_FILES[n] for n in names}) if names else {}
    return {n: p.read_text(encoding="utf-8") for n, p in paths.items()}


_READERS = {"wordnet": wordnet_sentences, "austen": austen_sentences, "kjv": kjv_sentences}


def source_sentences(name: str, root: Path, vader: dict[str, str] | None = None) -> list[str]:
    """Raw sentences of one source (before normalisation and filters); ``vader``: the vader texts, where read already."""
    if name in VADER_FILES:
        text = (vader or {}).get(name)
        return list(vader_sentences(text if text is not None else vader_members([name])[name]))
    if name not in SHARED_FILES:
        raise PoolError(f"unknown text pool source {name!r}; known: {', '.join(SOURCES)}")
    return [s for rel, sha in SHARED_FILES[name].items() for s in _READERS[name](_checked_text(root / rel, sha))]


def clean(sentences: Iterable[str]) -> Iterator[str]:
    from diled.modalities.text.data import normalise

    for s in sentences:
        yield normalise(s.translate(_QUOTES))


def build_pool(spec: dict, max_words: int, labeled: Iterable[str], seed: int) -> tuple[list[str], list[str], dict]:
    """(pool sentences, their source names, the card's pool record): filtered, deduplicated, seeded order, ``size`` cut."""
    names = list(spec.get("sources") or SOURCES)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise PoolError(f"text.data.pool.sources: unknown {unknown}; known: {', '.join(SOURCES)}")
    root = Path(spec["root"]).expanduser() if spec.get("root") else default_root()
    lo = int(spec.get("min_words", 5))
    seen = {match_key(s) for s in labeled}
    kept, origin, counts = [], [], {}
    vader = vader_members([n for n in names if n in VADER_FILES])  # one sdist download for all three
    for name in names:
        raw = dropped_len = dropped_dup = 0
        for s in clean(source_sentences(name, root, vader)):
            raw += 1
            n = len(s.split())
            if not lo <= n <= max_words:
                dropped_len += 1
                continue
            key = match_key(s)
            if not key or key in seen:
                dropped_dup += 1
                continue
            seen.add(key)
            kept.append(s)
            origin.append(name)
        counts[name] = {"read": raw, "kept": raw - dropped_len - dropped_dup, "length_filtered": dropped_len,
                        "duplicates": dropped_dup, "license": LICENSES[name]}
    order = np.random.default_rng([seed, 31]).permutation(len(kept))
    size = int(spec.get("size") or 0)
    if size:
        order = order[:size]
    pool = [kept[i] for i in order]
    src = [origin[i] for i in order]
    used = {n: src.count(n) for n in names}
    record = {"root": str(root), "sources": counts, "available": len(kept), "used": len(pool), "used_by_source": used,
              "min_words": lo, "max_words": max_words, "seed": seed,
              "dedup": "lower-cased letters and digits, against the pool itself and every labeled sentence"}
    return pool, src, record


__all__ = ["build_pool", "split_sentences", "match_key", "default_root", "SOURCES", "PoolError"]
