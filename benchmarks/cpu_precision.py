"""fp32 against bf16 autocast on this CPU, stage by stage: seconds per training step and per sampling call.

    python benchmarks/cpu_precision.py --config config/config.yaml --data results/data --out /tmp/precision.json

For every training stage of every model the config runs (the registry's lineage, each stage once) it trains
``--steps`` steps through the workflow's own stage trainers (``diled.stages.train_stage``) under ``precision: fp32``
and ``precision: bf16``, alternating the two in one process, ``--repeats`` times, on the same threads, and reports the
median seconds per step and their ratio. A stage that starts from another gets that stage's benchmark model (trained
``--steps`` steps, not to convergence: speed does not depend on the weights). Then, for every generating model, it
times ``generate`` (image: the latent chain and the decoder's DDIM steps; text: the latent chain and greedy decoding;
protein: the latent chain and the decoder) under fp32 and under bf16 autocast. The data are the workflow's
``prepare_data`` outputs (``--data`` is the folder holding ``<track>/<dataset>.npz``).

It also records which kernels ran: torch's CPU capability, the CPU's native bf16 instructions (what
``precision: auto`` reads) and the oneDNN implementation a bf16 and an fp32 matmul dispatch to (``ONEDNN_VERBOSE``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

PRECISIONS = ("fp32", "bf16")

_PROBE = """
import torch
torch.set_num_threads(1)
a, x, conv = torch.randn(256, 256), torch.randn(1, 8, 16, 16), torch.nn.Conv2d(8, 8, 3)
for dt in (torch.bfloat16, torch.float32):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dt is torch.bfloat16):
        torch.nn.functional.linear(a, a)
        conv(x)
"""


def kernels() -> dict:
    """Which kernels a linear layer and a convolution run under bf16 autocast and in fp32, as oneDNN reports them
    (fp32 matmuls go to MKL, which oneDNN does not report)."""
    from diled.hardware import native_bf16_features

    res = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env={**os.environ, "ONEDNN_VERBOSE": "1"})
    ran = set()
    for line in res.stdout.splitlines():
        f = line.split(",")
        if line.startswith("onednn_verbose") and len(f) > 8 and f[3] == "exec" and f[5] in ("matmul", "convolution", "inner_product"):
            src = next((part.split(":")[1] for part in f[8].split() if part.startswith("src:")), "?")
            ran.add(f"{f[5]} {src}: {f[6]}")
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": list(native_bf16_features()), "mkldnn": torch.backends.mkldnn.is_available(),
            "onednn_kernels": sorted(ran) or ["(none reported: every op ran in MKL / ATen kernels)"]}


def _with(cfg: dict, name: str, steps: int, precision: str) -> dict:
    """``cfg`` with every training section of model ``name`` set to ``steps`` steps (one checkpoint) and ``precision``."""
    cfg = copy.deepcopy(cfg)
    for section in cfg["models"][name].values():
        if isinstance(section, dict) and {"steps", "batch_size"} <= set(section):
            section.update(steps=steps, ckpt_every=steps, precision=precision)
    return cfg


def _timed_generate(model: torch.nn.Module, samples: int, steps: int | None, precision: str, device: torch.device) -> float:
    """Seconds of one ``generate`` call of ``samples`` seeds under ``precision`` autocast."""
    dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        t0 = time.perf_counter()
        model.generate(list(range(samples)), steps)
        return time.perf_counter() - t0


def bench_track(config: dict, track: str, data: Path, steps: int, repeats: int, samples: int, device: torch.device) -> dict:
    """Training s/step per stage and sampling s per call, fp32 and bf16, for one track's models."""
    from diled import codecs, registry, stages
    from diled.config import track_view

    view = track_view(config, track)
    codec = codecs.for_track(track, view)
    dataset = view["data"]["dataset"]
    train_data = codec.training_data(data / track / f"{dataset}.npz")
    specs = registry.models(track, config=view)
    plan: list[tuple[str, str]] = []
    for spec in specs:
        plan += [p for p in registry.lineage(spec) if p not in plan]
    out: dict = {"training": {}, "sampling": {}}
    built: dict[tuple[str, str], torch.nn.Module] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, stage in plan:
            starts = registry.get(track, name).stage(stage).starts_from
            init = built[tuple(starts.split("/"))] if starts else None
            times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
            for r in range(repeats + 1):  # the first round warms both paths up (oneDNN builds its kernels on first use)
                for precision in PRECISIONS:
                    run_dir = Path(tmp) / f"{track}-{name}-{stage}-{precision}-{r}"
                    model, res, _ = stages.train_stage(track, name, stage, _with(view, name, steps, precision), train_data, run_dir,
                                                         device, init)
                    if r:
                        times[precision].append(res.wall_s / steps)
                    built[(name, stage)] = model
            row = {p: statistics.median(times[p]) for p in PRECISIONS}
            out["training"][f"{track}/{name}/{stage}"] = {**row, "ratio": row["fp32"] / row["bf16"], "steps": steps, "repeats": repeats}
            print(f"train {track}/{name}/{stage}: fp32 {row['fp32']:.3f} s/step, bf16 {row['bf16']:.3f} s/step, "
                  f"x{row['fp32'] / row['bf16']:.2f}", flush=True)
        for spec in specs:
            if not spec.can("generate"):
                continue
            model = built[(spec.name, spec.final_stage.name)].eval()
            for t in spec.steps(view)[:1] if spec.steps(view) else [None]:
                times = {p: [] for p in PRECISIONS}
                for r in range(repeats + 1):
                    for precision in PRECISIONS:
                        s = _timed_generate(model, samples, t, precision, device)
                        if r:
                            times[precision].append(s)
                row = {p: statistics.median(times[p]) for p in PRECISIONS}
                out["sampling"][f"{track}/{spec.name}/T{t}"] = {**row, "ratio": row["fp32"] / row["bf16"], "samples": samples}
                print(f"generate {track}/{spec.name} T={t}, {samples} samples: fp32 {row['fp32']:.2f} s, bf16 {row['bf16']:.2f} s, "
                      f"x{row['fp32'] / row['bf16']:.2f}", flush=True)
    return out


