"""The one table writer (CSV, Markdown, LaTeX with notes) and the image track's tables: Table 6 (generation / reconstruction /
interpolation FID) with its notes and caption, latent health, training cost, the w ablation, from per-(model, T) metric records."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from diled import convergence, registry

COLUMNS = {"gen": "Gen FID", "rec": "Rec FID (random)", "rec_inverted": "Rec FID (inverted)",
           "interp_0.2": "Interp FID (α=0.2)", "interp_0.4": "Interp FID (α=0.4)"}
KID_COLUMNS = {key: label.replace("FID", "KID") for key, label in COLUMNS.items()}
RECON = {"lpips": "Rec LPIPS", "mse": "Rec MSE", "ssim": "Rec SSIM", "psnr": "Rec PSNR"}
PROTOCOLS = ("random", "inverted")  # reconstruction protocols (diled.model.RECON_PROTOCOLS)
HIGHER_IS_BETTER = {f"Rec {m} ({p})" for m in ("SSIM", "PSNR") for p in PROTOCOLS}
SHOWN = [*COLUMNS.values(), *(f"Rec {m} ({p})" for m in ("LPIPS", "SSIM") for p in PROTOCOLS)]  # MSE, PSNR, KID: in the CSV
Z95 = 1.959964  # two-sided 95% normal quantile: reconstruction metrics' intervals are mean +- Z95 * sem


def display(track: str, name: str) -> str:
    """The registry's display name of a model or variant (a variant shows as its base model)."""
    try:
        return registry.get(track, name).display
    except KeyError:
        return name


def per_step_models(track: str = "image") -> list[str]:
    """Display names the bold rule compares at each step count (the registry's ``bold_per_step``)."""
    return [s.display for s in registry.models(track) if s.bold_per_step]


def _rec_sources(rec: dict) -> dict[str, tuple[str, str] | None]:
    """Which set (FID key, recon-metric key) of a record fills each reconstruction protocol's columns.

    A model's plain ``rec`` realizes the protocols of its registry entry (``rec_protocols``): DDIM's is an
    inversion, LDM's deterministic decoder makes both one, DiffAE/DiLED's is ``random`` and their
    ``rec_inverted`` set is the other.
    """
    try:
        native = registry.get(rec.get("track", "image"), rec["model"]).rec_protocols
    except KeyError:  # a variant (diled_w0.5) reconstructs as its base model
        native = ("random",)
    out = {}
    for protocol in PROTOCOLS:
        if protocol == "inverted" and "rec_inverted" in rec["fid"]:
            out[protocol] = ("rec_inverted", "recon_inverted")
        else:
            out[protocol] = ("rec", "recon") if protocol in native and "rec" in rec["fid"] else None
    return out


def table6(records: Sequence[dict], root: str | Path) -> pd.DataFrame:
    """One row per (model, T) in the given order: FID with interval, KID with std, reconstruction metrics per
    protocol with standard errors; manifest paths relative to ``root``."""
    rows = []
    for rec in records:
        man = rec["manifest"]
        sources = _rec_sources(rec)
        keys = {"gen": "gen", "interp_0.2": "interp_0.2", "interp_0.4": "interp_0.4",
                "rec": (sources["random"] or (None,))[0], "rec_inverted": (sources["inverted"] or (None,))[0]}
        row = {"model": display(rec.get("track", "image"), rec["model"]), "T": rec["steps"]}
        nan = float("nan")
        for col, label in COLUMNS.items():
            key = keys[col]
            ci = rec.get("fid_interval", {}).get(key, {})
            kid = rec.get("kid", {}).get(key, {})
            row[label] = round(rec["fid"][key], 4) if key in rec["fid"] else nan
            row[f"{label} lo"], row[f"{label} hi"] = round(ci.get("lo", nan), 4), round(ci.get("hi", nan), 4)
            row[KID_COLUMNS[col]] = round(kid.get("mean", nan), 6)
            row[f"{KID_COLUMNS[col]} std"] = round(kid.get("std", nan), 6)
        for protocol, source in sources.items():
            metrics = rec.get(source[1], {}) if source else {}
            for key, label in RECON.items():
                row[f"{label} ({protocol})"] = round(metrics.get(key, nan), 5)
                row[f"{label} ({protocol}) sem"] = round(metrics.get(f"{key}_sem", nan), 5)
        rows.append({
            **row,
            "samples": rec["counts"]["gen"],
            "reference": rec["reference_count"],
            "protocol": f"{rec['protocol']['name']}:{rec['protocol']['digest']}",
            "config_sha256": man["config_sha256"][:16],
            "commit": man["git"]["commit"][:12],
            "seed": man["seed"],
            "manifest": os.path.relpath(rec["_path"], root),
        })
    return pd.DataFrame(rows)


