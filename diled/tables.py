"""Table 6 (generation / reconstruction / interpolation FID) from per-(model, T) metric records."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

DISPLAY = {"ddim": "DDIM", "diffae": "DiffAE", "diled": "DiLED"}
COLUMNS = {"gen": "Gen FID", "rec": "Rec FID", "interp_0.2": "Interp FID (α=0.2)", "interp_0.4": "Interp FID (α=0.4)"}
RECON = {"lpips": "Rec LPIPS", "mse": "Rec MSE", "ssim": "Rec SSIM", "psnr": "Rec PSNR"}
HIGHER_IS_BETTER = {"Rec SSIM", "Rec PSNR"}
SHOWN = [*COLUMNS.values(), "Rec LPIPS", "Rec MSE", "Rec SSIM"]  # PSNR is in the CSV (it is a function of MSE)


def table6(records: Sequence[dict], root: str | Path) -> pd.DataFrame:
    """One row per (model, T) in the given order; manifest paths relative to ``root``."""
    rows = []
    for rec in records:
        man = rec["manifest"]
        rows.append({
            "model": DISPLAY.get(rec["model"], rec["model"]),
            "T": rec["steps"],
            **{label: round(rec["fid"][key], 4) if key in rec["fid"] else float("nan") for key, label in COLUMNS.items()},
            **{label: round(rec["recon"][key], 5) if key in rec.get("recon", {}) else float("nan") for key, label in RECON.items()},
            "samples": rec["counts"]["gen"],
            "reference": rec["reference_count"],
            "protocol": f"{rec['protocol']['name']}:{rec['protocol']['digest']}",
            "config_sha256": man["config_sha256"][:16],
            "commit": man["git"]["commit"][:12],
            "seed": man["seed"],
            "manifest": os.path.relpath(rec["_path"], root),
        })
    return pd.DataFrame(rows)


def load_records(paths: Sequence[str | Path]) -> list[dict]:
    """Metric records with their own path attached (for the manifest column)."""
    out = []
    for p in paths:
        rec = json.loads(Path(p).read_text())
        rec["_path"] = str(p)
        out.append(rec)
    return out


def to_markdown(df: pd.DataFrame, notes: Sequence[str]) -> str:
    """Markdown: best value per T in bold, then the notes that say what each number is computed from."""
    shown = df.copy()
    for label in SHOWN:
        best = df.groupby("T")[label].transform("max" if label in HIGHER_IS_BETTER else "min")
        fmt = "{:.2f}" if label in COLUMNS.values() else "{:.4f}"
        shown[label] = [f"**{fmt.format(v)}**" if v == b else fmt.format(v) for v, b in zip(df[label], best)]
    cols = ["model", "T", *SHOWN, "manifest"]
    lines = ["# Table 6 (embedded reproduction): generation, reconstruction and interpolation FID", ""]
    lines.append(shown[cols].to_markdown(index=False))
    lines += ["", "FID, LPIPS and MSE: lower is better; SSIM: higher is better. Bold marks the best model at each T.", ""]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
