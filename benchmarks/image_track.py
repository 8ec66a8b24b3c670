"""Benchmark the image track in one process (no Snakemake): training and sampling throughput per model.

    python benchmarks/image_track.py --config config/gpu.yaml --data mnist32.npz --out DIR

Trains the stages the registry's lineage gives for the wanted models (``--only``) with the same
``diled.stages`` functions the workflow's rules call, on ``device`` from the
config, and writes DIR/timings.json (seconds per training step, images per second of sampling,
wall times), DIR/models/*.pt and DIR/samples_<model>.npz (every T's sets, keys ``T<steps>/<set>``).
Meant for a GPU machine without the workflow's dependencies; FID of the returned sets is computed
elsewhere with ``--fid DIR`` (same protocol code as the workflow's ``evaluate_image`` rule).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml


def run(config: dict, data: Path, out: Path, only: list[str] | None = None) -> dict:
    """Train every stage the wanted models need (the registry's lineage, each stage once), then sample each model."""
    from diled import codecs, manifest, registry, stages
    from diled.config import track_view
    from diled.hardware import resolve_device, setup_torch
    from diled.modalities.image.model import evaluation_sets

    cfg = track_view(config, "image")
    device = resolve_device(cfg["device"])
    setup_torch(cfg["threads"], device)
    codec = codecs.for_track("image", cfg)
    x = codec.to_model(codec.load(data, "train")[0])
    reference, _ = codec.load(data, "reference")
    timings: dict = {"device": str(device), "hardware": manifest.hardware(), "stages": {}, "sampling": {}}
    t_all = time.perf_counter()
    wanted = [s for s in registry.models("image", config=cfg) if only is None or s.name in only]
    plan: list[tuple[str, str]] = []
    for spec in wanted:
        plan += [p for p in registry.lineage(spec) if p not in plan]
    trained: dict[tuple[str, str], torch.nn.Module] = {}
    for name, stage in plan:
        starts = registry.get("image", name).stage(stage).starts_from
        init = trained[tuple(starts.split("/"))] if starts else None
        model, res, _ = stages.train_stage("image", name, stage, cfg, x, out / "runs" / f"{name}-{stage}", device, init)
        trained[(name, stage)] = model
        timings["stages"][f"{name}/{stage}"] = {"steps": res.steps, "s_per_step": res.s_per_step, "wall_s": res.wall_s,
                                                 "final_loss": res.final_loss}
        print(f"{name}/{stage}: {res.steps} steps, {res.wall_s:.1f} s", flush=True)
    for spec in wanted:
        model = trained[(spec.name, spec.final_stage.name)]
        stages.save_model(model, "image", spec.name, cfg, out / "models" / f"{spec.name}.pt", timings["stages"])
        sets = {}
        for steps in spec.steps(cfg):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            ev = cfg["eval"]
            s = evaluation_sets(model, reference, steps, ev["num_samples"], ev["interp_alphas"], cfg["seed"], ev["batch_size"],
                                desc=f"{spec.name}/T{steps}")
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
            n_images = sum(len(v) for k, v in s.items() if not k.startswith("source"))
            timings["sampling"][f"{spec.name}/T{steps}"] = {"wall_s": wall, "images": n_images, "images_per_s": n_images / wall}
            print(f"{spec.name}/T{steps}: {n_images} images in {wall:.1f} s ({n_images / wall:.0f} images/s)", flush=True)
            sets.update({f"T{steps}/{k}": v for k, v in s.items()})
        np.savez_compressed(out / f"samples_{spec.name}.npz", **sets)
    timings["total_wall_s"] = time.perf_counter() - t_all
    timings["manifest"] = manifest.build(config, cfg["seed"], timings["total_wall_s"])
    (out / "timings.json").write_text(json.dumps(timings, indent=2, default=str))
    return timings


def fid_table(directory: Path, data: Path, limit: int = 100, device: str = "cpu") -> str:
    """FID of the first ``limit`` images of every returned set against the reference set of ``data``."""
    from diled.metrics import fid
    from diled.modalities.image.codec import ImageCodec

    proto = fid.PYTORCH_FID
    ref = fid.statistics(ImageCodec("mnist32").reference_images(data, "held-out"), proto, device, desc="reference", role="reference")
    rows = []
    for path in sorted(directory.glob("samples_*.npz")):
        model = path.stem.removeprefix("samples_")
        with np.load(path) as f:
            for steps in sorted({int(k.split("/")[0][1:]) for k in f.files}):
                scores = {k: fid.frechet_distance(fid.statistics(f[f"T{steps}/{k}"][:limit], proto, device, desc=k), ref)
                          for k in ("gen", "rec", "interp_0.2", "interp_0.4")}
                rows.append(f"| {model} | {steps} | " + " | ".join(f"{scores[k]:.2f}" for k in ("gen", "rec", "interp_0.2", "interp_0.4")) + " |")
    head = f"protocol {proto.name}:{proto.digest}, {limit} images per set, reference {ref.count} images\n\n| model | T | gen | rec | interp 0.2 | interp 0.4 |\n|---|---|---|---|---|---|"
    return head + "\n" + "\n".join(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--fid", type=Path, help="compute FIDs of a finished benchmark directory instead")
    ap.add_argument("--limit", type=int, default=100, help="images per set for --fid (default: the embedded default's 100)")
    ap.add_argument("--only", help="comma-separated models to train and sample (with the stages they start from)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key (dotted path, YAML value), e.g. image.models.ldm.perceptual=alex")
    args = ap.parse_args()
    if args.fid:
        print(fid_table(args.fid, args.data, args.limit))
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        from diled.config import load_config

        cfg = load_config(args.config)  # merged over config/config.yaml, the models resolved, as the workflow reads it
        for item in args.set:
            key, _, value = item.partition("=")
            *parents, leaf = key.split(".")
            node = cfg
            for p in parents:
                node = node[p]
            if leaf not in node:
                raise SystemExit(f"--set {item}: no config key {key!r}")
            node[leaf] = yaml.safe_load(value)
        t = run(cfg, args.data, args.out, args.only.split(",") if args.only else None)
        print(json.dumps({k: t[k] for k in ("device", "stages", "sampling", "total_wall_s")}, indent=2, default=str))