def load_stage_manifests(paths: Sequence[str | Path]) -> dict[str, dict]:
    """Training manifests (``models/<track>/<model>/<stage>.json``) keyed ``"<track>/<model>/<stage>"``, as
    ``training_cost`` takes them."""
    return {f"{Path(p).parents[1].name}/{Path(p).parent.name}/{Path(p).stem}": json.loads(Path(p).read_text()) for p in paths}


def load_records(paths: Sequence[str | Path]) -> list[dict]:
    """Metric records with their own path attached (for the manifest column)."""
    out = []
    for p in paths:
        rec = json.loads(Path(p).read_text())
        rec["_path"] = str(p)
        out.append(rec)
    return out


# Rows of the paper's Table 6 this suite does not (yet) compute: shown, never filled with numbers (a row that ran
# replaces its entry here: a registered model of that display name makes it a real row).
NOT_RUN = {
    "NVAE": "hierarchical VAE baseline: not in this config's image.models (baselines/nvae.py; the embedded default runs it)",
    "StyleGAN-XL": "GAN baseline (no encoder): not implemented in this suite",
}


def with_not_run(df: pd.DataFrame, not_run: dict[str, str] = NOT_RUN) -> pd.DataFrame:
    """Append one row per model in ``not_run`` that has no row of its own: no T, every metric NaN, ``status`` says why."""
    run = df.assign(status="run")
    ran = set(df["model"]) if "model" in df else set()
    extra = pd.DataFrame([{"model": m, "T": pd.NA, "status": f"not run: {why}"} for m, why in not_run.items() if m not in ran])
    out = pd.concat([run, extra], ignore_index=True)
    out["T"] = out["T"].astype("Int64")
    return out


def interval(df: pd.DataFrame, i, col: str) -> tuple[float, float] | None:
    """The noise band of a cell: FID's bootstrap interval, a reconstruction metric's mean +- 1.96 sem (None: none recorded)."""
    if f"{col} lo" in df:
        lo, hi = df.at[i, f"{col} lo"], df.at[i, f"{col} hi"]
    elif f"{col} sem" in df:
        v, sem = df.at[i, col], df.at[i, f"{col} sem"]
        lo, hi = v - Z95 * sem, v + Z95 * sem
    else:
        return None
    return None if pd.isna(lo) or pd.isna(hi) else (float(lo), float(hi))


def _clearly_better(df: pd.DataFrame, i, j, col: str) -> bool:
    """Cell i beats cell j by more than their noise: the two intervals do not overlap (no intervals: plain comparison)."""
    a, b = interval(df, i, col), interval(df, j, col)
    higher = col in HIGHER_IS_BETTER
    if a is None or b is None:
        vi, vj = float(df.at[i, col]), float(df.at[j, col])
        return vi > vj if higher else vi < vj
    return a[0] > b[1] if higher else a[1] < b[0]


def bold_mask(df: pd.DataFrame, columns: Sequence[str] = SHOWN, per_step: Sequence[str] | None = None) -> pd.DataFrame:
    """Which cells are bold: the authors' rule, made to respect noise.

    Among the models with a configurable T (``per_step``, default the registry's ``bold_per_step``
    models: DDIM, DiffAE, DiLED), the best value at each T, but only where it is clearly better than
    the runner-up (their intervals do not overlap: ``interval``). Any other row (LDM at each T, CM-CD's
    1/2-step rows) is bold where it is clearly better than every T-group row at every T.
    Cells without recorded intervals fall back to the plain comparison.
    """
    mask = pd.DataFrame(False, index=df.index, columns=list(columns))
    in_group = df["model"].isin(per_step_models() if per_step is None else per_step) & df["T"].notna()
    for col in columns:
        if col not in df:
            continue
        higher = col in HIGHER_IS_BETTER
        vals = df[col].astype(float)
        for idx in df[in_group].groupby("T").groups.values():
            group = vals.loc[idx].dropna().sort_values(ascending=not higher)
            if len(group) == 1 or (len(group) > 1 and _clearly_better(df, group.index[0], group.index[1], col)):
                mask.loc[group.index[0], col] = True
        peers = vals[in_group].dropna().index
        for i in df.index[~in_group]:
            if pd.notna(vals[i]) and len(peers) and all(_clearly_better(df, i, j, col) for j in peers):
                mask.loc[i, col] = True
    return mask


