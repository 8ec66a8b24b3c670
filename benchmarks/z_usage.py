"""Does the decoder use z? Train DiffAE's autoencoder stage under config overrides and measure it (issue 10's ablation).

For each variant (``--variant name:key=value,key=value``, keys under ``image.``) this trains the DiffAE
autoencoder stage on the embedded digits, then reports on held-out digits:

* class preservation: the share of reconstructions (encoder mean, decoded from a seeded random x_T at
  ``--steps`` DDIM steps) that the independent pixel judge of the editing table assigns the source's digit;
* the eps-MSE of the decoder with the true z over that with a shuffled z, at several t (> 1: z helps);
* the code spread (std of the standardized encoder mean over images, averaged over dimensions).

    python benchmarks/z_usage.py --data results/data/image/mnist32.npz --out /tmp/z.json \\
        --variant base: --variant minsnr:net.loss_weight.kind=min_snr
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml

from diled import codecs, editing, latent_health, pipeline, registry


def _overrides(assignments: str) -> dict:
    """``key=value,key=value`` (keys under ``image.``, values YAML) as the registry's dotted overrides."""
    return {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in filter(None, assignments.split(",")))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant", action="append", required=True, help="name:key=value,... (keys under image.)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--diled", action="store_true", help="also train DiffAE's latent stage, DiLED and the DiffAE + FT control")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    full = yaml.safe_load(Path(args.config).read_text())
    base = {**full["image"], "seed": full["seed"]}
    codec = codecs.ImageCodec(base["data"]["dataset"])
    data = codec.training_data(args.data)
    train_x, train_y = codec.load(args.data, "train")
    ref_x, ref_y = codec.load(args.data, "reference")
    judge = editing.pixel_classifier(train_x, train_y, 0)
    x = codec.to_model(ref_x[: args.n])
    results = {}
    for spec in args.variant:
        name, _, assignments = spec.partition(":")
        cfg = registry.apply_overrides(base, _overrides(assignments))
        t0 = time.perf_counter()
        root = Path(args.out).parent / f"run-{name}"
        cpu = torch.device("cpu")
        model, res, _ = pipeline.train_stage("image", "diffae", "autoencoder", cfg, data, root, cpu)
        model.eval()
        raw = pipeline.encode_all(model.encoder, data, 500)
        model.fit_standardization(raw)
        health = latent_health.diagnose(model, x, ref_y[: args.n], judge, args.steps, seed=0)
        results[name] = {"overrides": assignments, "train_s": round(time.perf_counter() - t0, 1), **health}
        print(name, json.dumps(results[name]), flush=True)
        if args.diled:
            latent, _, _ = pipeline.train_stage("image", "diffae", "latent", cfg, data, root / "latent", cpu, init=model)
            for follow in ("diled", "diffae_ft"):
                t1 = time.perf_counter()
                tuned, _, _ = pipeline.train_stage("image", follow, "train", cfg, data, root / follow, cpu, init=latent)
                h = latent_health.diagnose(tuned.eval(), x, ref_y[: args.n], judge, args.steps, seed=0)
                results[f"{name}/{follow}"] = {"train_s": round(time.perf_counter() - t1, 1), **h}
                print(f"{name}/{follow}", json.dumps(results[f"{name}/{follow}"]), flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
