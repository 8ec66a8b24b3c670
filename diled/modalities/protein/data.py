"""Protein fitness landscapes: Gifford CDR3 enrichment (embedded default) and avGFP brightness (paper config).

Both are read from a data folder (default ``../shared/data/protein`` beside the repository; canonical
homes: the EDDPM/ReLSO repositories for Gifford, the Sarkisyan et al. figshare deposit for GFP) and
every source file is verified by sha256 before use. Sequences are strings over the 22-symbol
vocabulary ``ILVFMCAGPTSYWQNHEDKRXJ`` (X unknown, J padding), stored as int8 token ids.

Splits follow the official code: the train CSV is split 85/15 into train/valid with scikit-learn's
``train_test_split(train_size=int(0.85 N), random_state=42)``; the test CSV is used as given. GFP's
train CSV is stored in Git LFS upstream and is rebuilt here from the genotype table and the DNA
reference (translate, drop the stop codon, apply the 0-based mutations, ``*`` -> ``X``); the rows of
the official test file are the test split, every other genotype is train.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
from pathlib import Path

import numpy as np

from diled.fileio import atomic_path

VOCAB = "ILVFMCAGPTSYWQNHEDKRXJ"
PAD = VOCAB.index("J")  # 21
UNKNOWN = VOCAB.index("X")

SHA256 = {
    "gifford/train_data.csv": "b6a27cfecc057b4badc49a62f505cd44fea88b55cd63485d7d6f08c5f7eff0a7",
    "gifford/test_data.csv": "1519a042157751c8039ab6e3deac865dea932ab8230353d3158439e5cdacf56d",
    "gfp/GFP_test_data.csv": "475d346bbeabdbb173247f34b6e1b91a8bbb10294d7650a4d4a6e7dca985ebec",
    "gfp_amino_acid_genotypes_to_brightness.tsv": "5581230b9888f9960708a4769ce1c9b4453561f0b5f0374525445b4a984d54d5",
    "avGFP_reference_sequence.fa": "2559ee1afe9d0f41e03ea75db96448a34178c2dd597c78e08f01b1ee4ab5e248",
}
SOURCES = {
    "gifford": "Gifford CDR3 enrichment (Liu et al. 2020, Bioinformatics), the split of guangyliu/EDDPM Protein/data/gifford_data "
               "and the ReLSO repository (Apache-2.0); original data gifford-lab/antibody-2019",
    "gfp": "avGFP brightness (Sarkisyan et al. 2016, Nature), genotype table of the figshare deposit (via dhbrookes/CbAS) "
           "and the test split of guangyliu/EDDPM Protein/data/mut_data",
}
LENGTHS = {"gifford": 20, "gfp": 237}


def default_root() -> Path:
    """``$DILED_PROTEIN_DATA``, else ``../shared/data/protein`` next to the repository."""
    env = os.environ.get("DILED_PROTEIN_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[4] / "shared" / "data" / "protein"


def resolve_root(root: str | None) -> Path:
    """A configured data folder: absolute, relative to the repository, or the default when ``None``."""
    if root is None:
        return default_root()
    path = Path(root)
    return path if path.is_absolute() else Path(__file__).resolve().parents[3] / path


def source(root: Path, name: str) -> Path:
    """A source file of the data folder after its sha256 check (a clear error when missing or different)."""
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(f"protein data file {path} not found: download it (see ../shared/data/protein/README.md "
                                "or config/README.md) or set protein.data.root / $DILED_PROTEIN_DATA")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256[name]:
        raise ValueError(f"{path}: sha256 {digest} does not match the expected {SHA256[name]}")
    return path


# ----------------------------------------------------------------------------- tokens


def encode(seqs: list[str], length: int) -> np.ndarray:
    """Residue strings -> int8 token ids (N, length); shorter strings are right-padded with J."""
    lookup = {c: i for i, c in enumerate(VOCAB)}
    out = np.full((len(seqs), length), PAD, np.int8)
    for n, s in enumerate(seqs):
        if len(s) > length:
            raise ValueError(f"sequence {n} has {len(s)} residues, more than the length {length}")
        try:
            out[n, : len(s)] = [lookup[c] for c in s]
        except KeyError as e:
            raise ValueError(f"sequence {n} ({s!r}) has a symbol outside {VOCAB}: {e}") from None
    return out


def decode(tokens: np.ndarray, keep_pad: bool = True) -> list[str]:
    """Token ids -> residue strings (with the J pads as the official metrics read them, or without)."""
    strings = ["".join(VOCAB[int(i)] for i in row) for row in np.asarray(tokens)]
    return strings if keep_pad else [s.replace("J", "") for s in strings]


# ----------------------------------------------------------------------------- datasets


def _read_gifford(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [r["CDR3"] for r in rows], np.array([float(r["enrichment"]) for r in rows], np.float32)


_CODONS = {a + b + c: aa for (a, b, c), aa in zip(itertools.product("TCAG", repeat=3),
                                                    "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG")}


def gfp_reference(root: Path) -> str:
    """The avGFP protein: the DNA reference translated, without its initial Met (absent here) and stop codon."""
    dna = "".join(line.strip() for line in open(source(root, "avGFP_reference_sequence.fa")) if not line.startswith(">"))
    protein = "".join(_CODONS[dna[i : i + 3]] for i in range(0, len(dna) - 2, 3))
    return protein.removeprefix("M").removesuffix("*")


def gfp_genotypes(root: Path) -> list[tuple[str, float]]:
    """Every genotype of the brightness table as (sequence, median brightness): 0-based mutations, ``*`` -> ``X``."""
    ref = gfp_reference(root)
    out = []
    with open(source(root, "gfp_amino_acid_genotypes_to_brightness.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            seq = list(ref)
            for m in row["aaMutations"].split(":") if row["aaMutations"] else []:
                wt, pos, new = m[1], int(m[2:-1]), m[-1]  # e.g. "SA108D": substitution A108D
                if seq[pos] != wt:
                    raise ValueError(f"GFP mutation {m}: reference has {seq[pos]} at {pos}, not {wt}")
                seq[pos] = new
            out.append(("".join(seq).replace("*", "X"), float(row["medianBrightness"])))
    return out


def gfp_splits(root: Path) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(train, test): the official test rows, and every other genotype.

    The test file writes brightness to 9 decimals, so a test row matches an unused genotype of the
    same sequence whose brightness differs by less than 1e-8.
    """
    with open(source(root, "gfp/GFP_test_data.csv")) as f:
        test = [(s, float(v)) for s, v in csv.reader(f)]
    by_seq: dict[str, list[float]] = {}
    for seq, value in gfp_genotypes(root):
        by_seq.setdefault(seq, []).append(value)
    missing = 0
    for seq, value in test:
        pool = by_seq.get(seq, [])
        hit = next((i for i, v in enumerate(pool) if abs(v - value) < 1e-8), None)
        if hit is None:
            missing += 1
        else:
            pool.pop(hit)
    if missing:
        raise ValueError(f"{missing} rows of the official GFP test file are not among the rebuilt genotypes")
    train = [(seq, v) for seq, values in by_seq.items() for v in values]
    return train, test