def _cells(df: pd.DataFrame, bold: str, pm: str = "±") -> pd.DataFrame:
    """Formatted cells: "value ± half-interval" (bold where ``bold_mask`` says), "not run" / "n/a" otherwise."""
    mask = bold_mask(df)
    shown = df.copy().astype(object)
    for col in SHOWN:
        fmt = "{:.2f}" if col in COLUMNS.values() else "{:.3f}"
        for i in df.index:
            v = df.at[i, col] if col in df else float("nan")
            if pd.isna(v):
                shown.at[i, col] = "not run" if str(df.at[i, "status"]).startswith("not run") else "n/a"
                continue
            text = fmt.format(v)
            band = interval(df, i, col)
            if band is not None:
                text += f" {pm}" + fmt.format((band[1] - band[0]) / 2)
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
    from diled.fileio import atomic_path

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


TABLE6_TITLE = "Table 6 ({scope}): generation, reconstruction and interpolation"


def scope(view: dict) -> str:
    """What a run reproduces, for titles: the embedded digits, or the paper-scale dataset and size it ran on."""
    data = view["data"]
    if data["dataset"] == "mnist32":
        return "embedded reproduction"
    return f"{data.get('layout') or 'image folder'}, {view['net']['size']} px"
TABLE6_LEAD = ("FID, LPIPS and MSE: lower is better; SSIM: higher is better. Each cell: value ± half its 95% interval (FID: "
               "bootstrap over the generated set; LPIPS/SSIM: 1.96 standard errors over images). Bold: the best of DDIM/DiffAE/DiLED "
               "at each T where its interval does not overlap the runner-up's; any other row (LDM, CM-CD) is bold where it is so "
               "clearly better than all of them at every T. No bold: the difference is within the noise. KID (mean ± std over "
               "subsets) is in `table6_kid.md` and the CSV. CM-CD's T is its number of consistency steps.")


def write_table6(df: pd.DataFrame, notes: Sequence[str], csv: str | Path, md: str | Path, tex: str | Path, caption: str,
                 scope: str = "embedded reproduction") -> None:
    """Table 6 as CSV, Markdown (bold per ``bold_mask``, "not run" rows with their reason) and LaTeX."""
    shown_md = _cells(df, "**{}**")
    shown_md["manifest"] = [m if isinstance(m, str) else "" for m in df["manifest"]]
    not_run = [f"{m}: {s}" for m, s in zip(df["model"], df["status"]) if str(s).startswith("not run")]
    write_table(df, title=TABLE6_TITLE.format(scope=scope), notes=[*not_run, *notes], csv=csv, md=md, lead=TABLE6_LEAD,
                shown=shown_md[["model", "T", *SHOWN, "manifest"]])
    shown_tex = _cells(df, "\\textbf{{{}}}", pm="$\\pm$")
    shown_tex["T"] = [t.replace("—", "--") for t in shown_tex["T"]]
    write_table(df, title=TABLE6_TITLE.format(scope=scope), tex=tex, shown=shown_tex[["model", "T", *SHOWN]], caption=caption,
                source="workflow/scripts/table6.py")


def latent_health(records: Sequence[dict], root: str | Path) -> pd.DataFrame:
    """One row per metric record: its model, T and ``latent_health`` diagnostics (n/a where a model has no such part)."""
    rows = []
    ts = sorted({int(t) for rec in records for t in (rec.get("latent_health", {}).get("eps_gain") or {})})
    for rec in records:
        h = rec.get("latent_health", {})
        gains = {int(t): g for t, g in (h.get("eps_gain") or {}).items()}
        name = rec["model"]
        shown = display(rec.get("track", "image"), name)
        if name.startswith("diled_w"):  # a w variant: say which
            shown = f"DiLED (w = {name.removeprefix('diled_w')})"
        rows.append({
            "model": shown, "T": rec["steps"],
            "code spread": round(h["code_spread"], 4) if "code_spread" in h else float("nan"),
            **{f"z gain t={t}": round(gains[t], 3) if t in gains else float("nan") for t in ts},
            "class kept (random)": h.get("class_preservation_random", float("nan")),
            "class kept (inverted)": h.get("class_preservation_inverted", float("nan")),
            "judge on sources": h.get("judge_accuracy_on_sources", float("nan")),
            "samples recognisable": h.get("generation_recognisable", float("nan")),
            "sample class entropy": h.get("generation_class_entropy", float("nan")),
            "class kept, previous pixel judge (random / inverted)": " / ".join(
                f"{h[k]:.2f}" if k in h else "n/a" for k in ("class_preservation_random_pixel_judge", "class_preservation_inverted_pixel_judge")),
            "manifest": os.path.relpath(rec["_path"], root),
        })
    return pd.DataFrame(rows)


