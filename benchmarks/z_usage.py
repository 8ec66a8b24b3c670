"""Does the decoder use z? Train DiffAE's autoencoder stage under config overrides and measure it (issue 10's ablation).

For each variant (``--variant name:key=value,key=value``, keys under ``image.``) this trains the DiffAE
autoencoder stage on the embedded digits, then reports on held-out digits:

* class preservation: the share of reconstructions (encoder mean, decoded from a seeded random x_T at
  ``--steps`` DDIM steps) that the independent pixel judge of the editing table assigns the source's digit;
* the eps-MSE of the decoder with the true z over that with a shuffled z, at several t (> 1: z helps);
* the code spread (std of the standardized encoder mean over images, averaged over dimensions);
* ``class_kept_eval``: class preservation on exactly the rows Table 6's latent-health column scores (the workflow's
  ``eval.num_samples`` held-out digits and its reconstruction seeds), with the judge's own accuracy on them.

``--every K`` keeps a checkpoint every K steps and scores each one's EMA, so one run gives the curve against
training length (the run is the same as a K-free one: checkpoints do not touch the trajectory). ``--threads 1``
(the default) is the workflow rule's, so the trajectory is the workflow's own.

    python benchmarks/z_usage.py --data results/data/image/mnist32.npz --out /tmp/z.json --every 1200 \\
        --variant base: --variant b32:models.diffae.autoencoder.batch_size=32,models.diffae.autoencoder.steps=4800
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from diled import checkpoint, editing, latent_health, registry, stages
from diled.config import load_config
from diled.modalities.image.codec import ImageCodec
from diled.modalities.image.model import eval_indices, eval_seeds


def _overrides(assignments: str) -> dict:
    """``key=value,key=value`` (keys under ``image.``, values YAML) as the registry's dotted overrides."""
    return {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in filter(None, assignments.split(",")))}


@torch.no_grad()
def class_kept_eval(model, codec: ImageCodec, ref_x: np.ndarray, ref_y: np.ndarray, judge, n: int, steps: int,
                    seed: int) -> dict[str, float]:
    """Class preservation of ``random`` reconstructions on the rows and seeds ``evaluation_sets`` uses for Table 6."""
    rows, order = eval_indices(len(ref_x), n, seed)[0], np.arange(n)
    x = codec.to_model(ref_x[rows])
    z = model.encode(x, steps, eval_seeds(seed, "encode", order))
    rec = codec.to_metric(model.decode(z, steps, eval_seeds(seed, "rec", order)))
    return {"class_kept_eval": latent_health.class_preservation(lambda im: editing.judge(judge, im), rec, ref_y[rows]),
            "judge_on_eval_sources": latent_health.class_preservation(lambda im: editing.judge(judge, im), ref_x[rows], ref_y[rows])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant", action="append", required=True, help="name:key=value,... (keys under image.)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the workflow rule's, same trajectory)")
    ap.add_argument("--every", type=int, default=0, help="also score the EMA every this many steps (0: the final one only)")
    ap.add_argument("--diled", action="store_true", help="also train DiffAE's latent stage, DiLED and the DiffAE + FT control")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    full = load_config(args.config)
    base = {**full["image"], "seed": full["seed"]}
    codec = ImageCodec(base["data"]["dataset"])
    data = codec.training_data(args.data)
    train_x, train_y = codec.load(args.data, "train")
    ref_x, ref_y = codec.load(args.data, "reference")
    judge = editing.pixel_classifier(train_x, train_y, 0)
    x = codec.to_model(ref_x[: args.n])
    n_eval, seed = full["image"]["eval"]["num_samples"], full["seed"]
    results = {}
    for spec in args.variant:
        name, _, assignments = spec.partition(":")
        overrides = _overrides(assignments)
        if args.every:
            overrides |= {"models.diffae.autoencoder.ckpt_every": args.every, "models.diffae.autoencoder.keep": 10**6}
        cfg = registry.apply_overrides(base, overrides)
        t0 = time.perf_counter()
        root = Path(args.out).parent / f"run-{name}"
        cpu = torch.device("cpu")
        model, res, _ = stages.train_stage("image", "diffae", "autoencoder", cfg, data, root, cpu)
        train_s = round(time.perf_counter() - t0, 1)
        states = ([(ck["step"], ck["ema"]) for ck in map(checkpoint.load, sorted(root.glob("ckpt-*.pt")))] if args.every
                  else [(res.steps, model.state_dict())])
        for step, state in states:
            model.load_state_dict(state)
            model.eval()
            model.fit_standardization(stages.encode_all(model.encoder, data, 500))
            health = latent_health.diagnose(model, x, ref_y[: args.n], judge, args.steps, seed=0)
            health |= class_kept_eval(model, codec, ref_x, ref_y, judge, n_eval, args.steps, seed)
            key = f"{name}@{step}" if args.every else name
            results[key] = {"overrides": assignments, "train_s": train_s, **health}
            print(key, json.dumps(results[key]), flush=True)
        if args.diled:
            latent, _, _ = stages.train_stage("image", "diffae", "latent", cfg, data, root / "latent", cpu, init=model)
            for follow in ("diled", "diffae_ft"):
                t1 = time.perf_counter()
                tuned, _, _ = stages.train_stage("image", follow, "train", cfg, data, root / follow, cpu, init=latent)
                h = latent_health.diagnose(tuned.eval(), x, ref_y[: args.n], judge, args.steps, seed=0)
                results[f"{name}/{follow}"] = {"train_s": round(time.perf_counter() - t1, 1), **h}
                print(f"{name}/{follow}", json.dumps(results[f"{name}/{follow}"]), flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
