"""The text track: a BERT-family encoder, a GPT-2 decoder conditioned on z, and text DiLED built from them.

Follows the official text code (``guangyliu/EDDPM: Text/code/examples/big_ae``; ``../shared/notes/text-track.md``):

    encoder   frozen pretrained BERT-family model (MiniLM-L6 offline; bert-small in the paper configuration),
              masked mean pool of its last layer (computed once with the data: ``diled.modalities.text.data``), then
              a trainable pooler (Linear + tanh) and a bias-free Linear to the latent mean
    decoder   ``transformers``' ``GPT2LMHeadModel`` with one extra, freshly initialised block prepended (h.0)
              and z entering twice: a bias-free ``Linear(z, n_embd * n_layer)`` gives one key = value memory
              slot per layer (token positions then start at 1), and a bias-free ``Linear(z, n_embd)`` is
              added to every token embedding
    LM init   every decoder starts from one GPT-2 pre-trained as a language model on the training split
              (the ``gpt2`` model, ``baselines.gpt2``, which is also the plain-LM baseline); ``fix: upstream`` trains only what
              upstream's ``fix_model 84`` trains (the projections, ``wte``, the new block, the encoder)

Text DiLED is the DiLED core (``diled.model.DiLED``) with the elbo-form objective: L_rec is the token NLL
divided by the sentence length (non-pad tokens including ``<bos>``, as upstream), spread over t by
1 / (T lambda_t), plus w l_t (w = 8 upstream). A batch is the tuple (features, ids, labels, noised
features): the encoder reads element 0, the decoder element 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from diled.diffusion import Schedule, derive_seed, sample_timesteps
from diled.modalities.text.data import BOS, EOS, PAD
from diled.model import DiLED, LatentAutoencoder
from diled.nets import MLPSkipNet
from diled.stages import StagePlan

FIX_MODES = ("none", "upstream")

# ----------------------------------------------------------------------------- networks


class TextEncoder(nn.Module):
    """Frozen pooled features (B, H) -> tanh(Linear) pooler -> bias-free Linear to ``out_dim`` (the latent mean)."""

    def __init__(self, feature_dim: int, out_dim: int):
        super().__init__()
        self.pooler = nn.Linear(feature_dim, feature_dim)
        self.head = nn.Linear(feature_dim, out_dim, bias=False)

    def forward(self, batch: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        feats = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.head(torch.tanh(self.pooler(feats)))


def pretrained_bert(folder, config) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A ``BertModel`` of ``config`` holding the folder's pretrained tensors, and those tensors (safetensors only, so
    nothing but tensors is read; the folder is pinned by sha256 in ``diled.weights``). Every tensor the model has must
    be in the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import BertModel

    bert = BertModel(config, add_pooling_layer=False)
    try:
        pretrained = load_file(folder / "model.safetensors")
    except SafetensorError as exc:  # its message names no file
        raise ValueError(f"{folder}/model.safetensors: not a readable safetensors file ({exc}); delete the folder and rerun "
                         "to fetch and verify it again") from exc
    wanted = bert.state_dict()
    missing = sorted(k for k in wanted if k not in pretrained)
    if missing:
        raise ValueError(f"{folder}/model.safetensors lacks {missing[:3]}... for a {config.num_hidden_layers}-layer model")
    bert.load_state_dict({k: pretrained[k] for k in wanted})
    return bert, pretrained


class TokenEncoder(nn.Module):
    """WordPiece ids (B, L) -> the pretrained encoder's embedding layer (frozen) -> trainable layers -> masked mean
    pool -> the pooler and head of ``TextEncoder`` (``encoder_input: wordpieces``). Unlike a pool of frozen
    features it can learn to keep the exact wording; upstream trains all of BERT.

    ``width`` None: the first ``layers`` pretrained transformer layers, fine-tuned. ``width`` w: a small encoder
    over the frozen layer-0 token states instead (a Linear to w, ``layers`` fresh pre-norm transformer layers of
    width w): far cheaper per step on a CPU.

    ``pool`` ``mean``: the masked mean of the token states (order survives only through the position embeddings'
    mixing). ``attention:K``: K learned queries attend over the token states (one multi-head attention), their K
    outputs concatenated and projected back to the state width: each query can read its own part of the sentence,
    which is what reconstructing the exact wording asks of a single vector.
    """

    def __init__(self, encoder_name: str, layers: int, out_dim: int, width: int | None = None, pool: str = "mean"):
        super().__init__()
        from transformers import BertConfig

        from diled import weights

        folder = weights.resolve(encoder_name)
        config = BertConfig.from_json_file(folder / "config.json")
        config._attn_implementation = "sdpa"
        top = config.num_hidden_layers if width is None else 64
        if not 1 <= layers <= top:
            raise ValueError(f"net.encoder_layers must be in 1..{top} for {encoder_name}, got {layers}")
        config.num_hidden_layers = layers if width is None else 0
        self.bert, _ = pretrained_bert(folder, config)  # the embeddings (and the first ``layers`` layers)
        self.bert.embeddings.requires_grad_(False)  # the vocabulary stays the pretrained one
        h = config.hidden_size
        self.small = None
        if width is not None:
            layer = nn.TransformerEncoderLayer(width, max(1, width // 64), 4 * width, dropout=0.0, batch_first=True, norm_first=True)
            self.small = nn.ModuleDict({"proj": nn.Linear(h, width), "layers": nn.TransformerEncoder(layer, layers, enable_nested_tensor=False),
                                        "norm": nn.LayerNorm(width)})
            h = width
        self.queries = self.attend = self.merge = None
        queries = pool_queries(pool)
        if queries:
            self.queries = nn.Parameter(torch.randn(queries, h) * h ** -0.5)
            self.attend = nn.MultiheadAttention(h, max(1, h // 64), batch_first=True)
            self.merge = nn.Linear(queries * h, h)
        self.pooler = nn.Linear(h, h)
        self.head = nn.Linear(h, out_dim, bias=False)

    def token_states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.small is None:
            return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        x = self.small["proj"](self.bert.embeddings(input_ids=ids))
        return self.small["norm"](self.small["layers"](x, src_key_padding_mask=mask == 0))

    def forward(self, batch: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        ids = batch[0] if isinstance(batch, (tuple, list)) else batch
        ids = trim(ids)  # BERT's [PAD] is 0 as ours: drop the all-pad columns of the fixed-width rows
        mask = (ids != 0).long()
        h = self.token_states(ids, mask)
        if self.queries is None:
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        else:
            q = self.queries.to(h.dtype).expand(h.shape[0], -1, -1)
            read, _ = self.attend(q, h, h, key_padding_mask=mask == 0, need_weights=False)
            pooled = self.merge(read.flatten(1))
        return self.head(torch.tanh(self.pooler(pooled)))


def pool_queries(pool: str) -> int:
    """The number of attention queries of ``net.encoder_pool`` (``mean``: 0; ``attention:K``: K >= 1)."""
    if pool == "mean":
        return 0
    kind, _, k = pool.partition(":")
    if kind != "attention" or not k.isdigit() or int(k) < 1:
        raise ValueError(f"net.encoder_pool must be 'mean' or 'attention:K' with K >= 1, got {pool!r}")
    return int(k)


def encoder_input(cfg: dict) -> str:
    from diled.modalities.text.data import encoder_input_kind

    return encoder_input_kind(cfg["data"])


def build_encoder(cfg: dict, out_dim: int) -> nn.Module:
    """The encoder every text model uses (so Table 1's rows share it): ``data.encoder_input`` picks it."""
    if encoder_input(cfg) == "wordpieces":
        net = cfg["net"]
        return TokenEncoder(net["encoder"], int(net.get("encoder_layers", 2)), out_dim, net.get("encoder_width"),
                            net.get("encoder_pool", "mean"))
    return TextEncoder(feature_dim(cfg), out_dim)


def gpt2_config(net: dict, vocab: int, extra_blocks: int = 0):
    """The decoder's ``GPT2Config`` from the track's ``net.decoder`` section (positions: the block plus the memory slot)."""
    from transformers import GPT2Config

    d = net["decoder"]
    return GPT2Config(vocab_size=vocab, n_positions=net["block_size"] + int(d.get("memory_slots", 1)), n_embd=d["n_embd"], n_layer=d["n_layer"] + extra_blocks,
                      n_head=d["n_head"], resid_pdrop=d["dropout"], embd_pdrop=d["dropout"], attn_pdrop=d["dropout"],
                      bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=True)


def gpt2_lm(config):
    from transformers import GPT2LMHeadModel

    config._attn_implementation = "sdpa"
    return GPT2LMHeadModel(config)


def trim(ids: torch.Tensor) -> torch.Tensor:
    """The rows without their all-``<pad>`` tail columns (rows are padded to the block; most sentences are shorter).

    Causal attention with pads masked makes every kept position's logits independent of the dropped columns, so the
    NLL is unchanged, at a fraction of the cost."""
    width = int((ids != PAD).sum(1).max()) if ids.numel() else 0
    return ids[:, : max(2, width)]


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example summed NLL of the non-pad targets."""
    nll = nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none", ignore_index=PAD)
    return nll.sum(1)


def sentence_length(ids: torch.Tensor) -> torch.Tensor:
    """Upstream's ``sent_length``: non-pad tokens including ``<bos>`` (one more than the predicted tokens)."""
    return (ids != PAD).sum(1).clamp(min=1).to(torch.float32)


def ids_of(batch: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    return batch[1] if isinstance(batch, (tuple, list)) else batch


class TokenSampler:
    """Next-token choice: greedy (``seeds`` None) or ancestral sampling with one generator per sequence."""

    def __init__(self, seeds: Sequence[int] | None, device: torch.device):
        self.gens = None if seeds is None else [torch.Generator(device="cpu").manual_seed(derive_seed(s, "tokens")) for s in seeds]
        self.device = device

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.gens is None:
            return logits.argmax(-1)
        probs = logits.float().softmax(-1).cpu()
        return torch.stack([torch.multinomial(p, 1, generator=g)[0] for p, g in zip(probs, self.gens)]).to(self.device)


def decode_loop(step_fn, batch: int, caps: torch.Tensor, sampler: TokenSampler, device: torch.device) -> torch.Tensor:
    """Autoregressive decoding from ``<bos>``: row i stops at ``<eos>`` or after ``caps[i]`` tokens; (B, 1 + max cap) ids."""
    cur = torch.full((batch, 1), BOS, dtype=torch.long, device=device)
    out = [cur]
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    caps = caps.to(device)
    for k in range(int(caps.max().item())):
        nxt = sampler(step_fn(cur, k))
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        hit_cap = (k + 1 >= caps) & ~done & (nxt != EOS)
        nxt = torch.where(hit_cap, torch.full_like(nxt, EOS), nxt)  # a capped row ends with <eos>
        done = done | (nxt == EOS)
        cur = nxt[:, None]
        out.append(cur)
        if bool(done.all()):
            break
    return torch.cat(out, 1)


class ZMemoryDecoder(nn.Module):
    """p(x | z) of a causal transformer with z entering twice (Optimus): a bias-free ``Linear(z, width * layers *
    slots)`` gives ``slots`` key = value memory slots per layer (token positions then start after them), and a
    bias-free ``Linear(z, width)`` is added to every token embedding. A subclass builds its network, calls
    ``_z_paths`` and implements ``_token_embeddings`` and ``_run``; teacher-forced NLL and decoding are shared."""

    objective = "elbo"

    def _z_paths(self, z_dim: int, width: int, n_layer: int, n_head: int, slots: int, block_size: int) -> None:
        self.n_layer, self.n_head, self.slots, self.width = n_layer, n_head, int(slots), width
        self.memory = nn.Linear(z_dim, width * n_layer * self.slots, bias=False)
        self.embed = nn.Linear(z_dim, width, bias=False)
        self.block_size = int(block_size)

    def _token_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _run(self, emb: torch.Tensor, cache, mask: torch.Tensor, use_cache: bool) -> torch.Tensor:
        """Logits of every position of ``emb`` given the memory ``cache`` (updated in place when ``use_cache``)."""
        raise NotImplementedError

    def _cache(self, z: torch.Tensor):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.config)
        mem = self.memory(z).view(z.shape[0], self.n_layer, self.slots, self.n_head, self.width // self.n_head).transpose(2, 3)
        for i in range(self.n_layer):
            cache.update(mem[:, i], mem[:, i], i)  # (B, heads, slots, head_dim): key = value
        return cache

    def logits(self, ids: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Next-token logits for every position of ``ids`` given z (teacher forcing)."""
        emb = self._token_embeddings(ids) + self.embed(z)[:, None]
        mask = torch.cat([torch.ones_like(ids[:, :1]).expand(-1, self.slots), (ids != PAD).long()], 1)
        return self._run(emb, self._cache(z), mask, use_cache=False)

    def nll(self, ids: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-example summed NLL of ids[1:] given z."""
        ids = trim(ids)
        return token_nll(self.logits(ids[:, :-1], z), ids[:, 1:])

    def loss(self, x0, z: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """L_rec: per-example NLL divided by the sentence length (upstream's normalisation; t unused)."""
        ids = ids_of(x0)
        return self.nll(ids, z) / sentence_length(ids)

    @torch.no_grad()
    def decode_ids(self, z: torch.Tensor, caps: torch.Tensor | None = None, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """Greedy (or seeded ancestral) decoding given z; row i is capped at ``caps[i]`` tokens (default: the block)."""
        n = z.shape[0]
        caps = torch.full((n,), self.block_size - 1) if caps is None else caps
        cache = self._cache(z)
        zemb = self.embed(z)[:, None]
        seen = self.slots

        def step(cur: torch.Tensor, k: int) -> torch.Tensor:
            nonlocal seen
            seen += cur.shape[1]
            mask = torch.ones(n, seen, dtype=torch.long, device=z.device)
            return self._run(self._token_embeddings(cur) + zemb, cache, mask, use_cache=True)[:, -1]

        return decode_loop(step, n, caps, TokenSampler(seeds, z.device), z.device)

    def noise(self, seeds: Sequence[int], device: torch.device | str) -> None:
        return None

    @torch.no_grad()
    def sample(self, x_T: None, steps: int, z: torch.Tensor) -> torch.Tensor:
        """Greedy decoding (``steps`` is irrelevant for a one-step decoder)."""
        return self.decode_ids(z)


class LatentGPT2(ZMemoryDecoder):
    """p(x | z): GPT-2 with a prepended block, z as one memory slot per layer and added to every token embedding."""

    def __init__(self, net: dict, vocab: int, z_dim: int):
        super().__init__()
        self.config = gpt2_config(net, vocab, extra_blocks=1)
        self.lm = gpt2_lm(self.config)
        slots = int(net["decoder"].get("memory_slots", 1))  # upstream: 1
        self._z_paths(z_dim, self.config.n_embd, self.config.n_layer, self.config.n_head, slots, net["block_size"])

    def init_from_lm(self, lm: nn.Module) -> None:
        """Copy a pre-trained LM (``baselines.gpt2.LanguageModel``) in: its blocks become h.1.., embeddings and final norm
        as they are; h.0 stays new."""
        src = lm.lm.transformer
        dst = self.lm.transformer
        if len(dst.h) != len(src.h) + 1:
            raise ValueError(f"the LM has {len(src.h)} blocks; this decoder expects {len(dst.h) - 1}")
        dst.wte.load_state_dict(src.wte.state_dict())
        dst.wpe.load_state_dict(src.wpe.state_dict())
        dst.ln_f.load_state_dict(src.ln_f.state_dict())
        for i, block in enumerate(src.h):
            dst.h[i + 1].load_state_dict(block.state_dict())

    def freeze(self, mode: str) -> None:
        """``upstream``: train only names with ``memory``/``embed`` (upstream's ``linear``), ``wte``, ``h.0`` (``fix_model 84``)."""
        if mode not in FIX_MODES:
            raise ValueError(f"decoder fix must be one of {FIX_MODES}, got {mode!r}")
        if mode == "none":
            return
        for name, p in self.named_parameters():
            p.requires_grad_(any(k in name for k in ("memory", "embed.", "wte", "transformer.h.0.")))

    def _token_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.transformer.wte(ids)

    def _run(self, emb: torch.Tensor, cache, mask: torch.Tensor, use_cache: bool) -> torch.Tensor:
        return self.lm(inputs_embeds=emb, cache=cache, attention_mask=mask, use_cache=use_cache).logits


SPECIAL_WORDPIECES = (0, 101, 102, 100)  # [PAD] [CLS] [SEP] [UNK]: <pad> <bos> <eos> and the unseen-piece row


class LatentBert(ZMemoryDecoder):
    """p(x | z) from a pretrained BERT-family encoder loaded as a causal decoder: "a decoder that knows English".

    Every pretrained tensor of the encoder folder loads (``BertModel`` with ``is_decoder``: the same weights, a causal
    mask); z enters as in ``LatentGPT2`` (``ZMemoryDecoder``). The output vocabulary is restricted to ``vocab_ids``
    (the WordPiece ids a dataset uses, ``restricted_vocabulary``; row i is WordPiece ``vocab_ids[i]``, with ``<pad>``
    ``<bos>`` ``<eos>`` = [PAD] [CLS] [SEP], then [UNK], first): its embedding rows start as the pretrained ones and
    the head is tied to them, so the softmax costs |vocab_ids| columns instead of 30,522. The LM-head transform
    (Linear + GELU + LayerNorm, as BERT's) is new. ``frozen_layers`` keeps the embedding layer and the first layers
    fixed (no weight gradients). Not yet a workflow option: ``benchmarks/minilm_decoder.py`` measures it.
    """

    def __init__(self, encoder_name: str, vocab_ids: torch.Tensor, z_dim: int, block_size: int, frozen_layers: int = 0,
                 memory_slots: int = 1, dropout: float | None = None):
        super().__init__()
        from transformers import BertConfig

        from diled import weights

        folder = weights.resolve(encoder_name)
        config = BertConfig.from_json_file(folder / "config.json")
        config.is_decoder, config._attn_implementation = True, "sdpa"
        if dropout is not None:
            config.hidden_dropout_prob = config.attention_probs_dropout_prob = float(dropout)
        vocab_ids = torch.as_tensor(vocab_ids, dtype=torch.long)
        if vocab_ids.ndim != 1 or vocab_ids[:4].tolist() != list(SPECIAL_WORDPIECES) or len(set(vocab_ids.tolist())) != len(vocab_ids):
            raise ValueError(f"vocab_ids must be distinct WordPiece ids starting with [PAD] [CLS] [SEP] [UNK] {SPECIAL_WORDPIECES}")
        if not 0 <= frozen_layers <= config.num_hidden_layers:
            raise ValueError(f"frozen_layers must be in 0..{config.num_hidden_layers}, got {frozen_layers}")
        self.config = config
        self.bert, pretrained = pretrained_bert(folder, config)
        h, n_layer = config.hidden_size, config.num_hidden_layers
        self.register_buffer("vocab_ids", vocab_ids.clone())
        self.wte = nn.Embedding(len(vocab_ids), h, padding_idx=PAD)
        with torch.no_grad():
            self.wte.weight.copy_(pretrained["embeddings.word_embeddings.weight"][vocab_ids])
        self.bert.embeddings.word_embeddings = None  # the restricted copy replaces the 30,522 rows
        self.transform = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.LayerNorm(h, eps=config.layer_norm_eps))
        self.out_bias = nn.Parameter(torch.zeros(len(vocab_ids)))
        self._z_paths(z_dim, h, n_layer, config.num_attention_heads, memory_slots, block_size)
        self.bert.embeddings.requires_grad_(frozen_layers == 0)
        for layer in self.bert.encoder.layer[:frozen_layers]:
            layer.requires_grad_(False)

    def _token_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.wte(ids)  # BertEmbeddings then adds positions (after the slots), token type and its LayerNorm

    def _run(self, emb: torch.Tensor, cache, mask: torch.Tensor, use_cache: bool) -> torch.Tensor:
        states = self.bert(inputs_embeds=emb, cache=cache, attention_mask=mask, use_cache=use_cache).last_hidden_state
        return self.transform(states) @ self.wte.weight.t().to(states.dtype) + self.out_bias.to(states.dtype)


def restricted_vocabulary(*wordpiece_rows: torch.Tensor, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(vocab_ids, lookup) of the WordPiece ids the rows use: ``vocab_ids`` lists [PAD] [CLS] [SEP] [UNK] first,
    then the used ids (with ``size``: the ``size - 4`` most frequent, ties to the smaller id) in increasing order;
    ``lookup[wordpiece]`` is its decoder row (-1 where unused: ``decoder_rows`` turns those into [UNK])."""
    used, counts = torch.unique(torch.cat([r.reshape(-1) for r in wordpiece_rows]), return_counts=True)
    special = torch.tensor(SPECIAL_WORDPIECES)
    keep = ~torch.isin(used, special)
    used, counts = used[keep], counts[keep]
    if size is not None:
        if size <= len(special):
            raise ValueError(f"the restricted vocabulary needs more than the {len(special)} special rows, got {size}")
        order = sorted(range(len(used)), key=lambda i: (-int(counts[i]), int(used[i])))[: size - len(special)]
        used = used[torch.tensor(sorted(order), dtype=torch.long)] if order else used[:0]
    vocab_ids = torch.cat([special, used])
    lookup = torch.full((max(int(vocab_ids.max()) + 1, 103),), -1, dtype=torch.long)
    lookup[vocab_ids] = torch.arange(len(vocab_ids))
    return vocab_ids, lookup


def decoder_rows(wordpieces: torch.Tensor, lookup: torch.Tensor) -> torch.Tensor:
    """Encoder rows ``[CLS] w.. [SEP] [PAD]..`` -> decoder rows ``<bos> w.. <eos> <pad>..`` of the restricted
    vocabulary; a piece outside it becomes [UNK]'s row (3)."""
    inside = wordpieces < len(lookup)
    rows = lookup[torch.where(inside, wordpieces, torch.zeros_like(wordpieces))]
    return torch.where(inside & (rows >= 0), rows, torch.full_like(rows, 3))


# ----------------------------------------------------------------------------- latent-variable text models


class LatentTextModel:
    """What the text evaluation asks of every latent model: ``z_of(batch)``, ``nll_given(batch, z)``, ``decode_ids``."""

    decoder: LatentGPT2

    def nll_given(self, batch, z: torch.Tensor) -> torch.Tensor:
        """Per-example summed NLL of the batch's ids given latents z (in the model's latent space)."""
        return self.decoder.nll(ids_of(batch), self._decoder_cond(z))

    @torch.no_grad()
    def decode_ids(self, z: torch.Tensor, caps: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder.decode_ids(self._decoder_cond(z), caps)


class TextDiLED(LatentTextModel, DiLED):
    """DiLED on sentences: the elbo-form objective with a GPT-2 decoder; DDPM (all T steps) or DDIM generation.

    ``w_warmup`` > 0 ramps w linearly from 0 over that many training steps (KL-annealing's role in text VAEs:
    the latent term's pull toward small codes acts only once the decoder has learned to read z). 0: upstream.
    """

    def __init__(self, *args, w_warmup: int = 0, **kw):
        super().__init__(*args, **kw)
        self.w_warmup = int(w_warmup)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))  # the warm-up's clock, resumed with the weights

    def current_w(self) -> float:
        if not self.w_warmup:
            return self.w
        return self.w * min(1.0, int(self.steps_done) / self.w_warmup)

    def loss(self, batch, t: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        if t is None:
            t = sample_timesteps(batch[0].shape[0], self.schedule.T, batch[0].device)
        w = self.current_w()
        total, parts, _ = self.loss_terms(batch, t, w=w)
        if self.training:
            self.steps_done += 1
        return total.mean(), {**parts, "w": w}

    @torch.no_grad()
    def sample_latents(self, seeds: Sequence[int], steps: int) -> torch.Tensor:
        """``steps == T``: the ancestral DDPM chain (upstream's generation); fewer: DDIM."""
        if steps != self.schedule.T:
            return super().sample_latents(seeds, steps)
        return self.sample_ancestral(seeds)


class TextAutoencoder(LatentTextModel, LatentAutoencoder):
    """The shared autoencoder pre-training: encoder and z-conditioned decoder trained on reconstruction alone.

    z = mean + sigma eps with sigma^2 = ``encoder_var`` (DiLED's fixed encoder variance, so the decoder learns to
    read codes with the noise it will see); the loss is the token NLL divided by the sentence length. Every latent
    model of Table 1 starts from it (``init_from_autoencoder``), as Optimus starts from a pre-trained autoencoder:
    on a CPU budget the decoder must first learn to read z at all, and that lesson is shared rather than paid three
    times. It is also Table 1's reference row for reconstruction without any latent regulariser.
    """

    def __init__(self, encoder: nn.Module, decoder: LatentGPT2, z_dim: int, encoder_var: float):
        super().__init__(encoder, nn.Identity(), decoder, None, z_dim)
        self.encoder_std = float(encoder_var) ** 0.5

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        mean = self.encoder_mean(batch)
        rec = self.decoder.loss(batch, self._decoder_cond(mean + self.encoder_std * torch.randn_like(mean)))
        return rec.mean(), {"rec": rec.mean().item(), "mean_norm": mean.detach().norm(dim=1).mean().item()}


def init_from_autoencoder(model: nn.Module, ae: nn.Module | None, fix: str = "none") -> nn.Module:
    """Copy the pre-trained autoencoder's encoder and decoder into a latent model, tensor by tensor where the shapes
    agree (a model with another z width keeps its own fresh head and z projections; LatentOps' (mean, log-variance)
    head takes the mean rows and starts its log-variance rows at zero), then apply the decoder freezing."""
    if ae is None:
        raise ValueError("text latent models start from the pre-trained autoencoder (stage ae/train)")
    with torch.no_grad():
        for part in ("encoder", "decoder"):
            src = dict(getattr(ae, part).state_dict())
            dst = getattr(model, part)
            mine = dst.state_dict()
            for key, value in mine.items():
                gaussian_head = key == "body.head.weight"  # LatentOps: rows = (mean, log-variance)
                theirs = src.get(key.removeprefix("body."))
                if theirs is None:
                    continue
                if gaussian_head and value.shape == (2 * theirs.shape[0], theirs.shape[1]):
                    value.zero_()
                    value[: theirs.shape[0]].copy_(theirs)
                elif not gaussian_head and theirs.shape == value.shape:
                    value.copy_(theirs)
            dst.load_state_dict(mine)
    model.decoder.freeze(fix)
    return model


def feature_dim(cfg: dict) -> int:
    """The width of the pooled features (doubled for ``encoder_input: first+last``)."""
    from diled.weights import ENCODERS

    name = cfg["net"]["encoder"]
    width = {"minilm": 384, "bert-small": 512}[name] if name in ENCODERS else int(name)
    return 2 * width if encoder_input(cfg) == "first+last" else width


def decoder_net(cfg: dict, model: str | None = None) -> dict:
    """The ``net`` section with the data's ``block_size`` (what the GPT-2 builders read).

    ``model`` names the model being built: its ``decoder_dropout`` (when set) replaces ``net.decoder.dropout`` for it
    alone. Dropout holds no weights, so stages that start from one another still share every tensor; what changes
    is how each stage regularises: the shared autoencoder, underfit over the pool, learns fastest without dropout,
    while a fine-tuning on the 3,431 rated snippets alone memorises them without it."""
    net = {**cfg["net"], "block_size": int(cfg["data"]["block_size"])}
    own = (cfg.get("models", {}).get(model) or {}).get("decoder_dropout") if model else None
    if own is not None:
        net["decoder"] = {**net["decoder"], "dropout": float(own)}
    return net


def vocab_size(cfg: dict) -> int:
    from diled.modalities.text.data import vocab_size_of

    return vocab_size_of(cfg["data"]["tokenizer"])


def latent_mlp(cfg: dict, z_dim: int, section: dict | None = None) -> MLPSkipNet:
    m = section or cfg["latent"]["mlp"]
    return MLPSkipNet(z_dim, m["hidden"], m["layers"], m["time_dim"], time_scale=1.0 / cfg["latent"]["T"])


def build_diled(cfg: dict) -> TextDiLED:
    net, lat, d = decoder_net(cfg, "diled"), cfg["latent"], cfg["models"]["diled"]
    z = int(net["z_dim"])
    sched = Schedule.make("constant", lat["T"], shift=lat["alphabar_shift"], value=lat["beta"])
    return TextDiLED(build_encoder(cfg, z), latent_mlp(cfg, z), LatentGPT2(net, vocab_size(cfg), z), sched, z,
                     w=d["w"], encoder_var=d["encoder_var"], w_warmup=d.get("w_warmup", 0))


def build_autoencoder(cfg: dict) -> TextAutoencoder:
    net, z = decoder_net(cfg, "ae"), int(cfg["net"]["z_dim"])
    return TextAutoencoder(build_encoder(cfg, z), LatentGPT2(net, vocab_size(cfg), z), z, cfg["models"]["ae"]["encoder_var"])


def from_lm(model: nn.Module, init: nn.Module | None, fix: str) -> nn.Module:
    """Initialise a latent model's decoder from the pre-trained LM (the stage it starts from) and apply the freezing."""
    if init is None:
        raise ValueError("text decoders start from the pre-trained GPT-2 LM (stage gpt2/train)")
    model.decoder.init_from_lm(init)
    model.decoder.freeze(fix)
    return model


def train_autoencoder(ctx):
    """The shared autoencoder, its decoder initialised from the LM."""
    model = from_lm(ctx.build(), ctx.init, ctx.cfg["net"]["decoder"]["fix"]).to(ctx.device)
    return StagePlan(model, lambda m, batch: m.loss(batch), ctx.data)


def train_diled(ctx):
    """Joint training of encoder, latent denoiser and decoder, starting from the pre-trained autoencoder."""
    model = init_from_autoencoder(ctx.build(), ctx.init, ctx.cfg["net"]["decoder"]["fix"]).to(ctx.device)
    return StagePlan(model, lambda m, batch: m.loss(batch), ctx.data)


def parameter_count(model: nn.Module) -> dict[str, int]:
    """Trainable and total parameters (the training-cost table)."""
    return {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total": sum(p.numel() for p in model.parameters())}


__all__ = ["TextEncoder", "TokenEncoder", "ZMemoryDecoder", "LatentGPT2", "LatentBert", "restricted_vocabulary", "decoder_rows",
           "TextDiLED", "TextAutoencoder", "build_diled", "build_autoencoder", "build_encoder", "train_autoencoder", "train_diled", "init_from_autoencoder", "token_nll", "sentence_length"]