def write_kid_table(df: pd.DataFrame, md: str | Path, first: dict, scope: str = "embedded reproduction") -> None:
    """KID x 10^3 of every Table 6 set (mean ± std over random subsets), the companion of the FID table."""
    run = df[df["status"] == "run"] if "status" in df else df
    shown = run[["model", "T"]].copy()
    shown["T"] = [str(t) for t in run["T"]]
    for label in KID_COLUMNS.values():
        shown[label + " ×10³"] = ["n/a" if pd.isna(m) else f"{1e3 * m:.2f} ± {1e3 * s:.2f}"
                                  for m, s in zip(run[label], run[f"{label} std"])]
    k = first.get("kid", {}).get("gen", {})
    write_table(run, title=f"Table 6, KID ({scope})", md=md, shown=shown, notes=[
        f"KID (Binkowski et al. 2018) from torch-fidelity on the same Inception features as the FID table: unbiased MMD² with "
        f"the cubic polynomial kernel, mean ± std over {k.get('subsets', '?')} random subsets of {k.get('subset_size', '?')} "
        "images of each set and of the reference. Unbiased at small N, so unlike FID its level is comparable across set "
        "sizes; lower is better; it can be negative when a set is indistinguishable from the reference.",
    ])


def precision_note(records: list[dict]) -> str:
    """The autocast each row's final training stage and its sampling ran under (``precision: auto`` resolved)."""
    def of(pairs: list[tuple[str, str]]) -> str:
        groups: dict[str, set[str]] = {}
        for value, model in pairs:
            groups.setdefault(value, set()).add(model)
        return ", ".join(f"{value} ({', '.join(sorted(models))})" for value, models in sorted(groups.items()))
    training = [(r["training"].get("precision") or ("released weights" if r["training"].get("weights_from") else "fp32"), r["model"])
                for r in records]
    sampling = [(r.get("sampling_precision", "fp32"), r["model"]) for r in records]
    why = auto_precision_note(reason for r in records for reason in (r["training"].get("precision_reason"), r.get("sampling_precision_reason")))
    return (f"Autocast (the config's `precision`, `auto` resolved on this machine): final training stage {of(training)}; "
            f"sampling {of(sampling)}.{''.join(' ' + n for n in why)} FID's Inception and LPIPS always run in strict fp32.")


def auto_precision_note(reasons: Iterable[str | None]) -> list[str]:
    """How ``precision: auto`` was decided on this machine (``diled.hardware.choose_precision``'s reasons, once each);
    empty when nothing said ``auto``."""
    kept = dict.fromkeys(r.removeprefix("auto: ") for r in reasons if r and r != "configured")
    return [f"`precision: auto` on this machine: {'; '.join(kept)}."] if kept else []


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
        cpu = t.get("cpu_s_per_step")
        trend = convergence.stage_trend(t["run_dir"]) if t.get("run_dir") else None
        rows.append({"track": track, "model": display(track, t["model"]), "stage": label, "file": key,
                     "steps": t["steps"], "parameters": t["parameters"], "ms/step": round(1e3 * t["s_per_step"], 1) if t["s_per_step"] is not None else float("nan"),
                     "CPU ms/step": round(1e3 * cpu, 1) if cpu is not None else float("nan"),
                     "rows seen": t.get("rows_seen", float("nan")), "train CPU (s)": round(t["train_cpu_s"], 1) if t.get("train_cpu_s") else float("nan"),
                     "train wall (s)": round(t["train_wall_s"], 1), "resumed from step": t["resumed_from_step"],
                     "last-quarter loss fall": _trend_cell(trend), "still improving": bool(trend and trend["improving"]),
                     "precision": t.get("precision") or ("released" if t.get("weights_from") else "fp32"),
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
                       "ms/step": float("nan"), "CPU ms/step": float("nan"), "rows seen": part["rows seen"].sum(min_count=len(part)),
                       "train CPU (s)": round(float(part["train CPU (s)"].sum(min_count=len(part))), 1),
                       "train wall (s)": round(float(part["train wall (s)"].sum()), 1),
                       "resumed from step": int(part["resumed from step"].max()), "precision": "/".join(dict.fromkeys(part["precision"])),
                       "last-quarter loss fall": "", "still improving": bool(part["still improving"].any()),
                       "torch threads": None, "device": ""})
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


