"""FID feature extraction: ours (``diled.metrics.fid``, protocol ``pytorch-fid``) against stock pytorch-fid.

Same PNG folder, same weights, same torch threads, same batch size, in one process, alternating
(stock, ours, stock, ours, ...) so machine noise hits both alike. Stock is pytorch-fid's own
``compute_statistics_of_path`` with its ``InceptionV3`` (``num_workers=0``: 32 px PNGs decode in
microseconds, so loader workers would only add process start-up). Ours is ``fid.statistics`` with the
feature cache off. Both FIDs are computed against the same reference statistics; the report gives the
wall times, the speed-up (median of the paired ratios) and |dFID|.

    python benchmarks/fid_extraction.py --images 500 --repeats 3 --out /tmp/fid_bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics as stats
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch


def _folders(root: Path, n: int) -> tuple[Path, Path]:
    """n real MNIST digits (the embedded data's source) as PNGs, and n others as the reference."""
    from diled.metrics import images
    from diled.modalities.image import mnist

    x = mnist.pad32(mnist.load_source()[0][: 2 * n])[:, None]
    images.save_folder(x[:n], root / "gen")
    images.save_folder(x[n:], root / "ref")
    return root / "gen", root / "ref"


def _stock_model() -> torch.nn.Module:
    import pytorch_fid.inception as pfi

    from diled import weights

    state = torch.load(weights.resolve(weights.FID_INCEPTION), map_location="cpu", weights_only=True)
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: state):
        return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500, help="images per folder")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3, help="paired (stock, ours) runs")
    parser.add_argument("--out", help="write the report here as JSON")
    args = parser.parse_args(argv)

    from pytorch_fid.fid_score import compute_statistics_of_path

    from diled import manifest
    from diled.metrics import fid

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        gen, ref = _folders(Path(tmp), args.images)
        stock_net = _stock_model()
        ref_stats = fid.statistics(ref, fid.PYTORCH_FID, cache=False, role="reference")
        # warm-up: build our network and let both pick their kernels on one batch
        compute_statistics_of_path(str(ref), stock_net, args.batch_size, 2048, "cpu", 0)
        fid.statistics(ref, fid.PYTORCH_FID, cache=False, role="reference")
        runs = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            mu, sigma = compute_statistics_of_path(str(gen), stock_net, args.batch_size, 2048, "cpu", 0)
            t_stock = time.perf_counter() - t0
            t0 = time.perf_counter()
            ours = fid.statistics(gen, fid.PYTORCH_FID, batch_size=args.batch_size, cache=False)
            t_ours = time.perf_counter() - t0
            runs.append({"stock_s": round(t_stock, 3), "ours_s": round(t_ours, 3), "ratio": round(t_stock / t_ours, 3)})
            print(f"run {r + 1}: stock {t_stock:.2f} s, ours {t_ours:.2f} s, {t_stock / t_ours:.2f}x", flush=True)
        stock = fid.Statistics(mu, sigma, args.images, fid.PYTORCH_FID.digest, "stock pytorch-fid")
        fid_stock, fid_ours = fid.frechet_distance(stock, ref_stats), fid.frechet_distance(ours, ref_stats)
    report = {
        "images": args.images, "batch_size": args.batch_size, "torch_threads": args.threads,
        "runs": runs, "speedup_median": round(stats.median(r["ratio"] for r in runs), 3),
        "images_per_s": {"stock": round(args.images / stats.median(r["stock_s"] for r in runs), 2),
                         "ours": round(args.images / stats.median(r["ours_s"] for r in runs), 2)},
        "fid": {"stock": fid_stock, "ours": fid_ours, "abs_diff": abs(fid_stock - fid_ours)},
        "max_abs_mu_diff": float(np.abs(stock.mu - ours.mu).max()),
        "hardware": manifest.hardware(), "packages": manifest.package_versions(), "git": manifest.git_state(),
    }
    print(json.dumps({k: report[k] for k in ("speedup_median", "images_per_s", "fid", "max_abs_mu_diff")}, indent=2))
    if args.out:
        manifest.write_json(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
