"""The text track's unlabeled pool, the token encoder, the shared autoencoder and what the latent models take from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_text import BLOCK, VOCAB, Stop, batch, cfg, train_interrupted_and_resumed

from baselines import daae, text_vae
from diled import config as cfgmod
from diled.config.views import run_key
from diled.modalities.text import data
from diled.modalities.text import model as T
from diled.modalities.text import pool as P
from diled.modalities.text.codec import TextCodec
from diled.modalities.text.evaluation import AU_FLOOR, latent_health, noise_variance
from diled.train import TrainSpec

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"  # found without the suite's help
needs_shared = pytest.mark.skipif(not (SHARED / "kjv" / "kjv.txt").is_file(), reason="../shared/data/text is not beside the repository")


def test_default_pool_root_is_the_shared_folder_beside_the_repository(monkeypatch):
    monkeypatch.delenv("DILED_TEXT_POOL", raising=False)
    assert P.default_root() == SHARED


def test_sentence_splitting_keeps_titles_and_initials_and_splits_after_quotes():
    text = 'Mr. Knightley came in. "Is it so?" said Emma. J. R. Tolkien wrote it! The end'
    assert P.split_sentences(text) == ["Mr. Knightley came in.", '"Is it so?" said Emma.', "J. R. Tolkien wrote it!", "The end"]
    assert P.split_sentences("no break here. because lower case follows") == ["no break here. because lower case follows"]


def test_wordnet_gloss_gives_definitions_and_examples_and_skips_the_licence():
    text = ("  1 This software and database is being provided\n"
            "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | a thing that exists; \"the entity was large\"; \"it is here\"  \n")
    assert list(P.wordnet_sentences(text)) == ["a thing that exists", "the entity was large", "it is here"]


def test_match_key_ignores_case_and_punctuation():
    assert P.match_key("It's  GOOD, isn't it?") == P.match_key("it s good isn t it") == "it s good isn t it"


@needs_shared
def test_pool_is_filtered_deduplicated_seeded_and_never_repeats_a_labeled_sentence():
    labeled = ["In the beginning God created the heaven and the earth!"]  # Genesis 1:1 with other punctuation
    spec = {"sources": ["kjv"], "size": 0, "min_words": 5}
    pool, src, rec = P.build_pool(spec, 16, labeled, seed=0)
    keys = [P.match_key(s) for s in pool]
    assert len(keys) == len(set(keys)) == rec["used"] == rec["available"] > 9000
    assert P.match_key(labeled[0]) not in set(keys)
    assert all(5 <= len(s.split()) <= 16 and s == data.normalise(s) for s in pool) and set(src) == {"kjv"}
    c = rec["sources"]["kjv"]
    assert c["read"] == c["kept"] + c["length_filtered"] + c["duplicates"] and c["duplicates"] >= 1
    again, _, _ = P.build_pool({**spec, "size": 50}, 16, labeled, seed=0)
    other, _, _ = P.build_pool({**spec, "size": 50}, 16, labeled, seed=1)
    assert again == pool[:50] and other != again


@needs_shared
def test_an_altered_or_missing_pool_file_is_refused_by_name(tmp_path):
    (tmp_path / "kjv").mkdir()
    shutil.copy(SHARED / "kjv" / "kjv.txt", tmp_path / "kjv" / "kjv.txt")
    with open(tmp_path / "kjv" / "kjv.txt", "a") as f:
        f.write("Re22:22 An extra verse.\n")
    with pytest.raises(P.PoolError, match=r"kjv\.txt: sha256 .* altered"):
        P.build_pool({"root": str(tmp_path), "sources": ["kjv"]}, 16, [], 0)
    with pytest.raises(P.PoolError, match=r"austen/emma\.txt not found"):
        P.build_pool({"root": str(tmp_path), "sources": ["austen"]}, 16, [], 0)
    with pytest.raises(P.PoolError, match="unknown"):
        P.build_pool({"sources": ["wikipedia"]}, 16, [], 0)


@needs_shared
def test_prepared_pool_has_no_test_or_judge_sentence_and_trains_with_the_training_split(tmp_path):
    spec = {"dataset": "snippets", "root": None, "max_words": 16, "test_size": 40, "judge_size": 60, "train_size": 100, "split_seed": 0,
            "tokenizer": {"vocab_size": 800}, "block_size": 48, "noised_copies": 1, "word_dropout": 0.15,
            "encoder_input": "wordpieces", "pool": {"sources": ["kjv", "tweets"], "size": 150, "min_words": 5}}
    card = data.prepare(tmp_path / "d.npz", spec, "minilm")
    scored = {P.match_key(s) for split in ("test", "judge") for s in data.load(tmp_path / "d.npz", split)["text"]}
    pool = data.load(tmp_path / "d.npz", "pool")
    assert len(pool["text"]) == card["split"]["pool"] == 150 and not scored & {P.match_key(s) for s in pool["text"]}
    assert (pool["labels"] == -1).all() and pool["features"].dtype == np.int64 and pool["features_noised0"].shape == pool["features"].shape
    codec = TextCodec("snippets")
    assert len(codec.training_data(tmp_path / "d.npz")[0]) == 100  # the fine-tuning stages: the rated split only
    train_set = codec.training_data(tmp_path / "d.npz", pool=True)  # the pre-training stages: and the pool
    assert len(train_set[0]) == 250 and int((train_set[2] >= 0).sum()) == 100
    over = TextCodec("snippets", rated_copies=3).training_data(tmp_path / "d.npz", pool=True)  # in-domain oversampling
    assert len(over[0]) == 450 and int((over[2] >= 0).sum()) == 300
    assert torch.equal(over[1][:100], over[1][200:300]) and torch.equal(over[1][300:], train_set[1][100:])
    assert len(TextCodec("snippets", rated_copies=3).training_data(tmp_path / "d.npz")[0]) == 100  # fine-tuning: once
    with pytest.raises(ValueError, match="rated_copies"):
        TextCodec("snippets", rated_copies=0)
    tok = data.tokenizer_of(tmp_path / "d.npz")
    whole = [i for i, s in enumerate(pool["text"]) if len(tok.encode(str(s)).ids) <= 48 - 2]  # rows the block did not cut
    assert len(whole) > 120
    assert data.decode_ids(tok, pool["ids"][whole]) == [str(pool["text"][i]) for i in whole]  # the ids round-trip every word
    card_md = tmp_path / "card.md"
    data.write_card(card, card_md)
    assert "| kjv |" in card_md.read_text() and "public domain" in card_md.read_text()


def token_cfg(width: int | None, layers: int = 1, **net) -> dict:
    c = cfg(ae={"encoder_var": 0.008})
    c["data"]["encoder_input"] = "wordpieces"
    c["net"].update(encoder="minilm", encoder_layers=layers, encoder_width=width, **net)
    return c


def wordpiece_batch(n: int = 5) -> tuple[torch.Tensor, ...]:
    x = batch(n)
    wp = torch.zeros(n, 12, dtype=torch.long)
    for i in range(n):
        wp[i, : 4 + i % 4] = torch.randint(1000, 5000, (4 + i % 4,), generator=torch.Generator().manual_seed(i))
    return wp, x[1], x[2], wp[:, None]


@pytest.mark.parametrize("width", [None, 16])
def test_token_encoder_holds_the_folders_tensors_and_keeps_its_embeddings_frozen(width):
    from safetensors.torch import load_file

    from diled import weights

    enc = T.build_encoder(token_cfg(width), Z_OUT := 8)
    ref = load_file(weights.resolve(weights.MINILM) / "model.safetensors")
    for k, v in enc.bert.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert {k for k in enc.bert.state_dict()} >= {"embeddings.word_embeddings.weight"}
    assert len(enc.bert.encoder.layer) == (1 if width is None else 0)
    assert not any(p.requires_grad for p in enc.bert.embeddings.parameters())
    x = wordpiece_batch()
    enc.eval()  # no dropout: the two calls must agree
    out = enc(x)
    assert out.shape == (5, Z_OUT)
    padded = torch.cat([x[0], torch.zeros(5, 20, dtype=torch.long)], 1)  # more [PAD] columns change nothing
    torch.testing.assert_close(enc(padded), out)
    out.sum().backward()
    assert enc.head.weight.grad is not None and enc.bert.embeddings.word_embeddings.weight.grad is None


def test_attention_pool_reads_every_token_ignores_pads_and_rejects_a_bad_spec():
    torch.manual_seed(0)
    enc = T.build_encoder(token_cfg(16, encoder_pool="attention:3"), 8).eval()
    assert enc.queries.shape == (3, 16) and enc.merge.in_features == 3 * 16
    x = wordpiece_batch()
    out = enc(x)
    padded = torch.cat([x[0], torch.zeros(5, 20, dtype=torch.long)], 1)
    torch.testing.assert_close(enc(padded), out)  # pads are masked keys: more of them change nothing
    swapped = x[0].clone()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]  # word order reaches z (the position embeddings)
    assert not torch.allclose(enc((swapped,)), out, atol=1e-5)
    out.sum().backward()
    assert enc.queries.grad is not None and (enc.queries.grad.abs().sum(1) > 0).all()  # every query is read
    for bad in ("attention", "attention:0", "max"):
        with pytest.raises(ValueError, match="net.encoder_pool"):
            T.build_encoder(token_cfg(16, encoder_pool=bad), 8)


def test_more_memory_slots_carry_z_and_trailing_pads_do_not_change_the_nll():
    torch.manual_seed(0)
    dec_cfg = {**cfg()["net"]["decoder"], "memory_slots": 3}
    dec = T.LatentGPT2({"block_size": BLOCK, "decoder": dec_cfg}, VOCAB, 6).eval()
    torch.nn.init.zeros_(dec.embed.weight)  # z only through the three slots
    ids = batch()[1]
    z1, z2 = torch.randn(5, 6), torch.randn(5, 6)
    assert not torch.allclose(dec.nll(ids, z1), dec.nll(ids, z2), atol=1e-4)
    wide = torch.cat([ids, torch.zeros(5, 7, dtype=torch.long)], 1)
    dec.block_size = BLOCK + 7
    torch.testing.assert_close(dec.nll(wide[:, : BLOCK], z1), dec.nll(ids, z1))
    out = dec.decode_ids(z1, torch.full((5,), 4))
    assert out.shape[1] <= 5 and (out[:, 0] == data.BOS).all()


def test_latent_models_start_from_the_autoencoder_where_shapes_agree():
    c = cfg(ae={"encoder_var": 0.008})
    c["models"]["latentops"]["z_dim"] = 6  # the autoencoder's width: LatentOps' mean rows come from it
    torch.manual_seed(0)
    ae = T.build_autoencoder(c)
    for p in ae.parameters():
        torch.nn.init.normal_(p)
    dil = T.init_from_autoencoder(T.build_diled(c), ae)
    for part in ("encoder", "decoder"):
        for k, v in getattr(ae, part).state_dict().items():
            assert torch.equal(getattr(dil, part).state_dict()[k], v), k
    lo = T.init_from_autoencoder(text_vae.build(c), ae)
    head = lo.encoder.body.head.weight
    assert torch.equal(head[:6], ae.encoder.head.weight) and not head[6:].any()  # log-variance rows start at 0
    c["models"]["latentops"]["z_dim"] = 4  # another width: fresh head and z projections, the rest copied
    torch.manual_seed(1)
    fresh = text_vae.build(c)
    torch.manual_seed(1)
    narrow = T.init_from_autoencoder(text_vae.build(c), ae)
    assert torch.equal(narrow.encoder.body.pooler.weight, ae.encoder.pooler.weight)
    assert torch.equal(narrow.decoder.memory.weight, fresh.decoder.memory.weight)
    dm = T.init_from_autoencoder(daae.build(c), ae)
    assert torch.equal(dm.decoder.lm.transformer.h[1].attn.c_attn.weight, ae.decoder.lm.transformer.h[1].attn.c_attn.weight)
    with pytest.raises(ValueError, match="ae/train"):
        T.init_from_autoencoder(T.build_diled(c), None)


def test_each_model_sets_its_own_decoder_dropout_and_still_starts_from_the_autoencoder():
    c = cfg(ae={"encoder_var": 0.008, "decoder_dropout": 0.0})
    c["net"]["decoder"]["dropout"] = 0.5
    c["models"]["diled"]["decoder_dropout"] = None  # null: the track's net.decoder.dropout
    assert T.decoder_net(c, "ae")["decoder"]["dropout"] == 0.0 and c["net"]["decoder"]["dropout"] == 0.5  # not mutated
    assert T.decoder_net(c, "diled")["decoder"]["dropout"] == 0.5 == T.decoder_net(c)["decoder"]["dropout"]
    torch.manual_seed(0)
    ae, dil = T.build_autoencoder(c).train(), T.init_from_autoencoder(T.build_diled(c), T.build_autoencoder(c)).train()
    ids, z = batch()[1], torch.randn(5, 6)
    torch.testing.assert_close(ae.decoder.nll(ids, z), ae.decoder.nll(ids, z))  # no dropout: training-mode NLL is fixed
    assert not torch.allclose(dil.decoder.nll(ids, z), dil.decoder.nll(ids, z))  # 0.5 on the DiLED decoder
    assert ae.decoder.state_dict().keys() == dil.decoder.state_dict().keys()  # dropout holds no tensor
    # the setting is part of the run key of its model and of every model that starts from it
    view = cfgmod.track_view(cfgmod.load_config(), "text")
    assert view["models"]["ae"]["decoder_dropout"] == 0.0 and "decoder_dropout" not in view["models"]["diled"]  # the default
    before = {m: run_key(view, "text", m, "train") for m in ("ae", "diled")}
    view["models"]["ae"]["decoder_dropout"] = 0.1
    after = {m: run_key(view, "text", m, "train") for m in before}
    assert after["ae"] != before["ae"] and after["diled"] != before["diled"]  # DiLED starts from that autoencoder


def test_autoencoder_resumes_exactly(tmp_path):
    c = cfg(ae={"encoder_var": 0.008})
    x = batch(12)
    spec = TrainSpec(steps=6, batch_size=4, lr=1e-3, ema_decay=0.9, ckpt_every=3, seed=1)
    calls = {"n": 0}

    def fresh():
        torch.manual_seed(0)
        return T.build_autoencoder(c)

    def interrupted(m, b):
        calls["n"] += 1
        if calls["n"] == 5:  # after the step-3 checkpoint
            raise Stop
        return m.loss(b)

    full, resumed = train_interrupted_and_resumed(fresh, lambda m, b: m.loss(b), interrupted, x, spec, tmp_path)
    assert resumed.resumed_from == 3
    for (k, a), b in zip(full.state_dict().items(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b), k


def test_active_units_count_only_dimensions_above_the_decoders_noise():
    c = cfg(ae={"encoder_var": 0.05})
    torch.manual_seed(0)
    ae = T.build_autoencoder(c).eval()
    x = batch(40)
    with torch.no_grad():
        u = torch.tanh(ae.encoder.pooler(x[0]))[:, 0].var()
        ae.encoder.head.weight.zero_()  # dimension 0 gets variance 1, dimension 1 0.03 (above 0.01, below the noise), the rest 0
        ae.encoder.head.weight[0, 0] = (1 / u).sqrt()
        ae.encoder.head.weight[1, 0] = (0.03 / u).sqrt()
    h = latent_health(ae, x, 0)
    torch.testing.assert_close(noise_variance(ae, x, 6), torch.full((6,), 0.05))
    var = ae.encode(x).var(0)
    assert AU_FLOOR < var[1] < 0.05 < var[0]
    assert h["active_units"] == 1 and h["active_units_0.01"] == 2
    vae = text_vae.build(c).eval()
    mean, logvar = vae.encoder.stats(x)
    torch.testing.assert_close(noise_variance(vae, x, 6), logvar.exp().mean(0))
    assert float(noise_variance(daae.build(c), x, 6).max()) == 0.0


def minilm_decoder(frozen: int = 0, slots: int = 1) -> tuple[T.LatentBert, torch.Tensor, torch.Tensor]:
    wp = wordpiece_batch()[0]
    wp[:, 0] = 101
    for i in range(len(wp)):  # [CLS] w.. [SEP] [PAD]..: the encoder's own rows
        wp[i, int((wp[i] != 0).sum())] = 102
    vocab_ids, lookup = T.restricted_vocabulary(wp)
    torch.manual_seed(0)
    return T.LatentBert("minilm", vocab_ids, 6, 16, frozen, memory_slots=slots, dropout=0.0).eval(), wp, lookup


def test_minilm_decoder_holds_the_folders_tensors_and_its_vocabulary_round_trips_every_piece():
    from safetensors.torch import load_file

    from diled import weights

    dec, wp, lookup = minilm_decoder(frozen=2)
    ref = load_file(weights.resolve(weights.MINILM) / "model.safetensors")
    state = dec.bert.state_dict()
    assert len(state) == 100 and all(torch.equal(v, ref[k]) for k, v in state.items())  # all but the word embeddings
    torch.testing.assert_close(dec.wte.weight, ref["embeddings.word_embeddings.weight"][dec.vocab_ids])  # tied rows
    assert dec.vocab_ids[:4].tolist() == [0, 101, 102, 100] and len(dec.vocab_ids) == len(set(dec.vocab_ids.tolist()))
    rows = T.decoder_rows(wp, lookup)
    assert (rows[:, 0] == data.BOS).all() and ((rows == data.EOS).sum(1) == 1).all() and ((wp == 0) == (rows == data.PAD)).all()
    assert torch.equal(dec.vocab_ids[rows], wp)  # every piece of the rows comes back
    unseen = T.decoder_rows(torch.tensor([[101, 29999, 102]]), lookup)  # 29999: in no row above
    assert unseen[0, 1].item() == 3  # a piece outside the vocabulary is [UNK]'s row
    assert not any(p.requires_grad for p in dec.bert.embeddings.parameters())
    assert not any(p.requires_grad for p in dec.bert.encoder.layer[1].parameters())
    assert all(p.requires_grad for p in dec.bert.encoder.layer[2].parameters())
    with pytest.raises(ValueError, match="vocab_ids"):
        T.LatentBert("minilm", torch.tensor([0, 1, 2, 3]), 6, 16)


def test_minilm_decoder_reads_z_through_both_paths_and_decodes_from_it():
    dec, wp, lookup = minilm_decoder(slots=2)
    ids = T.decoder_rows(wp, lookup)
    z1, z2 = torch.randn(5, 6, generator=torch.Generator().manual_seed(1)), torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    base = dec.logits(ids[:, :-1], z1)
    assert base.shape == (5, ids.shape[1] - 1, len(dec.vocab_ids))
    for path in ("memory", "embed"):  # z through the memory slots alone, then through the embeddings alone
        other = "embed" if path == "memory" else "memory"
        saved = getattr(dec, other).weight.detach().clone()
        with torch.no_grad():
            getattr(dec, other).weight.zero_()
        assert not torch.allclose(dec.logits(ids[:, :-1], z1), dec.logits(ids[:, :-1], z2), atol=1e-4), path
        with torch.no_grad():
            getattr(dec, other).weight.copy_(saved)
    causal = dec.logits(torch.cat([ids[:, :3], torch.full((5, 2), 7)], 1), z1)  # later tokens never reach earlier logits
    torch.testing.assert_close(causal[:, :3], dec.logits(ids[:, :3], z1))
    caps = (ids != data.PAD).sum(1) - 1
    out = dec.decode_ids(z1, caps)
    assert (out[:, 0] == data.BOS).all() and out.shape[1] <= int(caps.max()) + 1
    greedy = dec.logits(out[:1, :1], z1[:1])[0, -1].argmax()  # the first decoded token is the logits' argmax
    assert out[0, 1].item() == (greedy.item() if caps[0] > 1 or greedy.item() == data.EOS else data.EOS)


def test_a_restricted_vocabulary_keeps_the_most_frequent_pieces():
    rows = torch.tensor([[101, 7, 7, 7, 9, 9, 5, 102, 0], [101, 9, 11, 11, 102, 0, 0, 0, 0]])
    vocab_ids, lookup = T.restricted_vocabulary(rows, size=6)
    assert vocab_ids.tolist() == [0, 101, 102, 100, 7, 9]  # 7 (3x) and 9 (3x) beat 11 (2x) and 5 (1x)
    assert T.decoder_rows(rows, lookup)[1].tolist() == [1, 5, 3, 3, 2, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="special"):
        T.restricted_vocabulary(rows, size=4)


def test_wordpiece_text_respaces_what_bert_splits_off():
    tok, _ = data.pretrained_encoder("minilm")
    for sentence in ["this is the best american movie about troubled teens since 1998's whatever.",
                     'post 9/11 the philosophical message of "personal freedom first" might not be as palatable as intended.',
                     "its familiar subject matter (a remake), it's 100% amusing: really; isn't it?"]:
        pieces = tok(sentence, add_special_tokens=False)["input_ids"]
        assert " ".join(tok.convert_ids_to_tokens(pieces)) != sentence  # BERT did split it
        assert data.wordpiece_text(tok, pieces) == sentence
