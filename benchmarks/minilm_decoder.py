"""The text track's shared autoencoder with a decoder that knows English: MiniLM loaded as a causal decoder.

Issue 24's third lever, measured before it enters the workflow. The encoder is the track's own (``build_encoder``:
the token encoder over MiniLM's frozen embeddings); the decoder is ``diled.modalities.text.model.LatentBert``
(every MiniLM tensor, a causal mask, z as a memory slot per layer and added to the embeddings, the output tied to
the WordPiece rows the data uses). Its rows are the encoder's own WordPiece ids, so encoder and decoder share one
vocabulary. It trains on the prepared file's training split and pool (as the ``ae/train`` stage does) with the
suite's ``train()`` and is scored as Table 1 scores reconstruction: greedy from the mean, each sentence capped at
its own length, nltk corpus BLEU x 100 against the source sentences of the test split (pieces are re-spaced by
``diled.modalities.text.data.wordpiece_text``; ``ceiling`` is the BLEU of the sources' own pieces decoded through
the restricted vocabulary, the most any decoder of it can reach).

    python benchmarks/minilm_decoder.py --data /tmp/text_rec/pool0-wordpieces.npz --steps 2000 --out /tmp/minilm.json

The prepared file is what ``benchmarks/text_reconstruction.py`` (or the workflow's ``prepare_data`` with
``encoder_input: wordpieces``) writes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a prepared text .npz with encoder_input wordpieces and a pool")
    ap.add_argument("--config", default=None, help="a config merged over config/config.yaml (its text section)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--frozen-layers", type=int, default=0, help="MiniLM's embedding layer and first layers kept fixed")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--vocab-size", type=int, default=8000, help="the most frequent WordPiece rows kept (the rest: [UNK])")
    ap.add_argument("--rated-copies", type=int, default=1, help="data.pool.rated_copies: the rated rows repeated beside the pool")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/minilm_decoder")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from diled import codecs, manifest
    from diled import config as cfg
    from diled.hardware import resolve_device, resolve_precision, setup_torch
    from diled.metrics import text as mt
    from diled.modalities.text import model as T
    from diled.modalities.text.data import decode_ids, pretrained_encoder, wordpiece_text
    from diled.modalities.text.evaluation import latent_health, reconstruction
    from diled.train import TrainSpec, train

    device = resolve_device("auto")
    setup_torch(args.threads, device)
    view = cfg.track_view(cfg.load_config(*([args.config] if args.config else [])), "text")
    if T.encoder_input(view) != "wordpieces":
        raise SystemExit("the MiniLM decoder shares the encoder's WordPiece rows: set text.data.encoder_input: wordpieces")
    if view["data"].get("pool") is not None:
        view["data"]["pool"]["rated_copies"] = args.rated_copies
    codec = codecs.for_track("text", view)
    data = list(codec.training_data(args.data, pool=True))
    test = list(codec.to_model(codec.load(args.data, "test")))
    if data[0].dtype != torch.long:
        raise SystemExit(f"{args.data} holds pooled features, not WordPiece ids: prepare it with encoder_input wordpieces")
    vocab_ids, lookup = T.restricted_vocabulary(data[0], size=args.vocab_size)
    block = int(view["data"]["block_size"])
    data[1] = T.decoder_rows(data[0][:, :block], lookup)
    test[1] = T.decoder_rows(test[0][:, :block], lookup)
    tok, _ = pretrained_encoder(view["net"]["encoder"])

    class Pieces:
        """The tokenizer face ``reconstruction`` and ``decode_ids`` read: decoder rows -> WordPiece ids -> text."""

        def decode(self, rows: list[int]) -> str:
            return wordpiece_text(tok, [int(vocab_ids[r]) for r in rows])

    pieces = Pieces()

    z = int(view["net"]["z_dim"])
    torch.manual_seed(view["seed"])
    decoder = T.LatentBert(view["net"]["encoder"], vocab_ids, z, block, args.frozen_layers, dropout=args.dropout)
    model = T.TextAutoencoder(T.build_encoder(view, z), decoder, z, view["models"]["ae"]["encoder_var"]).to(device)
    precision = resolve_precision("auto", device)
    spec = TrainSpec(steps=args.steps, batch_size=args.batch_size, lr=args.lr, ema_decay=0.99, seed=view["seed"],
                     ckpt_every=500, warmup=50, precision=precision)
    key = f"s{args.steps}-lr{args.lr:g}-f{args.frozen_layers}-d{args.dropout:g}-rc{args.rated_copies}-b{args.batch_size}-v{args.vocab_size}"
    t0 = time.perf_counter()
    res = train(model, lambda m, b: m.loss(b), tuple(x.to(device) for x in data), spec, Path(args.work) / key, desc="ae/minilm")
    wall = time.perf_counter() - t0
    ema = res.ema.eval()
    sources = [str(s) for s in codec.load(args.data, "test")["text"]]
    seen = [x[-400:].to(device) for x in data]
    scores = {}
    with torch.no_grad():
        for name, rows, refs in (("test", [x.to(device) for x in test], sources), ("trained-on", seen, decode_ids(pieces, seen[1].cpu().numpy()))):
            outs, rec = reconstruction(ema, tuple(rows), pieces, refs, 200)  # Table 1's own scoring
            scores[name] = {"bleu": round(rec["bleu"], 2), "ci": [round(rec["bleu_lo"], 2), round(rec["bleu_hi"], 2)],
                            "examples": list(zip(refs[:5], outs[:5]))}
        health = latent_health(ema, tuple(x.to(device) for x in test), view["seed"])
    row = {"steps": res.steps, "batch_size": args.batch_size, "lr": args.lr, "frozen_layers": args.frozen_layers, "dropout": args.dropout,
           "rated copies": args.rated_copies, "precision": precision, "vocabulary": len(vocab_ids),
           "ceiling BLEU": round(mt.reconstruction_bleu(sources, decode_ids(pieces, test[1].numpy())), 2),
           "test BLEU": scores["test"]["bleu"], "test BLEU CI": scores["test"]["ci"], "trained-on BLEU": scores["trained-on"]["bleu"],
           "active units": health["active_units"], "z gain": round(health["z_gain"], 3), "s/step": res.s_per_step,
           "train s": round(res.wall_s, 1), "this call s": round(wall, 1),
           "trainable": T.parameter_count(model)["trainable"], "examples": scores["test"]["examples"]}
    print(json.dumps(row), flush=True)
    out = {"row": row, "args": vars(args), "hardware": manifest.hardware(), "git": manifest.git_state(), "packages": manifest.package_versions()}
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
