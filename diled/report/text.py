"""The text track's report: Table 1, the editing table, the training cost beside the rebuttal's ratios, the loss curves and
the examples, from the per-model evaluation records (``workflow/scripts/text_tables.py`` is the adapter)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from diled import convergence, registry
from diled.fileio import atomic_path
from diled.report import figures, tables


def pm(v, lo, hi, fmt: str = "{:.1f}") -> str:
    """``v [lo, hi]`` in ``fmt``; a dash where the value is missing."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return (fmt + " [" + fmt + ", " + fmt + "]").format(v, lo, hi)


def num(v, fmt: str = "{:.2f}") -> str:
    """``v`` in ``fmt``; a dash where the value is missing."""
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)


def table1(records: Sequence[dict], judges: dict, view: dict, out: Mapping[str, str]) -> pd.DataFrame:
    """Table 1 (csv, md, tex at ``out["table1"]``, ``out["table1_md"]``, ``out["table1_tex"]``); returns the shown table."""
    scale = float(view["eval"]["table_edit_scale"])
    rows = []
    for r in records:
        health, rec = r.get("health", {}), r.get("reconstruction")
        edit = next((e for e in r.get("editing", {}).get("rows", []) if abs(e["scale"] - scale) < 1e-9), None)
        no_edit = next((e for e in r.get("editing", {}).get("rows", []) if e["scale"] == 0), None)
        gens = sorted(r["generation"].items(), key=lambda kv: -int(kv[0])) or [(None, {})]  # the ancestral chain (T) first; none: one row
        for steps, g in gens:
            g = {k: g.get(k) for k in ("ppl", "ppl_lo", "ppl_hi", "self_bleu", "distinct_1", "distinct_2", "copy_rate", "mean_words")}
            rows.append({
                "model": r["display"], "T": None if steps is None else int(steps),
                "rec_bleu": rec and rec["bleu"], "train_rec_bleu": r.get("reconstruction_train", {}).get("bleu"), "rec_bleu_lo": rec and rec["bleu_lo"], "rec_bleu_hi": rec and rec["bleu_hi"],
                "ppl": g["ppl"], "ppl_lo": g["ppl_lo"], "ppl_hi": g["ppl_hi"], "self_bleu": g["self_bleu"],
                "distinct_1": g["distinct_1"], "distinct_2": g["distinct_2"], "copy_rate": g["copy_rate"], "mean_words": g["mean_words"],
                "edit_success": edit and edit["success"], "edit_lo": edit and edit["success_lo"], "edit_hi": edit and edit["success_hi"],
                "no_edit_success": no_edit and no_edit["success"], "edit_input_bleu": edit and edit["input_bleu"], "edit_ppl": edit and edit["ppl"],
                "active_units": health.get("active_units"), "active_units_001": health.get("active_units_0.01"), "z_dim": health.get("z_dim"),
                "z_gain": health.get("z_gain"),
                "code_spread": health.get("code_spread"),
            })
    df = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "Model": df["model"], "T": [num(v, "{:.0f}") for v in df["T"]],
        "Rec BLEU ↑": [pm(*x) for x in zip(df["rec_bleu"], df["rec_bleu_lo"], df["rec_bleu_hi"])],
        "train BLEU": [num(v, "{:.1f}") for v in df["train_rec_bleu"]],
        "PPL ↓": [pm(*x) for x in zip(df["ppl"], df["ppl_lo"], df["ppl_hi"])],
        "self-BLEU ↓": [num(v, "{:.1f}") for v in df["self_bleu"]],
        "Dist-1/2 ↑": [f"{a:.3f} / {b:.3f}" if a is not None and not np.isnan(a) else "–" for a, b in zip(df["distinct_1"], df["distinct_2"])],
        "copy %": [num(None if v is None else 100 * v, "{:.1f}") for v in df["copy_rate"]],
        f"Edit acc (s={scale:g}) ↑": [pm(*(None if v is None else 100 * x for x in (v, lo, hi)), fmt="{:.0f}") if v is not None else "–"
                                      for v, lo, hi in zip(df["edit_success"], df["edit_lo"], df["edit_hi"])],
        "no-edit %": [num(None if v is None else 100 * v, "{:.0f}") for v in df["no_edit_success"]],
        "Edit in-BLEU": [num(v, "{:.1f}") for v in df["edit_input_bleu"]],
        "AU": [f"{int(a)}/{int(z)}" if a is not None and not np.isnan(a) else "–" for a, z in zip(df["active_units"], df["z_dim"])],
        "AU>0.01": [f"{int(a)}" if a is not None and not np.isnan(a) else "–" for a in df["active_units_001"]],
        "z gain (nats/tok)": [num(v) for v in df["z_gain"]],
    })
    ref = judges["reference_lm"]
    notes = [
        "Rec BLEU: nltk corpus_bleu x 100 of the test split, greedy from the encoder mean, each sentence capped at its own length "
        "(upstream's calc_rec_lgy caps a batch at its first sentence's length: fixed, named 'per-sentence cap'); [95% bootstrap "
        "interval over sentences]. train BLEU: the same on as many training sentences (memorised vs generalised).",
        f"PPL: reference GPT-2 trained on the judge split only (its test-split perplexity, real sentences: {ref['test_ppl']:.1f}); "
        f"samples joined as one stream, sliding window {ref['window']} / stride {ref['stride']}; divided by the tokens actually predicted "
        "(upstream divides by end_loc: fixed, named 'predicted-token count'); [95% interval from resampling sentences].",
        "self-BLEU: each sample against all others, 4-gram, smoothing method1, x 100 (LatentOps). Dist-n: distinct n-grams / all n-grams. "
        "copy %: samples identical to a training sentence.",
        f"Edit acc: test sentences moved toward the other sentiment by {scale:g} standard deviations along the training codes' class-mean "
        f"direction, decoded greedily and scored by a TF-IDF + logistic-regression judge fit on the judge split (test accuracy "
        f"{judges['sentiment_judge']['test_accuracy']:.3f}); [Wilson 95% interval]. no-edit %: the same judge on the unedited "
        "reconstructions (the rate an edit must beat). Upstream picks, among candidates, one its judge accepts: here the judge never "
        "selects (named 'judge-free editing'). Edit in-BLEU: sentence BLEU of the edit against its source.",
        "AU: active units, dimensions whose variance of the test means exceeds the variance of the noise the decoder's z carries in "
        "training (DiLED and the autoencoder: the fixed encoder variance; LatentOps: its mean posterior variance; DAAE: none), and "
        "at least 0.01. AU>0.01: Burda et al.'s fixed threshold alone. z gain: NLL per token with a shuffled z minus with the true z "
        "(0: the decoder ignores z).",
        "T –: the autoencoder has no prior, so no generation.",
        *[spec.note.format(**view) for spec in registry.models("text", config=view) if spec.note],
    ]
    tables.write_table(df, title="Table 1 (text, embedded reproduction)" if view["data"]["dataset"] == "snippets" else "Table 1 (text, yelp)",
                       notes=[n for n in notes if n], csv=out["table1"], md=out["table1_md"],
                       tex=out["table1_tex"], shown=shown, caption="Text generation and reconstruction (Table 1)",
                       source="diled text track")
    return shown


