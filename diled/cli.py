"""``diled`` command line: the pieces of the workflow a user may want on their own.

    diled weights [NAME ...]               resolve and verify pretrained weights (offline-capable)
    diled data OUT.npz                     prepare the embedded MNIST-32 dataset and its card
    diled fid --protocol P GEN REF         FID of GEN against REF as JSON (with the protocol's hash)
    diled fid-stats --protocol P SRC OUT   feature statistics of SRC, tagged with the protocol
    diled protocols                        the FID protocol presets and their hashes
    diled info                             what a manifest would record about this machine
    diled hardware [--reprobe]             bf16 features, the timing probe's fp32/bf16 ratios and what `auto` picks

GEN, REF and SRC are image folders, .npy/.npz/.pt image arrays (uint8, or float in [-1, 1]), or
.npz statistics (from fid-stats; for the adm protocol also guided-diffusion reference batches).
Any bad input ends with a one-line message naming it, exit status 2, no traceback and no output file.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import NoReturn


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
    if args.sample_count is not None:
        protocol = protocol.variant(name=protocol.name, sample_count=args.sample_count)
    if args.reference_sha256:
        protocol = protocol.variant(name=protocol.name, reference_sha256=args.reference_sha256)
    return protocol


def _check_output(out: str, inputs: list[str]) -> None:
    """Before any work: ``out`` is none of the ``inputs`` (the same path, a hard link or a symlink to one, or a path
    inside an input folder), and a file can be created beside it; each failure is a ``ValueError`` naming ``out``."""
    import os

    from diled.fileio import partial_name

    target = Path(out)
    for src in map(Path, inputs):
        if not src.exists():
            continue  # the input's own check names it
        if target.resolve() == src.resolve() or (target.exists() and os.path.samefile(target, src)):
            raise ValueError(f"{out}: this output is the input {src} (the same file, a hard link or a symlink to it); writing it "
                             "would destroy the input: choose another output path")
        if src.is_dir() and target.resolve().is_relative_to(src.resolve()):
            raise ValueError(f"{out}: this output lies inside the input folder {src}; write it elsewhere")
    if target.is_dir():
        raise ValueError(f"{out}: is a folder; the output is a file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe = partial_name(target)
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"{out}: cannot be written ({exc.strerror or exc})") from None


def _write_output(out: str, write) -> None:
    """``write(tmp)`` into a temporary beside ``out``, then renamed to it; a failure (disk full, read-only) names ``out``."""
    from diled.fileio import atomic_path

    try:
        with atomic_path(out) as tmp:
            write(tmp)
    except OSError as exc:
        raise ValueError(f"{out}: could not be written ({exc.strerror or exc}); nothing was left there") from None


def _fid(args: argparse.Namespace) -> int:
    from diled.manifest import dumps
    from diled.metrics import fid

    if args.out:
        _check_output(args.out, [args.gen, args.ref])
    result = fid.fid(args.gen, args.ref, _protocol(args), _device(args), args.batch_size)
    text = dumps(result)
    if args.out:
        _write_output(args.out, lambda tmp: Path(tmp).write_text(text + "\n"))
    print(text)
    return 0


def _fid_stats(args: argparse.Namespace) -> int:
    from diled.metrics import fid

    if not args.out.endswith(".npz"):
        raise ValueError(f"{args.out}: statistics files end in .npz")
    _check_output(args.out, [args.src])
    protocol = _protocol(args)
    stats = fid.statistics(args.src, protocol, _device(args), args.batch_size, desc="fid-stats", role=args.role)
    _write_output(args.out, stats.save)
    print(json.dumps({"out": args.out, "count": stats.count, "protocol": protocol.name, "protocol_digest": protocol.digest,
                      "content_sha256": stats.manifest["content_sha256"]}, indent=2))
    return 0


def _device(args: argparse.Namespace):
    """The --device, checked before any work (also when every feature would come from the cache)."""
    from diled.hardware import resolve_device

    return resolve_device(args.device)


def _protocols(args: argparse.Namespace) -> int:
    from diled.metrics import protocols

    print(json.dumps({name: {**p.record(), "digest": p.digest} for name, p in protocols.PRESETS.items()}, indent=2))
    return 0


def _data(args: argparse.Namespace) -> int:
    from diled.modalities.image import mnist

    card = mnist.prepare(args.out, args.reference_size, args.seed)
    mnist.write_card(card, Path(args.out).with_suffix(".card.md"))
    print(json.dumps({k: card[k] for k in ("file", "sha256", "split")}, indent=2))
    return 0


def _info(args: argparse.Namespace) -> int:
    from diled import manifest

    print(json.dumps({"git": manifest.git_state(), "packages": manifest.package_versions(), "hardware": manifest.hardware()}, indent=2))
    return 0


def _hardware(args: argparse.Namespace) -> int:
    import torch

    from diled import hardware

    torch.set_num_threads(args.threads)
    native = hardware.native_bf16_features()
    probe = hardware.precision_probe(refresh=args.reprobe) if native else None
    auto = {f"{track}/{mode}": hardware.choose_precision("auto", "cpu", track, mode) for track, mode in hardware.WORKLOAD}
    print(json.dumps({"cpu_model": hardware.cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "native_bf16": list(native), "threads": args.threads, "probe": probe,
                      "auto": {k: {"precision": c["precision"], "reason": c["reason"]} for k, c in auto.items()}}, indent=2))
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``diled fid: error: ...``) with exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"diled: warning: {message}", file=sys.stderr)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("diled")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``diled`` console script."""
    parser = _Parser(prog="diled", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"diled {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
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
        p.add_argument("--sample-count", type=_positive, help="score only the first N generated images (N >= 2)")
        p.add_argument("--reference-sha256", help="pin the precomputed reference .npz (adm)")
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
        p.add_argument("--batch-size", type=_positive, default=50)
        p.set_defaults(fn=fn)
    p = sub.add_parser("protocols", help="FID protocol presets and their hashes")
    p.set_defaults(fn=_protocols)
    p = sub.add_parser("data", help="prepare the embedded MNIST-32 dataset")
    p.add_argument("out", help="output .npz path")
    p.add_argument("--reference-size", type=_positive, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_data)
    p = sub.add_parser("info", help="machine, packages and commit, as a manifest records them")
    p.set_defaults(fn=_info)
    p = sub.add_parser("hardware", help="bf16 features, the fp32/bf16 timing probe and what precision `auto` picks per track")
    p.add_argument("--reprobe", action="store_true", help="measure again and replace the cached probe of this machine")
    p.add_argument("--threads", type=_positive, default=1, help="torch threads to probe with (the cache is per thread count)")
    p.set_defaults(fn=_hardware)
    args = parser.parse_args(argv)
    from zipfile import BadZipFile

    from PIL import Image

    input_errors = (ValueError, RuntimeError, OSError, EOFError, BadZipFile, Image.DecompressionBombError, RecursionError)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            return args.fn(args)
        except MemoryError:
            paths = [str(getattr(args, k)) for k in ("gen", "ref", "src", "out") if getattr(args, k, None)]
            print(f"diled {args.command}: error: out of memory while working on {', '.join(paths) or 'the inputs'}; lower "
                  "--batch-size, or pass the images as a folder (streamed)", file=sys.stderr)
            return 2
        except input_errors as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            if len(message) > 2000:  # a message quoting a huge value is cut, not echoed whole
                message = message[:2000] + f" ... ({len(message) - 2000} more characters)"
            print(f"diled {args.command}: error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"diled {args.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
