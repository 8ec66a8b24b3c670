"""GPT-2 (LM): the text track's plain language model, Table 1's GPT-2 row.

One GPT-2 (``transformers``' ``GPT2LMHeadModel``, built by ``diled.modalities.text.gpt2_config``) over the decoder
tokenizer, pre-trained on the training split and the unlabeled pool, then fine-tuned on the rated split. It is a
baseline (no latent: generation only) and a shared part: every latent text model's decoder starts from its
pre-trained weights (``diled.modalities.text.from_lm``), and the text judges' reference LM is this class trained on
the judge split. ``net.decoder.pretrained`` starts it from OpenAI's weights instead (the paper configuration's gpt2-xl).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from diled.modalities.text.data import PAD
from diled.modalities.text.model import TokenSampler, decode_loop, decoder_net, gpt2_config, gpt2_lm, ids_of, token_nll, trim, vocab_size
from diled.stages import StagePlan


class LanguageModel(nn.Module):
    """A GPT-2 language model over the decoder tokenizer: the plain-LM baseline, the decoders' initialisation and the
    reference LM of the perplexity judge."""

    def __init__(self, net: dict, vocab: int):
        super().__init__()
        self.lm = gpt2_lm(gpt2_config(net, vocab))
        self.block_size = int(net["block_size"])

    def nll(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-example summed NLL of ids[1:] given the prefix."""
        ids = trim(ids)
        logits = self.lm(input_ids=ids[:, :-1], attention_mask=(ids[:, :-1] != PAD).long()).logits
        return token_nll(logits, ids[:, 1:])

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean NLL per predicted token (the LM pre-training loss)."""
        ids = ids_of(batch)
        nll = self.nll(ids)
        loss = nll.sum() / (ids[:, 1:] != PAD).sum()
        return loss, {"nll_per_token": loss.item()}

    @torch.no_grad()
    def generate_ids(self, seeds: Sequence[int] | None, n: int, cap: int | None = None) -> torch.Tensor:
        """``n`` sequences by ancestral sampling (one generator per seed; greedy when ``seeds`` is None)."""
        device = self.lm.lm_head.weight.device
        cap = cap or self.block_size - 1
        cache = None

        def step(cur: torch.Tensor, k: int) -> torch.Tensor:
            nonlocal cache
            out = self.lm(input_ids=cur, cache=cache, use_cache=True)
            cache = out.cache
            return out.logits[:, -1]

        return decode_loop(step, n, torch.full((n,), cap), TokenSampler(seeds, device), device)

    @torch.no_grad()
    def generate(self, seeds: Sequence[int], steps: int | None = None) -> torch.Tensor:
        """Capability parity with the latent models: one sampled sentence per seed (``steps`` unused)."""
        return self.generate_ids(list(seeds), len(seeds))


def build_lm(cfg: dict) -> LanguageModel:
    return LanguageModel(decoder_net(cfg, "gpt2"), vocab_size(cfg))


def pretrained_folder(name: str):
    """A Hugging Face GPT-2 folder: a ``diled.weights.FOLDERS`` name (``gpt2-xl``) or a local folder path."""
    from pathlib import Path

    from diled import weights

    if name in weights.FOLDERS:
        return weights.resolve(weights.FOLDERS[name])
    if not (Path(name) / "config.json").is_file():
        raise FileNotFoundError(f"net.decoder.pretrained = {name!r}: neither a known artifact ({sorted(weights.FOLDERS)}) "
                                "nor a folder with a GPT-2 config.json")
    return Path(name)


def load_pretrained_gpt2(lm: nn.Module, folder) -> None:
    """OpenAI GPT-2 weights into ``lm`` (a ``GPT2LMHeadModel`` over GPT-2's BPE shifted by 3: ``diled.modalities.text.data``).

    The blocks and ``ln_f`` are copied as they are; ``wte`` gains three rows in front for ``<pad> <bos> <eos>``
    (each the mean of GPT-2's embeddings; upstream appends its added tokens the same way); ``wpe`` keeps the first
    ``n_positions`` rows (the suite's rows are a block plus the memory slot, not 1,024).
    """
    from transformers import GPT2LMHeadModel

    from diled.modalities.text.data import GPT2_VOCAB, SPECIAL

    src = GPT2LMHeadModel.from_pretrained(folder, use_safetensors=True).transformer  # never a pickled pytorch_model.bin
    dst = lm.transformer
    got = (src.config.n_embd, src.config.n_layer, src.config.n_head)
    want = (dst.config.n_embd, len(dst.h), dst.config.n_head)
    if got != want or src.wte.weight.shape[0] != GPT2_VOCAB or dst.wte.weight.shape[0] != GPT2_VOCAB + len(SPECIAL):
        raise ValueError(f"{folder}: pretrained GPT-2 (n_embd, n_layer, n_head) = {got}, vocabulary {src.wte.weight.shape[0]}; "
                         f"net.decoder asks for {want} over data.tokenizer kind gpt2 ({GPT2_VOCAB + len(SPECIAL)} ids): make them agree")
    with torch.no_grad():
        wte = src.wte.weight
        dst.wte.weight.copy_(torch.cat([wte.mean(0, keepdim=True).expand(len(SPECIAL), -1), wte]))
        dst.wpe.weight.copy_(src.wpe.weight[: dst.wpe.weight.shape[0]])
        dst.ln_f.load_state_dict(src.ln_f.state_dict())
        for mine, theirs in zip(dst.h, src.h):
            mine.load_state_dict(theirs.state_dict())


def train_lm(ctx):
    """GPT-2 trained as a language model on the training split: from scratch, or fine-tuned from OpenAI's weights
    (``net.decoder.pretrained``, the paper configuration's gpt2-xl)."""
    model = ctx.build()
    name = ctx.cfg["net"]["decoder"].get("pretrained")
    if name:
        load_pretrained_gpt2(model.lm, pretrained_folder(name))
    return StagePlan(model.to(ctx.device), lambda m, batch: m.loss(batch), ctx.data)


def finetune_lm(ctx):
    """The pre-trained LM fine-tuned on the rated training split: Table 1's GPT-2 row (the pool's sentences are other
    English: wordnet glosses, novels, scripture; generation is judged against movie-review snippets)."""
    if ctx.init is None:
        raise ValueError("the LM's train stage starts from gpt2/pretrain")
    return StagePlan(ctx.init.to(ctx.device).requires_grad_(True), lambda m, batch: m.loss(batch), ctx.data)


__all__ = ["LanguageModel", "build_lm", "train_lm", "finetune_lm", "load_pretrained_gpt2", "pretrained_folder"]
