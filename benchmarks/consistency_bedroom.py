"""Sample OpenAI's released Bedroom consistency model (the paper's Table 6 consistency row) into a uint8 .npz.

    python benchmarks/consistency_bedroom.py --out results/bedroom128/cm/samples.npz --num 50000 [--start 0 --stop 5000]

Needs ``pip install -e '.[paper]'`` (diffusers) and the model (``--model``: the hub id, or a downloaded folder).
Rows ``start..stop`` of the ``num`` are written (one job per shard; sample i is seeded by i alone), with a manifest
beside the file. Score them with ``diled fid --protocol pytorch-fid OUT.npz REFERENCE`` or as ``fid_settings.images``
of config/lsun_fid_settings.yaml (the rebuttal's three FID settings on one set of samples).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baselines.released_cm import MODEL_ID, TIMESTEPS, ReleasedConsistency  # noqa: E402
from diled import manifest  # noqa: E402
from diled.diffusion import derive_seed  # noqa: E402
from diled.fileio import atomic_path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--num", type=int, default=50000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--stop", type=int, default=None)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=MODEL_ID)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    stop = args.num if args.stop is None else args.stop
    if not 0 <= args.start < stop <= args.num:
        ap.error(f"rows {args.start}..{stop} must lie within 0..{args.num}")
    t0 = time.perf_counter()
    model = ReleasedConsistency.from_pretrained(args.model, args.device, size=args.size)
    rows = range(args.start, stop)
    images = [model.generate([derive_seed(args.seed, "gen", i) for i in rows[j : j + args.batch]])
              for j in tqdm(range(0, len(rows), args.batch), desc="consistency samples")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, arr_0=np.concatenate(images))  # the guided-diffusion layout every FID tool of the suite reads
    info = {"model": args.model, "timesteps": list(TIMESTEPS), "size": args.size, "rows": [args.start, stop], "seed": args.seed,
            "wall_s": round(time.perf_counter() - t0, 1), "images_per_s": round(len(rows) / (time.perf_counter() - t0), 2)}
    manifest.write_json(manifest.build({"consistency_bedroom": vars(args) | {"out": str(args.out)}}, args.seed, time.perf_counter() - t0,
                                       **info), args.out.with_suffix(".json"))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