def editing_table(records: Sequence[dict], out: Mapping[str, str]) -> None:
    """Sentiment editing at every scale (``out["editing"]``)."""
    erows = []
    for r in records:
        for e in r.get("editing", {}).get("rows", []):
            erows.append({"model": r["display"], "scale": e["scale"], "success": e["success"], "lo": e["success_lo"], "hi": e["success_hi"],
                          "input_bleu": e["input_bleu"], "ppl": e["ppl"]})
    edf = pd.DataFrame(erows)
    tables.write_table(edf, title="Sentiment editing at every scale (scale 0: unedited reconstructions)", md=out["editing"],
                       notes=["success: share the judge assigns the target sentiment, [Wilson 95% interval]."])


def training_cost(manifests: Sequence[dict], view: dict, n_train: int, n_pool: int, ref: dict, out: Mapping[str, str]) -> None:
    """Each model's training cost in this run beside the rebuttal's ratios (``ref``: ``text_cost`` of the reference numbers)."""
    cost = {}
    for m in manifests:
        t = m["training"]
        c = cost.setdefault(t["model"], {"wall_s": 0.0, "steps": 0, "ae_wall_s": 0.0, "ae_cpu_s": 0.0, "ae_steps": 0, "epochs": 0.0})
        c["wall_s"] += t["train_wall_s"]
        c["steps"] += t["steps"]
        if t["stage"] != "latent":  # epochs of the sentence-level stages (LatentOps' latent DDPM runs on cached means)
            c["ae_wall_s"] += t["train_wall_s"]
            c["ae_cpu_s"] += t.get("train_cpu_s") or float("nan")  # NaN: a stage trained before CPU time was recorded
            c["ae_steps"] += t["steps"]
            seen = n_train + (n_pool if registry.get("text", t["model"]).stage(t["stage"]).pool else 0)  # what the stage trains on
            c["epochs"] += t["steps"] * view["models"][t["model"]][t["stage"]]["batch_size"] / seen
    crow = []
    per_epoch_ref, total_ref, anchor = ref["minutes_per_epoch"], ref["total_hours"], ref["reference_model"]
    base = cost.get("latentops")
    for name, c in cost.items():
        per_epoch = c["ae_wall_s"] / c["epochs"] if c["epochs"] else None
        cpu_epoch = c["ae_cpu_s"] / c["epochs"] if c["epochs"] else float("nan")
        base_cpu_epoch = base["ae_cpu_s"] / base["epochs"] if base and base["epochs"] else float("nan")
        crow.append({"model": name, "steps": c["steps"], "epochs": round(c["epochs"], 2), "wall_s": round(c["wall_s"], 1),
                     "s_per_step": round(c["ae_wall_s"] / max(c["ae_steps"], 1), 4), "s_per_epoch": per_epoch and round(per_epoch, 2),
                     "cpu_s_per_step": round(c["ae_cpu_s"] / max(c["ae_steps"], 1), 4),
                     "cpu_epoch_vs_latentops": round(cpu_epoch / base_cpu_epoch, 3),
                     "epoch_vs_latentops": base and per_epoch and round(per_epoch / (base["ae_wall_s"] / base["epochs"]), 3),
                     "total_vs_latentops": base and round(c["wall_s"] / base["wall_s"], 3),
                     "rebuttal_epoch_vs_latentops": round(per_epoch_ref[name] / per_epoch_ref[anchor], 3) if name in per_epoch_ref else None,
                     "rebuttal_total_vs_latentops": round(total_ref[name] / total_ref[anchor], 3) if name in total_ref else None})
    cdf = pd.DataFrame(crow)
    tables.write_table(cdf, title="Text training cost (this run) beside the rebuttal's ratios", md=out["cost"],
                       notes=["Wall time sums a model's own stages (the shared GPT-2 and autoencoder pre-training are their own rows; epochs "
                              "count the pool for those); steps, s/step, epochs and "
                              "s/epoch count the sentence-level stages (LatentOps' latent DDPM trains on cached means and is only in the total). Rebuttal: "
                              "time/epoch " + ", ".join(f"{tables.display('text', m)} {v:.2f}" + (" min" if i == 0 else "") for i, (m, v) in
                                                       enumerate(per_epoch_ref.items()))
                              + "; total " + " / ".join(f"{v:.2f}" for v in total_ref.values()) + " h (4 GPUs, Yelp).",
                              "Jobs ran side by side, so wall times include contention; `cpu_s_per_step` and `cpu_epoch_vs_latentops` "
                              "count the process CPU seconds of the training steps (all threads), which sharing the cores does not "
                              "inflate: compare those with the rebuttal's ratios.",
                              *tables.auto_precision_note(m["training"].get("precision_reason") for m in manifests)])


