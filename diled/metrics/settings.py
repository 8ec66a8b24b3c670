"""The FID-settings comparison: one fixed image set scored under every preset and one factor at a time.

The rebuttal's point (one set of samples at FID 5.82, 6.56 or 7.01 depending only on the evaluation
setting) as a reproducible table. ``SETTINGS`` is the list of rows: the four presets, and a
one-factor-at-a-time breakdown around ``pytorch-fid`` (resize kernel, reference set, resolution,
sample count, quantization), each a ``FIDProtocol`` plus which reference images it scores against.
Rows whose protocol equals a preset's are computed once and shown in both groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from diled.metrics.protocols import ADM, CLEAN_FID, PYTORCH_FID, FIDProtocol, get_protocol

if TYPE_CHECKING:  # the row list is read when Snakemake parses the DAG: no pandas or matplotlib there
    import pandas as pd


@dataclass(frozen=True)
class Setting:
    """One row job: a key (file name), the factor it changes, and its protocol."""

    key: str
    factor: str  # "base", or the one factor changed relative to pytorch-fid
    change: str  # human-readable value of that factor
    protocol: FIDProtocol
    presets: tuple[str, ...] = ()  # preset names whose numbers this row also is
    after: str | None = None  # row whose cached features this one reuses (run it first)


def settings(num_samples: int, downscale: int) -> list[Setting]:
    """The rows for a fixed set of ``num_samples`` images; ``downscale`` plays the rebuttal's 128 px."""
    half = num_samples // 2
    return [
        Setting("base", "base", "pytorch-fid: native resolution, torch bilinear, round, held-out reference, all samples",
                PYTORCH_FID, presets=("pytorch-fid",)),
        Setting("resize-tf1", "resize kernel", "TF1 bilinear (torch-fidelity)", PYTORCH_FID.variant(resize="tf1-bilinear")),
        Setting("resize-pil", "resize kernel", "PIL bicubic (clean-fid)", CLEAN_FID, presets=("clean-fid",)),
        Setting("reference-train", "reference set", "training-split images instead of held-out",
                PYTORCH_FID.variant(reference_set="train"), after="base"),
        Setting("resolution", "resolution", f"downscaled to {downscale} px first", get_protocol(f"pytorch-fid@{downscale}"),
                presets=(f"pytorch-fid@{downscale}",)),
        Setting("samples-half", "sample count", f"first {half} of {num_samples} samples", PYTORCH_FID.variant(sample_count=half)),
        Setting("quantization", "quantization", "truncate instead of round", PYTORCH_FID.variant(quantization="truncate")),
        Setting("adm", "preset", "adm: TF1 Inception pipeline, precomputed reference .npz", ADM, presets=("adm",),
                after="resize-tf1"),
    ]


def table(rows: Sequence[dict]) -> pd.DataFrame:
    """Preset rows, then one-factor rows, with the change relative to the base row."""
    import pandas as pd

    by_key = {r["key"]: r for r in rows}
    base = by_key["base"]["fid"]
    out = []
    preset_order = ["pytorch-fid", *[p for r in rows for p in r["presets"] if p.startswith("pytorch-fid@")], "adm", "clean-fid"]
    for name in preset_order:
        r = next(r for r in rows if name in r["presets"])
        out.append({**_row("preset", name, r, base), "protocol": f"{name}:{r['protocol_digest']}"})
    for r in rows:
        if r["factor"] not in ("base", "preset"):
            out.append(_row(f"one factor: {r['factor']}", r["change"], r, base))
    return pd.DataFrame(out)


def _row(group: str, setting: str, r: dict, base: float) -> dict:
    return {
        "group": group,
        "setting": setting,
        "FID": round(r["fid"], 3),
        "Δ vs pytorch-fid": round(r["fid"] - base, 3),
        "Δ %": round(100 * (r["fid"] - base) / base, 1),
        "generated": r["counts"]["generated"],
        "reference": r["counts"]["reference"],
        "protocol": f"{r['protocol']}:{r['protocol_digest']}",
        "record": r["_path"],
    }
