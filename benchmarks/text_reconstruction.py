"""Held-out reconstruction of text DiLED against training-set size: is the embedded default's BLEU data-limited?

For each size n, the text track's GPT-2 LM and then DiLED (the suite's own builders, objective and trainer,
the config's text section with the overrides below) are trained on the first n sentences of a seeded
permutation of the prepared training split. Each model is scored as Table 1 scores it: reconstruction BLEU
(greedy from the mean, each sentence capped at its own length) on the test split and on 400 of its own
training sentences, with the latent-health numbers (active units, z gain). A held-out BLEU that grows with n
while the training BLEU is high says the data, not the objective or the step budget, limits it.

    python benchmarks/text_reconstruction.py --data results/data/text/snippets.npz --sizes 1000 2000 0 \
        --steps 6000 --lm-steps 2000 --width 256 --layers 4 --device cuda --out /tmp/text_rec.json

``--sizes 0`` is the whole training split. Runs write their checkpoints under ``--runs`` (resumable).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _view(config_file: str | None, args: argparse.Namespace) -> dict:
    from diled import config as cfg

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    if config_file:
        config = cfg.merge(config, yaml.safe_load(Path(config_file).read_text()))
    view = cfg.track_view(config, "text")
    dec = view["net"]["decoder"]
    if args.width:
        dec.update(n_embd=args.width, n_head=max(1, args.width // 64))
    if args.layers:
        dec["n_layer"] = args.layers
    if args.w is not None:
        view["models"]["diled"]["w"] = args.w
    return view


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a prepared text .npz (results/data/text/snippets.npz)")
    ap.add_argument("--config", default=None, help="a config merged over config/config.yaml (its text section)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 0])
    ap.add_argument("--steps", type=int, default=3000, help="DiLED steps")
    ap.add_argument("--lm-steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=0, help="decoder n_embd (0: the config's)")
    ap.add_argument("--layers", type=int, default=0, help="decoder layers (0: the config's)")
    ap.add_argument("--w", type=float, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", default="/tmp/text_rec_runs")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from diled import codecs, manifest
    from diled.modalities import text as T
    from diled.runtime import resolve_device, setup_torch
    from diled.text_eval import latent_health, reconstruction
    from diled.train import TrainSpec, train

    device = resolve_device(args.device)
    setup_torch(args.threads, device)
    view = _view(args.config, args)
    codec = codecs.for_track("text", view)
    tok = codec.tokenizer(args.data)
    train_a, test_a = codec.load(args.data, "train"), codec.load(args.data, "test")
    full = codec.to_model(train_a)
    test_b = tuple(x.to(device) for x in codec.to_model(test_a))
    order = torch.from_numpy(np.random.default_rng([view["seed"], 23]).permutation(len(full[0])))
    rows = []
    for n in args.sizes:
        n = n or len(order)
        idx = order[:n]
        data = tuple(x[idx] for x in full)
        t0 = time.perf_counter()
        lm_spec = TrainSpec(steps=args.lm_steps, batch_size=args.batch, lr=args.lr, ema_decay=0.995, warmup=100, ckpt_every=1000)
        lm = train(T.build_lm(view).to(device), lambda m, b: m.loss(b), data, lm_spec, Path(args.runs) / f"lm-{n}", desc=f"lm n={n}").ema
        spec = TrainSpec(steps=args.steps, batch_size=args.batch, lr=args.lr, ema_decay=0.995, warmup=100, ckpt_every=1000)
        model = T.from_lm(T.build_diled(view), lm, view["net"]["decoder"]["fix"]).to(device)
        model = train(model, lambda m, b: m.loss(b), data, spec, Path(args.runs) / f"diled-{n}", desc=f"diled n={n}").ema.eval()
        wall = time.perf_counter() - t0
        with torch.no_grad():
            _, rec = reconstruction(model, test_b, tok, list(test_a["text"]), 200)
            seen = tuple(x[:400].to(device) for x in data)
            _, rec_train = reconstruction(model, seen, tok, [train_a["text"][i] for i in idx[:400].tolist()], 200)
            health = latent_health(model, test_b, view["seed"])
        row = {"train sentences": n, "test BLEU": round(rec["bleu"], 2), "test BLEU CI": [round(rec["bleu_lo"], 2), round(rec["bleu_hi"], 2)],
               "train BLEU": round(rec_train["bleu"], 2), "active units": health["active_units"], "z gain": round(health["z_gain"], 3),
               "wall s": round(wall, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        out = {"rows": rows, "args": vars(args), "decoder": view["net"]["decoder"], "w": view["models"]["diled"]["w"],
               "hardware": manifest.hardware(), "git": manifest.git_state(), "packages": manifest.package_versions()}
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))  # after every size: a cut-off run keeps its rows


if __name__ == "__main__":
    main()