def loss_curves(manifests: Sequence[dict], out: Mapping[str, str]) -> None:
    """Every stage's training loss from its run directory's log (``out["curves"]``)."""
    curves = {}
    for m in manifests:
        t = m["training"]
        log = convergence.read_log(t["run_dir"])
        if log is not None:
            curves[f"{t['model']}/{t['stage']}"] = log
    figures.loss_curves(curves, out["curves"], "Text track: training losses (each model's own objective)")


def examples(records: Sequence[dict], scale: float, out: Mapping[str, str]) -> None:
    """Reconstructions, samples, interpolations and edits as markdown (``out["examples"]``)."""
    lines = ["# Text examples", ""]
    for r in records:
        lines += [f"## {r['display']}", ""]
        if "reconstruction" in r:
            lines += ["Reconstructions (source -> output):", ""] + [f"- {e['source']}  \n  -> {e['output']}" for e in r["reconstruction"]["examples"]]
            lines.append("")
        for steps, g in r["generation"].items():
            lines += [f"Samples (T = {steps}):", ""] + [f"- {s}" for s in g["samples"][:8]] + [""]
        for it in r.get("interpolation", [])[:2]:
            lines += [f"Interpolation: \"{it['source_a']}\" -> \"{it['source_b']}\"", ""]
            lines += [f"- alpha {a:g}: {t}" for a, t in zip(it["alphas"], it["texts"])] + [""]
        for e in r.get("editing", {}).get("rows", []):
            if abs(e["scale"] - scale) < 1e-9:
                lines += [f"Edits (scale {scale:g}):", ""] + [f"- ({'pos' if x['label'] else 'neg'}) {x['source']}  \n  -> {x['output']}"
                                                             for x in e["examples"]] + [""]
    with atomic_path(out["examples"]) as tmp:
        tmp.write_text("\n".join(lines))


def write_all(records: Sequence[dict], judges: dict, manifests: Sequence[dict], view: dict, n_train: int, n_pool: int,
              reference_numbers: dict, out: Mapping[str, str]) -> pd.DataFrame:
    """Every text output; returns Table 1 as shown."""
    shown = table1(records, judges, view, out)
    editing_table(records, out)
    training_cost(manifests, view, n_train, n_pool, reference_numbers["text_cost"], out)
    loss_curves(manifests, out)
    examples(records, float(view["eval"]["table_edit_scale"]), out)
    return shown