def _train_valid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The official 85/15 split of the train CSV (scikit-learn, random_state 42)."""
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(n), train_size=int(0.85 * n), random_state=42)


def prepare(out: str | Path, dataset: str, root: str | None = None) -> dict:
    """Write ``out`` (.npz: ``<split>_tokens`` int8 (N, L) and ``<split>_fitness`` for train/valid/test) and return its card."""
    if dataset not in LENGTHS:
        raise ValueError(f"unknown protein dataset {dataset!r}; known: {sorted(LENGTHS)}")
    folder = resolve_root(root)
    length = LENGTHS[dataset]
    if dataset == "gifford":
        train_seqs, train_fit = _read_gifford(source(folder, "gifford/train_data.csv"))
        test_seqs, test_fit = _read_gifford(source(folder, "gifford/test_data.csv"))
        files = ["gifford/train_data.csv", "gifford/test_data.csv"]
    else:
        train_rows, test_rows = gfp_splits(folder)
        train_seqs, train_fit = [s for s, _ in train_rows], np.array([v for _, v in train_rows], np.float32)
        test_seqs, test_fit = [s for s, _ in test_rows], np.array([v for _, v in test_rows], np.float32)
        files = ["gfp/GFP_test_data.csv", "gfp_amino_acid_genotypes_to_brightness.tsv", "avGFP_reference_sequence.fa"]
    tr, va = _train_valid(len(train_seqs))
    train_tok = encode(train_seqs, length)
    arrays = {"train_tokens": train_tok[tr], "train_fitness": train_fit[tr], "valid_tokens": train_tok[va],
              "valid_fitness": train_fit[va], "test_tokens": encode(test_seqs, length), "test_fitness": test_fit}
    out = Path(out)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return {
        "name": dataset, "source": SOURCES[dataset], "source_sha256": {name: SHA256[name] for name in files},
        "license": "Gifford: Apache-2.0 (ReLSO repository); GFP: CC BY 4.0 (figshare deposit)" if dataset == "gifford"
                   else "CC BY 4.0 (Sarkisyan et al. 2016 figshare deposit)",
        "preprocessing": f"residues over {VOCAB} (X unknown, J pad), length {length}, stored as int8 token ids; "
                         "fitness as given (Gifford: log enrichment; GFP: median brightness)",
        "split": {"seed": 42, "method": "train CSV: sklearn train_test_split(train_size=int(0.85 N), random_state=42); test as given",
                  **{k: int(len(arrays[f"{k}_tokens"])) for k in ("train", "valid", "test")}},
        "fitness": {k: {"mean": round(float(arrays[f"{k}_fitness"].mean()), 4), "std": round(float(arrays[f"{k}_fitness"].std()), 4)}
                    for k in ("train", "valid", "test")},
        "file": out.name,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }


def write_card(card: dict, path: str | Path) -> None:
    """Dataset card as Markdown (for people) with the JSON record embedded (for programs)."""
    lines = [
        f"# Dataset card: {card['name']}", "",
        f"- Source: {card['source']}",
        *[f"- `{name}`: sha256 `{digest}`" for name, digest in card["source_sha256"].items()],
        f"- License: {card['license']}",
        f"- Preprocessing: {card['preprocessing']}",
        f"- Split: {card['split']['method']}: {card['split']['train']} train, {card['split']['valid']} valid, {card['split']['test']} test",
        f"- Prepared file: `{card['file']}`, sha256 `{card['sha256']}`", "",
        "```json", json.dumps(card, indent=2), "```", "",
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))


def load(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(int64 tokens (N, L), float32 fitness) of ``split`` in {'train', 'valid', 'test'}."""
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")
    with np.load(path, allow_pickle=False) as f:
        tokens, fitness = f[f"{split}_tokens"], f[f"{split}_fitness"]
    if tokens.dtype.kind not in "iu" or (tokens.size and (tokens.min() < 0 or tokens.max() >= len(VOCAB))):
        raise ValueError(f"{split}_tokens hold values outside the alphabet's ids [0, {len(VOCAB)}) ({tokens.dtype}); "
                         "a residue would decode as another one")
    if fitness.dtype.kind != "f" or not np.isfinite(fitness).all() or fitness.shape != tokens.shape[:1]:
        raise ValueError(f"{split}_fitness must be {len(tokens)} finite floats, got {fitness.dtype} {fitness.shape}"
                         f"{'' if fitness.dtype.kind != 'f' or np.isfinite(fitness).all() else ' with NaN or inf'}")
    return tokens.astype(np.int64), fitness
