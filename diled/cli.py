"""``diled`` command line: the pieces of the workflow a user may want on their own.

    diled weights                  resolve and verify the FID Inception weights (offline-capable)
    diled data OUT.npz             prepare the embedded MNIST-32 dataset and its card
    diled info                     what a manifest would record about this machine
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _weights(args: argparse.Namespace) -> int:
    from diled import weights

    path = weights.resolve(weights.FID_INCEPTION, allow_network=not args.offline_only)
    print(json.dumps({"artifact": weights.FID_INCEPTION.name, "path": str(path), "tensor_digest": weights.FID_INCEPTION.tensor_digest}, indent=2))
    return 0


def _data(args: argparse.Namespace) -> int:
    from diled.data import mnist

    card = mnist.prepare(args.out, args.reference_size, args.seed)
    mnist.write_card(card, Path(args.out).with_suffix(".card.md"))
    print(json.dumps({k: card[k] for k in ("file", "sha256", "split")}, indent=2))
    return 0


def _info(args: argparse.Namespace) -> int:
    from diled import manifest

    print(json.dumps({"git": manifest.git_state(), "packages": manifest.package_versions(), "hardware": manifest.hardware()}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``diled`` console script."""
    parser = argparse.ArgumentParser(prog="diled", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("weights", help="resolve and verify the FID Inception weights")
    p.add_argument("--offline-only", action="store_true", help="use only the cache (no download)")
    p.set_defaults(fn=_weights)
    p = sub.add_parser("data", help="prepare the embedded MNIST-32 dataset")
    p.add_argument("out", help="output .npz path")
    p.add_argument("--reference-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_data)
    p = sub.add_parser("info", help="machine, packages and commit, as a manifest records them")
    p.set_defaults(fn=_info)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"diled {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
