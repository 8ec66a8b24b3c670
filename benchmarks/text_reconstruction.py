"""Held-out reconstruction of the text track's shared autoencoder against pool size, encoder option and decoder size.

Which lever moves reconstruction BLEU? For each variant the suite's own pieces run: ``diled.modalities.text.data.prepare``
(the pool of ``diled.modalities.text.pool`` cut to ``--pool-sizes``, the encoder input of ``--encoders``), the GPT-2 LM
and then the shared autoencoder (``diled.modalities.text.model``, ``diled.train.train``, the config's optimiser
settings), and the model is scored as Table 1 scores it: reconstruction BLEU (greedy from the mean, each sentence
capped at its own length) on the test split, on 400 pool sentences it trained on, and the latent health (active
units above the noise, z gain). DiLED and the baselines all start from this autoencoder, so its BLEU bounds theirs.

    python benchmarks/text_reconstruction.py --pool-sizes 0 20000 --encoders wordpieces last \
        --decoders 128x2 256x4 --lm-steps 800 --ae-steps 2000 --out /tmp/text_rec.json

``--pool-sizes 0`` is the whole pool; ``-1`` none. Prepared data and runs are kept under ``--work`` (resumable).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def variant_view(base: dict, pool: int, encoder: str, decoder: str, encoder_pool: str = "mean", slots: int = 1,
                 rated_copies: int = 1) -> dict:
    """The text view of one variant: pool size (-1: no pool), encoder input, decoder ``<width>x<layers>``, the token
    encoder's pooling (``net.encoder_pool``), the decoder's memory slots and ``data.pool.rated_copies``."""
    view = copy.deepcopy(base)
    view["data"]["encoder_input"] = encoder
    view["net"]["encoder_pool"] = encoder_pool
    view["net"]["decoder"]["memory_slots"] = slots
    if pool < 0:
        view["data"]["pool"] = None
    else:
        view["data"]["pool"] = {**(view["data"].get("pool") or {}), "size": pool, "rated_copies": rated_copies}
    width, layers = (int(v) for v in decoder.lower().split("x"))
    view["net"]["decoder"].update(n_embd=width, n_layer=layers, n_head=max(1, width // 64))
    return view


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=None, help="a config merged over config/config.yaml (its text section)")
    ap.add_argument("--pool-sizes", type=int, nargs="+", default=[0])
    ap.add_argument("--encoders", nargs="+", default=["wordpieces"], help="data.encoder_input values: last, first+last, wordpieces")
    ap.add_argument("--decoders", nargs="+", default=["128x2"], help="decoder <n_embd>x<n_layer>")
    ap.add_argument("--encoder-pools", nargs="+", default=["mean"], help="net.encoder_pool values: mean, attention:K")
    ap.add_argument("--memory-slots", type=int, nargs="+", default=[1], help="the decoder's memory slots from z")
    ap.add_argument("--examples", type=int, default=5, help="held-out (source, reconstruction) pairs kept per variant")
    ap.add_argument("--rated-copies", type=int, default=1,
                    help="data.pool.rated_copies: the rated training rows repeated beside the pool (in-domain oversampling)")
    ap.add_argument("--lm-steps", type=int, default=None, help="default: the config's models.gpt2 steps")
    ap.add_argument("--ae-steps", type=int, default=None, help="default: the config's models.ae steps")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/text_rec")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from diled import codecs, manifest, stages
    from diled import config as cfg
    from diled.hardware import resolve_device, setup_torch
    from diled.modalities.text.evaluation import latent_health, reconstruction

    device = resolve_device(args.device)
    setup_torch(args.threads, device)
    config = cfg.load_config(*([args.config] if args.config else []))
    base = cfg.track_view(config, "text")
    work = Path(args.work)
    rows = []
    variants = [(p, e, d, ep, m) for p in args.pool_sizes for e in args.encoders for d in args.decoders
                for ep in args.encoder_pools for m in args.memory_slots]
    for pool, encoder, decoder, encoder_pool, slots in variants:
        view = variant_view(base, pool, encoder, decoder, encoder_pool, slots, args.rated_copies)
        codec = codecs.for_track("text", view)
        key = f"pool{pool}-{encoder.replace('+', '_')}"
        data_path = work / f"{key}.npz"
        t0 = time.perf_counter()
        if not data_path.exists():
            work.mkdir(parents=True, exist_ok=True)
            codec.prepare(data_path, dict(view["data"]))
        prep_s = time.perf_counter() - t0
        data = codec.training_data(data_path, pool=True)  # the pre-training stages read the pool too
        tok = codec.tokenizer(data_path)
        test_a = codec.load(data_path, "test")
        test_b = tuple(x.to(device) for x in codec.to_model(test_a))
        seen = tuple(x[-400:].to(device) for x in data)

        for section, steps in ((view["models"]["gpt2"]["pretrain"], args.lm_steps), (view["models"]["ae"]["train"], args.ae_steps)):
            section["steps"] = steps or section["steps"]
        runs = work / f"{key}-{decoder}-m{slots}-rc{args.rated_copies}"
        # the registry's own stage trainers: gpt2/pretrain (shared by the encoder poolings), then ae/train from it
        lm, lm_res, _ = stages.train_stage("text", "gpt2", "pretrain", view, data, runs / "lm", device)
        ae_dir = runs / f"ae-{encoder_pool.replace(':', '')}"
        _, ae_res, _ = stages.train_stage("text", "ae", "train", view, data, ae_dir, device, init=lm)
        model = ae_res.ema.eval()
        with torch.no_grad():
            outs, rec = reconstruction(model, test_b, tok, list(test_a["text"]), 200)
            _, rec_seen = reconstruction(model, seen, tok, codec.to_metric(seen[1], tok), 200)
            health = latent_health(model, test_b, view["seed"])
        row = {"pool": len(data[0]) - int((data[2] >= 0).sum()), "encoder_input": encoder, "decoder": decoder,
               "encoder_pool": encoder_pool, "memory_slots": slots, "rated copies": args.rated_copies,
               "lm_steps": lm_res.steps, "ae_steps": ae_res.steps, "test BLEU": round(rec["bleu"], 2),
               "test BLEU CI": [round(rec["bleu_lo"], 2), round(rec["bleu_hi"], 2)], "trained-on BLEU": round(rec_seen["bleu"], 2),
               "active units": health["active_units"], "z gain": round(health["z_gain"], 3), "prepare s": round(prep_s, 1),
               "lm s": round(lm_res.wall_s, 1), "ae s": round(ae_res.wall_s, 1), "ae s/step": ae_res.s_per_step,
               "examples": list(zip(list(test_a["text"])[: args.examples], outs[: args.examples]))}
        print(json.dumps(row), flush=True)
        rows.append(row)
        out = {"rows": rows, "args": vars(args), "hardware": manifest.hardware(), "git": manifest.git_state(),
               "packages": manifest.package_versions()}
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))  # after every variant: a cut-off run keeps its rows


if __name__ == "__main__":
    main()
