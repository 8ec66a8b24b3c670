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


def variant_view(base: dict, pool: int, encoder: str, decoder: str) -> dict:
    """The text view of one variant: pool size (-1: no pool), encoder input, decoder ``<width>x<layers>``."""
    view = copy.deepcopy(base)
    view["data"]["encoder_input"] = encoder
    if pool < 0:
        view["data"]["pool"] = None
    else:
        view["data"]["pool"] = {**(view["data"].get("pool") or {}), "size": pool}
    width, layers = (int(v) for v in decoder.lower().split("x"))
    view["net"]["decoder"].update(n_embd=width, n_layer=layers, n_head=max(1, width // 64))
    return view


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=None, help="a config merged over config/config.yaml (its text section)")
    ap.add_argument("--pool-sizes", type=int, nargs="+", default=[0])
    ap.add_argument("--encoders", nargs="+", default=["wordpieces"], help="data.encoder_input values: last, first+last, wordpieces")
    ap.add_argument("--decoders", nargs="+", default=["128x2"], help="decoder <n_embd>x<n_layer>")
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
    for pool in args.pool_sizes:
        for encoder in args.encoders:
            for decoder in args.decoders:
                view = variant_view(base, pool, encoder, decoder)
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
                runs = work / f"{key}-{decoder}"
                # the registry's own stage trainers: gpt2/pretrain, then ae/train from it (pool included)
                lm, lm_res, _ = stages.train_stage("text", "gpt2", "pretrain", view, data, runs / "lm", device)
                _, ae_res, _ = stages.train_stage("text", "ae", "train", view, data, runs / "ae", device, init=lm)
                model = ae_res.ema.eval()
                with torch.no_grad():
                    _, rec = reconstruction(model, test_b, tok, list(test_a["text"]), 200)
                    _, rec_seen = reconstruction(model, seen, tok, codec.to_metric(seen[1], tok), 200)
                    health = latent_health(model, test_b, view["seed"])
                row = {"pool": len(data[0]) - int((data[2] >= 0).sum()), "encoder_input": encoder, "decoder": decoder,
                       "lm_steps": lm_res.steps, "ae_steps": ae_res.steps, "test BLEU": round(rec["bleu"], 2),
                       "test BLEU CI": [round(rec["bleu_lo"], 2), round(rec["bleu_hi"], 2)], "trained-on BLEU": round(rec_seen["bleu"], 2),
                       "active units": health["active_units"], "z gain": round(health["z_gain"], 3), "prepare s": round(prep_s, 1),
                       "lm s": round(lm_res.wall_s, 1), "ae s": round(ae_res.wall_s, 1), "ae s/step": ae_res.s_per_step}
                print(json.dumps(row), flush=True)
                rows.append(row)
                out = {"rows": rows, "args": vars(args), "hardware": manifest.hardware(), "git": manifest.git_state(),
                       "packages": manifest.package_versions()}
                Path(args.out).write_text(json.dumps(out, indent=1, default=str))  # after every variant: a cut-off run keeps its rows


if __name__ == "__main__":
    main()
