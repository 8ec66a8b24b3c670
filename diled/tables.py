"""Table 6 (generation / reconstruction / interpolation FID) from per-(model, T) metric records."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from diled import registry

COLUMNS = {"gen": "Gen FID", "rec": "Rec FID", "interp_0.2": "Interp FID (α=0.2)", "interp_0.4": "Interp FID (α=0.4)"}
RECON = {"lpips": "Rec LPIPS", "mse": "Rec MSE", "ssim": "Rec SSIM", "psnr": "Rec PSNR"}
HIGHER_IS_BETTER = {"Rec SSIM", "Rec PSNR"}
SHOWN = [*COLUMNS.values(), "Rec LPIPS", "Rec MSE", "Rec SSIM"]  # PSNR is in the CSV (it is a function of MSE)


def display(track: str, name: str) -> str:
    """The registry's display name of a model or variant (a variant shows as its base model)."""
    try:
        return registry.get(track, name).display
    except KeyError:
        return name


def per_step_models(track: str = "image") -> list[str]:
    """Display names the bold rule compares at each step count (the registry's ``bold_per_step``)."""
    return [s.display for s in registry.models(track) if s.bold_per_step]


def table6(records: Sequence[dict], root: str | Path) -> pd.DataFrame:
    """One row per (model, T) in the given order; manifest paths relative to ``root``."""
    rows = []
    for rec in records:
        man = rec["manifest"]
        rows.append({
            "model": display(rec.get("track", "image"), rec["model"]),
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


# Rows of the paper's Table 6 this suite does not (yet) compute: shown, never filled with numbers.
NOT_RUN = {
    "NVAE": "hierarchical VAE baseline: not implemented in this suite",
    "StyleGAN-XL": "GAN baseline (no encoder): not implemented in this suite",
}


def with_not_run(df: pd.DataFrame, not_run: dict[str, str] = NOT_RUN) -> pd.DataFrame:
    """Append one row per model in ``not_run``: no T, every metric NaN, ``status`` says why."""
    run = df.assign(status="run")
    extra = pd.DataFrame([{"model": m, "T": pd.NA, "status": f"not run: {why}"} for m, why in not_run.items()])
    out = pd.concat([run, extra], ignore_index=True)
    out["T"] = out["T"].astype("Int64")
    return out


def bold_mask(df: pd.DataFrame, columns: Sequence[str] = SHOWN, per_step: Sequence[str] | None = None) -> pd.DataFrame:
    """Which cells are bold, as the paper's authors described it.

    Among the models with a configurable T (``per_step``, default the registry's ``bold_per_step``
    models: DDIM, DiffAE, DiLED), the best value at each T. Any other row (LDM at each T, CM-CD's 1/2-step rows) is bold where it beats every T-group row
    at every T (better than their overall best).
    """
    mask = pd.DataFrame(False, index=df.index, columns=list(columns))
    in_group = df["model"].isin(per_step_models() if per_step is None else per_step) & df["T"].notna()
    for col in columns:
        higher = col in HIGHER_IS_BETTER
        vals = df[col].astype(float)
        for idx in df[in_group].groupby("T").groups.values():
            group = vals.loc[idx].dropna()
            if len(group):
                best = group.max() if higher else group.min()
                mask.loc[group.index[group == best], col] = True
        t_vals = vals[in_group].dropna()
        for i in df.index[~in_group]:
            v = vals[i]
            if pd.notna(v) and len(t_vals) and (v > t_vals.max() if higher else v < t_vals.min()):
                mask.loc[i, col] = True
    return mask


def _cells(df: pd.DataFrame, bold: str) -> pd.DataFrame:
    """Formatted cells: numbers (bold where ``bold_mask`` says), "not run" / "n/a" otherwise."""
    mask = bold_mask(df)
    shown = df.copy().astype(object)
    for col in SHOWN:
        fmt = "{:.2f}" if col in COLUMNS.values() else "{:.4f}"
        for i in df.index:
            v = df.at[i, col]
            if pd.isna(v):
                shown.at[i, col] = "not run" if str(df.at[i, "status"]).startswith("not run") else "n/a"
            else:
                text = fmt.format(v)
                shown.at[i, col] = bold.format(text) if mask.at[i, col] else text
    shown["T"] = ["—" if pd.isna(t) else str(t) for t in df["T"]]
    return shown


def markdown(shown: pd.DataFrame, title: str, notes: Sequence[str] = (), lead: str = "") -> str:
    """A titled Markdown table, an optional lead paragraph, then the notes as bullets."""
    lines = [f"# {title}", "", shown.to_markdown(index=False)]
    if lead:
        lines += ["", lead]
    lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def latex(shown: pd.DataFrame, caption: str, source: str) -> str:
    """A booktabs LaTeX table of the given cells (first two columns left-aligned, the rest right)."""
    cols = list(shown.columns)
    head = " & ".join(c.replace("α", "$\\alpha$") for c in cols)
    body = [" & ".join(str(shown.at[i, c]) for c in cols) + " \\\\" for i in shown.index]
    return "\n".join([
        f"% generated by the DiLED suite ({source}); do not edit",
        "\\begin{table}[t]", "\\centering", "\\small",
        f"\\begin{{tabular}}{{ll{'r' * (len(cols) - 2)}}}", "\\toprule", head + " \\\\", "\\midrule", *body,
        "\\bottomrule", "\\end{tabular}", f"\\caption{{{caption}}}", "\\end{table}", "",
    ])


def write_table(df: pd.DataFrame, *, title: str, notes: Sequence[str] = (), csv: str | Path | None = None,
                md: str | Path | None = None, tex: str | Path | None = None, shown: pd.DataFrame | None = None,
                lead: str = "", caption: str = "", source: str = "") -> None:
    """The one table writer: every column to CSV; ``shown`` (default: ``df``) to Markdown and LaTeX, atomically."""
    from diled.files import atomic_path

    shown = df if shown is None else shown
    if csv is not None:
        with atomic_path(csv) as tmp:
            df.to_csv(tmp, index=False)
    if md is not None:
        with atomic_path(md) as tmp:
            tmp.write_text(markdown(shown, title, notes, lead))
    if tex is not None:
        with atomic_path(tex) as tmp:
            tmp.write_text(latex(shown, caption, source))


TABLE6_TITLE = "Table 6 (embedded reproduction): generation, reconstruction and interpolation"
TABLE6_LEAD = ("FID, LPIPS and MSE: lower is better; SSIM: higher is better. Bold: the best of DDIM/DiffAE/DiLED at each T; "
               "any other row (LDM, CM-CD) is bold where it beats all of them at every T. CM-CD's T is its number of consistency steps.")


def write_table6(df: pd.DataFrame, notes: Sequence[str], csv: str | Path, md: str | Path, tex: str | Path, caption: str) -> None:
    """Table 6 as CSV, Markdown (bold per ``bold_mask``, "not run" rows with their reason) and LaTeX."""
    shown_md = _cells(df, "**{}**")
    shown_md["manifest"] = [m if isinstance(m, str) else "" for m in df["manifest"]]
    not_run = [f"{m}: {s}" for m, s in zip(df["model"], df["status"]) if str(s).startswith("not run")]
    write_table(df, title=TABLE6_TITLE, notes=[*not_run, *notes], csv=csv, md=md, lead=TABLE6_LEAD,
                shown=shown_md[["model", "T", *SHOWN, "manifest"]])
    shown_tex = _cells(df, "\\textbf{{{}}}")
    shown_tex["T"] = [t.replace("—", "--") for t in shown_tex["T"]]
    write_table(df, title=TABLE6_TITLE, tex=tex, shown=shown_tex[["model", "T", *SHOWN]], caption=caption,
                source="workflow/scripts/table6.py")


def training_cost(manifests: dict[str, dict]) -> pd.DataFrame:
    """Per stage: steps, parameters, seconds per step and wall time; per model: the sum over its lineage.

    ``manifests`` maps ``"<track>/<model>/<stage>"`` to the stage's job manifest; a model's total covers
    every stage it is trained from (image DiLED: DiffAE's two stages and its own), as the registry's
    lineage says.
    """
    rows = []
    for key, man in manifests.items():
        t = man["training"]
        track = key.split("/")[0]
        label = t["stage"] + "".join(f" ({k.rsplit('.', 1)[-1]} = {v:g})" for k, v in t.get("overrides", {}).items())
        rows.append({"track": track, "model": display(track, t["model"]), "stage": label, "file": key,
                     "steps": t["steps"], "parameters": t["parameters"], "ms/step": round(1e3 * t["s_per_step"], 1) if t["s_per_step"] is not None else float("nan"),
                     "train wall (s)": round(t["train_wall_s"], 1), "resumed from step": t["resumed_from_step"],
                     "torch threads": man["hardware"]["torch_threads"], "device": man["hardware"]["cuda"] or f"CPU ({man['hardware']['machine']})"})
    stages = pd.DataFrame(rows)
    totals = []
    for spec in [s for track in dict.fromkeys(stages["track"]) for s in registry.models(track)]:
        files = [f"{spec.track}/{m}/{s}" for m, s in registry.lineage(spec)]
        part = stages[stages["file"].isin(files)]
        if set(files) - set(part["file"]):
            continue
        totals.append({"track": spec.track, "model": spec.display,
                       "stage": "total (" + " + ".join(f.split("/", 1)[1] for f in files) + ")", "file": "",
                       "steps": int(part["steps"].sum()), "parameters": int(part["parameters"].iloc[-1]),
                       "ms/step": float("nan"), "train wall (s)": round(float(part["train wall (s)"].sum()), 1),
                       "resumed from step": int(part["resumed from step"].max()), "torch threads": None, "device": ""})
    return pd.concat([stages, pd.DataFrame(totals)], ignore_index=True)


def w_ablation(records: Sequence[dict], probe_accuracy: Sequence[float], ws: Sequence[float]) -> pd.DataFrame:
    """One row per w: generation / reconstruction / interpolation FID (one T), reconstruction LPIPS and probe accuracy."""
    rows = []
    for rec, acc, w in zip(records, probe_accuracy, ws):
        rows.append({"w": float(w), "T": rec["steps"],
                     **{label: round(rec["fid"][key], 4) for key, label in COLUMNS.items() if key in rec["fid"]},
                     "Rec LPIPS": round(rec["recon"]["lpips"], 5), "Probe accuracy": round(acc, 4),
                     "samples": rec["counts"]["gen"], "reference": rec["reference_count"], "model file": rec["model"]})
    return pd.DataFrame(rows).sort_values("w", ignore_index=True)