def table6_notes(records: Sequence[dict], cfg: dict) -> list[str]:
    """Table 6's notes: the FID protocol and counts, the reconstruction and interpolation protocols, the intervals and each
    model's own note, all read from the records and the track config."""
    first = records[0]
    notes = [
        f"FID protocol `{first['protocol']['name']}` (digest `{first['protocol']['digest']}`): {first['protocol']['resize_definition']}; "
        f"{first['protocol']['feature']}; quantization {first['protocol']['quantization_definition']}; reference statistics "
        f"{first['protocol']['reference']} from the {first['protocol']['reference_set']} set; {first['protocol']['precision']}.",
        f"Each FID compares {first['counts']['gen']} images with {first['reference_count']} held-out reference digits "
        "(small-sample FID is biased upward; compare rows, not with published numbers).",
        f"Reconstruction metrics: {first['recon_definition']}; DiffAE's conventions (PSNR per image, then averaged; SSIM "
        "from pytorch_msssim, window 11, sigma 1.5).",
        "T is the number of DDIM steps (eta = 0) of every chain a model runs: latent and pixel chains alike.",
        "Reconstruction protocols (both reported): `random` decodes the encoder mean from a seeded random x_T (the paper's "
        "reconstruction_bs.py); `inverted` first finds x_T by DDIM inversion of x0 conditioned on z (DiffAE's stochastic "
        "encoding, ..._withxT.py), so x_T carries what z does not. DiffAE and DiLED are scored under both. DDIM's only "
        "reconstruction is the inverted one (its code is x_T); LDM's decoder is deterministic, so one reconstruction fills both; "
        "CM-CD's is its seeded noising (random column).",
        f"Interpolation: pairs of reference images fixed by the seed; DiffAE/DiLED mix the semantic latents linearly and decode "
        f"with {'one seeded x_T shared across alphas' if cfg['eval'].get('interp_protocol', 'random') == 'random' else 'the slerp of the two inverted x_T'} "
        f"(eval.interp_protocol: {cfg['eval'].get('interp_protocol', 'random')}); DDIM mixes the two inverted x_T by "
        f"{cfg['models'].get('ddim', {}).get('interpolation', 'slerp')} (models.ddim.interpolation; the official script lerps).",
        "Intervals: FID's is a 95% bootstrap over the generated set with the reference fixed "
        f"({first.get('fid_interval', {}).get('gen', {}).get('n_boot', 'no')} replicates; the spread re-centred on the point, "
        "since resampling inflates FID's small-N bias); LPIPS/SSIM: mean ± 1.96 standard errors over images.",
        *[spec.note.format(**cfg) for spec in registry.models("image", config=cfg) if spec.note],
        precision_note(records),
        *generation_health_note(records),
        "Each row's `manifest` is its metric record: protocol, counts, training info, and the job manifest "
        "(config hash, git commit, package versions, hardware, seed, wall time).",
    ]
    return notes


UNRECOGNISABLE = 0.5  # a row whose generated samples the digit judge recognises less often than this is flagged
COLLAPSED = 0.8  # ... and one whose predicted-digit histogram has less entropy (over log 10) than this: few digits drawn


def generation_health_note(records: Sequence[dict]) -> list[str]:
    """Table 6's generation-health note: the digit judge's accuracy, the share of real digits it recognises, and the
    rows whose samples it does not recognise as digits or that draw few of the ten digits (flagged, with the numbers).

    Both flags are needed: a model that draws one confident blob is "recognisable" 100% of the time (a DDIM trained
    with EMA 0.999 for 800 steps did exactly that, class entropy 0), and one that draws every digit badly has a
    high entropy and a low recognisable share."""
    health = [(r, r.get("latent_health", {})) for r in records]
    judged = [(r, h) for r, h in health if "generation_recognisable" in h]
    if not judged:
        return []
    h0 = judged[0][1]

    def row(r: dict) -> str:
        return f"{display(r.get('track', 'image'), r['model'])} T = {r['steps']}"

    flagged = [f"{row(r)} ({h['generation_recognisable']:.0%})" for r, h in judged if h["generation_recognisable"] < UNRECOGNISABLE]
    collapsed = [f"{row(r)} ({h['generation_class_entropy']:.2f})" for r, h in judged
                 if h.get("generation_class_entropy", 1.0) < COLLAPSED]
    text = (f"Generation health (latent-health table): the independent digit judge (a small CNN trained on the training split; "
            f"held-out accuracy {h0.get('judge_accuracy_held_out', float('nan')):.3f}) calls a sample recognisable when it gives a "
            f"digit probability >= 0.9; it does so for {h0.get('real_recognisable', float('nan')):.0%} of real held-out digits. "
            + (f"**Not recognisable as digits** (under {UNRECOGNISABLE:.0%} of samples): {', '.join(flagged)}: these rows' generation "
               "FIDs score noise or blobs, not a generator of digits." if flagged else
               f"Every row's samples are recognisable at least {UNRECOGNISABLE:.0%} of the time."))
    if collapsed:
        text += (f" **Few digits drawn** (entropy of the judged-digit histogram under {COLLAPSED:g} of log 10; real digits: about 1): "
                 f"{', '.join(collapsed)}.")
    return [text]


