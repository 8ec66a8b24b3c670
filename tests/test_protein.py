"""The protein track: data and splits, the loss by hand, metrics against nltk/hand values, optimisers, resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from diled import capabilities, codecs, objective, optimize, stages
from diled.config import load_config, track_view
from diled.metrics import protein as pm
from diled.modalities.protein import data as pdata
from diled.modalities.protein.model import SequenceEncoder, attention_bias, weighted_ce

ROOT = Path(__file__).resolve().parent.parent
SMOKE = track_view(load_config(ROOT / "config/smoke.yaml"), "protein")
HAVE_DATA = (ROOT.parent / "shared" / "data" / "protein").is_dir()  # where the suite looks, found without the suite's help
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="../shared/data/protein is not beside the repository")


def test_default_data_root_is_the_shared_folder_beside_the_repository(monkeypatch):
    monkeypatch.delenv("DILED_PROTEIN_DATA", raising=False)
    assert pdata.default_root() == ROOT.parent / "shared" / "data" / "protein"
    assert pdata.resolve_root("data/x") == ROOT / "data" / "x"  # a relative root is the repository's


# ----------------------------------------------------------------------------- data


def test_tokens_round_trip_and_refuse_unknown_symbols():
    x = pdata.encode(["CARDY", "JJAAJ"], 6)
    assert x.tolist()[0] == [5, 6, 19, 17, 11, 21] and pdata.decode(x) == ["CARDYJ", "JJAAJJ"]
    assert pdata.decode(x, keep_pad=False) == ["CARDY", "AA"]
    with pytest.raises(ValueError, match="outside"):
        pdata.encode(["CAB"], 5)
    with pytest.raises(ValueError, match="more than the length"):
        pdata.encode(["AAAAAAA"], 5)


@needs_data
def test_gifford_official_splits(tmp_path):
    card = pdata.prepare(tmp_path / "g.npz", "gifford")
    assert card["split"]["train"] == 57603 and card["split"]["valid"] == 10166 and card["split"]["test"] == 22690
    x, y = pdata.load(tmp_path / "g.npz", "test")
    assert x.shape == (22690, 20) and y.dtype == np.float32
    assert pdata.decode(x[:2]) == ["JJDQQRTDYYPAAWGFDYJJ", "JJDYGSRYWETPVGIFDYJJ"]  # the CSV's first rows
    assert y[:2].tolist() == pytest.approx([-0.6683315, -0.38309577])


@needs_data
def test_gfp_rebuild_reproduces_every_official_test_row():
    train, test = pdata.gfp_splits(pdata.default_root())
    assert len(test) == 16208 and len(train) == 37817  # 54,025 genotypes; the official train file has 37,816
    rebuilt = {}
    for seq, value in pdata.gfp_genotypes(pdata.default_root()):
        rebuilt.setdefault(seq, []).append(round(value, 9))
    with open(pdata.default_root() / "gfp/GFP_test_data.csv") as f:
        rows = [line.strip().split(",") for line in f]
    assert all(len(s) == 237 for s, _ in rows)
    assert all(any(abs(float(v) - r) < 2e-9 for r in rebuilt.get(s, [])) for s, v in rows)  # every row, exactly


def test_a_changed_source_file_is_refused(tmp_path):
    (tmp_path / "gifford").mkdir()
    (tmp_path / "gifford/train_data.csv").write_text("CDR3,enrichment\nAAAA,1.0\n")
    with pytest.raises(ValueError, match="does not match the expected"):
        pdata.source(tmp_path, "gifford/train_data.csv")
    with pytest.raises(FileNotFoundError, match="not found"):
        pdata.source(tmp_path, "gifford/test_data.csv")


# ----------------------------------------------------------------------------- networks and loss


def test_upstream_attention_mask_lets_query_i_see_only_later_keys():
    bias = attention_bias(4, "upstream")
    assert (bias[0, 1:] == 0).all() and (bias[0, 0] < -1e15)
    assert (bias[3] < -1e15).all()  # the last query sees nothing: uniform attention, as upstream
    assert attention_bias(4, "none") is None
    enc = SequenceEncoder(4, z_dim=3, dim=8, heads=2, ffn=8, layers=1, dropout=0.0).eval()
    x = torch.tensor([[0, 1, 2, 3]])
    x2 = x.clone()
    x2[0, 0] = 5  # token 0 is a key for no query (j > i never holds for j = 0) ...
    h = enc.embed(x) + enc.pe[:4]
    h2 = enc.embed(x2) + enc.pe[:4]
    a, a2 = enc.blocks[0].attention(h, enc.bias), enc.blocks[0].attention(h2, enc.bias)
    torch.testing.assert_close(a[0, 1:3], a2[0, 1:3])  # ... so queries 1 and 2 are unchanged


def test_weighted_ce_by_hand():
    tokens = torch.tensor([[0, 1, pdata.PAD, pdata.PAD]])
    logits = torch.zeros(1, len(pdata.VOCAB), 4)  # uniform: every NLL is log 22
    log22 = math.log(22)
    assert weighted_ce(logits, tokens, 0.8).item() == pytest.approx((2 + 2 * 0.8) * log22 / 4)  # EDDPM: mean over positions
    assert weighted_ce(logits, tokens, 0.8, over="weights").item() == pytest.approx(log22)  # ReLSO: / sum of weights


def test_protein_diled_loss_by_hand():
    """elbo form: CE(pad 0.8)/(T lambda_t) + w l_t + MSE(f(x1), y), with the alignment term at t = 1."""
    model = stages.build("protein", "diled", SMOKE).train()
    torch.manual_seed(0)
    tokens = torch.randint(0, 22, (4, 20))
    fitness = torch.randn(4)
    t = torch.tensor([1, 2, 25, 50])
    torch.manual_seed(1)
    loss, parts = model.loss((tokens, fitness), t)
    torch.manual_seed(1)  # the same draws, by hand
    mean = model.encoder(tokens)
    x1 = mean + model.encoder_std * torch.randn_like(mean)
    eps = torch.randn_like(x1)
    s = model.schedule
    ab = s.alphabar[t].float()[:, None]
    x_t = ab.sqrt() * x1 + (1 - ab).sqrt() * eps
    eps_hat = model.denoiser(x_t, t)
    ab1 = s.alphabar[1].item()
    latent = ((eps - eps_hat) ** 2).mean(1)
    latent[0] = ab1 / (1 - ab1) * ((mean[0] - (x_t[0] - (1 - ab1) ** 0.5 * eps_hat[0]) / ab1**0.5) ** 2).mean()
    w = torch.ones(22)
    w[pdata.PAD] = 0.8
    ce = torch.nn.functional.cross_entropy(model.decoder.net(x1), tokens, weight=w, reduction="none").mean(1)
    lam = s.betas[t] / (2 * s.alphas[t] * (1 - s.alphabar[t]))
    expected = (ce / (s.T * lam.float()) + model.w * latent).mean() + torch.nn.functional.mse_loss(model.regressor(x1), fitness)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert parts["fitness"] > 0 and objective.reconstruction_weight(s, t).shape == (4,)


@pytest.mark.parametrize("name", ["diled", "relso", "relso_vae"])
def test_protein_models_keep_the_capability_interface(name):
    from diled import registry

    model = stages.build("protein", name, SMOKE).eval()
    spec = registry.get("protein", name)
    assert capabilities.missing(model, sorted(spec.capabilities)) == []
    x = torch.randint(0, 22, (3, 20))
    z = model.encode(x)
    assert z.shape == (3, 8) and model.decode(z, 1, [0, 1, 2]).shape == (3, 20)
    assert model.reconstruct(x, 1, [0, 1, 2]).shape == (3, 20)
    assert model.fitness(z).shape == (3,)
    if spec.can("generate"):
        steps = spec.steps(SMOKE)[0]
        a = model.generate([5, 6], steps)
        assert a.shape == (2, 20) and torch.equal(a[1:], model.generate([6], steps))  # per-sample seeds
    else:
        with pytest.raises(NotImplementedError, match="no prior"):
            model.generate([0], 1)


def test_protein_training_resumes_exactly(tmp_path):
    data = (torch.randint(0, 22, (64, 20), generator=torch.Generator().manual_seed(0)), torch.randn(64))
    cfg = {**SMOKE, "models": {**SMOKE["models"], "diled": {**SMOKE["models"]["diled"],
                                                              "train": {"steps": 4, "batch_size": 8, "lr": 1e-3, "ckpt_every": 2}}}}
    full, _, _ = stages.train_stage("protein", "diled", "train", cfg, data, tmp_path / "a", torch.device("cpu"))
    stages.train_stage("protein", "diled", "train", cfg, data, tmp_path / "b", torch.device("cpu"))
    (tmp_path / "b" / "ckpt-00000004.pt").unlink()  # as if killed after step 2
    resumed, res, _ = stages.train_stage("protein", "diled", "train", cfg, data, tmp_path / "b", torch.device("cpu"))
    assert res.resumed_from == 2
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


# ----------------------------------------------------------------------------- metrics


def test_levenshtein_diversity_and_novelty_by_hand():
    seqs = ["AAA", "AAB", "ABB"]  # pairwise distances 1, 2, 1
    assert pm.diversity(seqs) == pytest.approx(4 / 3)
    assert pm.novelty(seqs, ["AAA", "CCCC"]) == 1.0  # nearest distances 0, 1, 2 -> median 1
    m = pm.sequence_set_metrics(["AAJJ", "ABJJ"], ["AAJJ"])
    assert m["diversity_plain"] == 1 and m["diversity_official"] == 1 and m["novelty_plain"] == 0.5
    assert m["unique_fraction"] == 1.0


def test_reconstruction_bleu_equals_nltk():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    tokens = torch.tensor([[0, 1, 2, 3, 4, 5, 21], [6, 7, 8, 9, 10, 21, 21]])
    pred = torch.tensor([[0, 1, 2, 3, 4, 6, 21], [6, 7, 8, 9, 10, 21, 21]])
    logits = torch.nn.functional.one_hot(pred, 22).permute(0, 2, 1).float() * 10
    m = pm.reconstruction_metrics(logits, tokens)
    smooth = SmoothingFunction().method1
    expected = np.mean([sentence_bleu([[pdata.VOCAB[i] for i in r]], [pdata.VOCAB[i] for i in h], smoothing_function=smooth)
                        for r, h in zip(tokens.tolist(), pred.tolist())])
    assert m["bleu"] == pytest.approx(expected) and m["bleu"] < 1
    assert m["residue_accuracy"] == pytest.approx(13 / 14) and m["exact_match"] == 0.5
    assert m["ppl"] == pytest.approx(math.exp(m["ce"]))


def test_oracle_and_pssm_by_hand():
    tokens = np.array([[0, 1], [0, 2], [0, 1]])
    pssm = pm.fit_pssm(tokens, pseudocount=0.0 + 1e-12)
    assert pssm[0, 0] == pytest.approx(0.0, abs=1e-9) and pssm[1, 1] == pytest.approx(math.log(2 / 3))
    assert pm.pssm_nll(pssm, np.array([[0, 1]]))[0] == pytest.approx(-math.log(2 / 3) / 2)
    assert pm.one_hot(tokens).shape == (3, 44) and pm.one_hot(tokens).sum() == 6


# ----------------------------------------------------------------------------- optimisers


def test_optimisers_climb_a_known_fitness():
    target = torch.tensor([1.0, -2.0])
    fitness = lambda z: -((z - target) ** 2).sum(1)  # noqa: E731 (maximum at target)
    z0 = torch.zeros(5, 2)
    ga = optimize.gradient_ascent(z0, fitness, 50, lr=0.1)
    assert torch.allclose(ga[-1], target.expand(5, 2), atol=1e-3)
    gen = torch.Generator().manual_seed(0)
    chain = optimize.mcmc(z0, fitness, 300, delta=0.3, temperature=0.01, gen=gen)
    assert (fitness(chain[-1]) > fitness(z0)).all()
    pool = torch.tensor([[1.0, -2.0], [5.0, 5.0], [0.1, 0.0]])
    hc = optimize.hill_climb(z0, fitness, 20, pool, k=3, step=0.5)
    assert torch.allclose(hc[-1], target.expand(5, 2), atol=1e-4)
    linear = lambda z: z[:, 0]  # noqa: E731
    ode = optimize.latentops_ode(torch.zeros(3, 2), linear, target=0.5)
    assert ode.shape == (11, 3, 2) and (linear(ode[-1]) - 0.5).abs().max() < 0.05  # pulled to f = y


def test_knn_delta_is_the_mean_nearest_neighbour_distance_on_a_grid():
    grid = np.stack(np.meshgrid(np.arange(30.0), np.arange(30.0)), -1).reshape(-1, 2)
    d = optimize.knn_delta(grid, np.random.default_rng(0), fraction=1.0, k=1)
    assert d == pytest.approx(1.0)


def test_protein_codec_gives_training_pairs(tmp_path):
    codec = codecs.for_track("protein", SMOKE)
    x, y = codec.to_model(np.zeros((2, 20), np.int8), np.ones(2))
    assert x.dtype == torch.int64 and y.dtype == torch.float32
    assert codec.to_metric(torch.full((1, 20), pdata.PAD), keep_pad=False) == [""]