def markdown(result: dict) -> str:
    """The benchmark as the Markdown table benchmarks/README.md records."""
    lines = ["| what | fp32 | bf16 | fp32 / bf16 |", "| --- | --- | --- | --- |"]
    for track in result["tracks"].values():
        for key, row in track["training"].items():
            lines.append(f"| train {key} (s/step) | {row['fp32']:.3f} | {row['bf16']:.3f} | {row['ratio']:.2f}x |")
        for key, row in track["sampling"].items():
            lines.append(f"| generate {key}, {row['samples']} samples (s) | {row['fp32']:.2f} | {row['bf16']:.2f} | {row['ratio']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    from diled import config as cfgmod
    from diled import manifest
    from diled.hardware import resolve_device, setup_torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    ap.add_argument("--data", type=Path, default=Path("results/data"), help="the folder of <track>/<dataset>.npz (prepare_data's outputs)")
    ap.add_argument("--tracks", default="image,text,protein")
    ap.add_argument("--steps", type=int, default=6, help="training steps per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per precision (after one warm-up round)")
    ap.add_argument("--samples", type=int, default=16, help="samples per timed generate call")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    config = cfgmod.load_config(args.config)
    device = resolve_device("cpu")
    setup_torch(args.threads, device)
    result = {"kernels": kernels(), "threads": args.threads, "tracks": {}}
    print(json.dumps(result["kernels"]), flush=True)
    for track in args.tracks.split(","):
        result["tracks"][track] = bench_track(config, track, args.data, args.steps, args.repeats, args.samples, device)
    result["manifest"] = manifest.build(config, config.get("seed"), 0.0, benchmark="cpu_precision", argv=sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(markdown(result))


if __name__ == "__main__":
    main()
