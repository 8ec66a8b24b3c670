"""``diled`` command line: the pieces of the workflow a user may want on their own.

    diled weights [NAME ...]               resolve and verify pretrained weights (offline-capable)
    diled data OUT.npz                     prepare the embedded MNIST-32 dataset and its card
    diled fid --protocol P GEN REF         FID of GEN against REF as JSON (with the protocol's hash)
    diled fid-stats --protocol P SRC OUT   feature statistics of SRC, tagged with the protocol
    diled protocols                        the FID protocol presets and their hashes
    diled info                             what a manifest would record about this machine

GEN, REF and SRC are image folders, .npy/.npz/.pt image arrays (uint8, or float in [-1, 1]), or
.npz statistics (from fid-stats; for the adm protocol also guided-diffusion reference batches).
Any bad input ends with a message naming it, exit status 2, and no output file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _weights(args: argparse.Namespace) -> int:
    from diled import weights

    names = args.names or list(weights.REGISTRY)
    unknown = sorted(set(names) - set(weights.REGISTRY))
    if unknown:
        raise ValueError(f"unknown artifacts {unknown}; known: {sorted(weights.REGISTRY)}")
    out = []
    for name in names:
        art = weights.REGISTRY[name]
        path = weights.resolve(art, allow_network=not args.offline_only)
        out.append({"artifact": art.name, "path": str(path), "tensor_digest": art.tensor_digest})
    print(json.dumps(out, indent=2))
    return 0


def _protocol(args: argparse.Namespace):
    from diled.metrics import fid

    protocol = fid.get_protocol(args.protocol)
    if args.sample_count:
        protocol = protocol.variant(name=protocol.name, sample_count=args.sample_count)
    if args.reference_sha256:
        protocol = protocol.variant(name=protocol.name, reference_sha256=args.reference_sha256)
    return protocol


def _fid(args: argparse.Namespace) -> int:
    from diled.files import atomic_path
    from diled.metrics import fid

    result = fid.fid(args.gen, args.ref, _protocol(args), args.device, args.batch_size)
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:
        with atomic_path(args.out) as tmp:
            Path(tmp).write_text(text + "\n")
    print(text)
    return 0


def _fid_stats(args: argparse.Namespace) -> int:
    from diled.metrics import fid

    if not args.out.endswith(".npz"):
        raise ValueError(f"{args.out}: statistics files end in .npz")
    protocol = _protocol(args)
    stats = fid.statistics(args.src, protocol, args.device, args.batch_size, desc="fid-stats", role=args.role)
    stats.save(args.out)
    print(json.dumps({"out": args.out, "count": stats.count, "protocol": protocol.name, "protocol_digest": protocol.digest,
                      "content_sha256": stats.manifest["content_sha256"]}, indent=2))
    return 0


def _protocols(args: argparse.Namespace) -> int:
    from diled.metrics import protocols

    print(json.dumps({name: {**p.record(), "digest": p.digest} for name, p in protocols.PRESETS.items()}, indent=2))
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
    p = sub.add_parser("weights", help="resolve and verify pretrained weights (default: all)")
    p.add_argument("names", nargs="*", help="artifact names (fid-inception, torch-fidelity-inception, lpips-alexnet, lpips-vgg16)")
    p.add_argument("--offline-only", action="store_true", help="use only the cache (no download)")
    p.set_defaults(fn=_weights)
    for name, fn, helptext in [("fid", _fid, "FID of GEN against REF under a named protocol"),
                               ("fid-stats", _fid_stats, "feature statistics of SRC under a named protocol")]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--protocol", required=True, help="preset name, optionally with @R (see `diled protocols`)")
        if name == "fid":
            p.add_argument("gen", help="generated images: folder, image array file or statistics .npz")
            p.add_argument("ref", help="reference images: folder, image array file or statistics .npz")
            p.add_argument("--out", help="also write the JSON result here")
        else:
            p.add_argument("src", help="images: folder or image array file")
            p.add_argument("out", help="statistics .npz to write")
            p.add_argument("--role", choices=["generated", "reference"], default="reference",
                           help="generated sets honour the protocol's sample count; reference sets are used whole")
        p.add_argument("--sample-count", type=int, help="score only the first N generated images")
        p.add_argument("--reference-sha256", help="pin the precomputed reference .npz (adm)")
        p.add_argument("--device", default="cpu")
        p.add_argument("--batch-size", type=int, default=50)
        p.set_defaults(fn=fn)
    p = sub.add_parser("protocols", help="FID protocol presets and their hashes")
    p.set_defaults(fn=_protocols)
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