def _trend_cell(trend: dict | None) -> str:
    """A stage's last-quarter loss fall as a share of its loss, with its 95% interval (``diled.convergence``)."""
    if not trend or not trend["enough"]:
        return "n/a"
    return f"{trend['relative_fall']:+.1%} ± {trend['interval'] / trend['level']:.1%}" + (" (still improving)" if trend["improving"] else "")


def _lineage_files(total: pd.Series, track: str) -> list[str]:
    """The stage keys a ``training_cost`` totals row sums (its stage reads ``total (model/stage + ...)``)."""
    return [f"{track}/{f}" for f in total["stage"].removeprefix("total (").removesuffix(")").split(" + ")]


def convergence_note(cost: pd.DataFrame, track: str = "image") -> list[str]:
    """Table 6's convergence flags: each row trained from a stage whose loss was still falling (beyond its 95% interval
    and by more than ``diled.convergence.MATERIAL`` over its last quarter) is "not converged at this budget"."""
    totals = cost[(cost["track"] == track) & cost["stage"].str.startswith("total")]
    stages = cost.set_index("file")
    flagged = []
    for _, r in totals.iterrows():
        files = _lineage_files(r, track)
        falling = [f"{f.split('/', 1)[1]} {stages.at[f, 'last-quarter loss fall'].removesuffix(' (still improving)')}"
                   for f in files if stages.at[f, "still improving"]]
        if falling:
            flagged.append(f"{r['model']} ({', '.join(falling)})")
    if totals.empty:
        return []
    head = ("Convergence (training-cost table, figure training_curves.png): over the last quarter of each training stage, an OLS "
            "line through the per-step losses gives the loss's fall and its 95% interval; a stage still falling beyond its "
            f"interval and by more than {convergence.MATERIAL:.0%} marks every row trained from it. ")
    return [head + (f"**Not converged at this budget**: {'; '.join(flagged)}." if flagged else "Every row's stages had flattened.")]


def budget_note(cost: pd.DataFrame, track: str = "image") -> list[str]:
    """What each row was given to learn: the rows each stage it is trained from saw (images; codes for a latent stage)
    and the process CPU seconds of all of them (``training_cost``'s totals), so a row that got a fraction of the
    others' budget says so beside its scores."""
    totals = cost[(cost["track"] == track) & cost["stage"].str.startswith("total")]
    if totals.empty:
        return []
    stages = cost.set_index("file")

    def cell(r) -> str:
        files = _lineage_files(r, track)
        seen = " + ".join(f"{f.split('/', 1)[1]} {int(stages.at[f, 'rows seen']):,}" if pd.notna(stages.at[f, "rows seen"])
                          else f"{f.split('/', 1)[1]} ?" for f in files)
        cpu = "?" if pd.isna(r["train CPU (s)"]) else f"{r['train CPU (s)']:,.0f}"
        return f"{r['model']}: {seen} ({cpu} CPU-s)"
    return ["Training budget per row: rows seen by every stage it is trained from (images; latent stages: codes) and their "
            "process CPU seconds (all threads; unlike wall time, not inflated by jobs sharing the cores): "
            + "; ".join(cell(r) for _, r in totals.iterrows()) + "."]


def table6_caption(first: dict, scope: str) -> str:
    """Table 6's caption: scope, set sizes and the FID protocol."""
    caption = (f"Table 6, {scope} ({first['counts']['gen']} images per FID set vs {first['reference_count']} "
               f"reference images, protocol {first['protocol']['name']}:{first['protocol']['digest']}).")
    return caption
