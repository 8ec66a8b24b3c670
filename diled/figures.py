"""Figures: sample / reconstruction / interpolation grids."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from diled.files import atomic_path  # noqa: E402
from diled.tables import DISPLAY  # noqa: E402


def _strip(images: np.ndarray, count: int) -> np.ndarray:
    """(N, C, H, W) uint8 -> one row of ``count`` tiles with a white 1-pixel border, (H', W') or (H', W', 3)."""
    tiles = np.pad(images[:count].transpose(0, 2, 3, 1), ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=255)
    row = np.concatenate(list(tiles), axis=1)
    return row[..., 0] if row.shape[-1] == 1 else row


def sample_grid(sets_by_steps: dict[int, dict[str, np.ndarray]], model: str, count: int, path: str | Path) -> None:
    """Rows per T: generated; then source a, reconstruction, interpolations, source b (columns are pairs)."""
    rows: list[tuple[str, np.ndarray]] = []
    for steps in sorted(sets_by_steps):
        s = sets_by_steps[steps]
        rows.append((f"T={steps} generated", _strip(s["gen"], count)))
    last = sets_by_steps[max(sets_by_steps)]
    rows.append(("source a", _strip(last["source_a"], count)))
    rows.append((f"T={max(sets_by_steps)} reconstruction", _strip(last["rec"], count)))
    for key in sorted(k for k in last if k.startswith("interp_")):
        rows.append((f"α={key.split('_')[1]} (a→b)", _strip(last[key], count)))
    rows.append(("source b", _strip(last["source_b"], count)))
    fig, axes = plt.subplots(len(rows), 1, figsize=(count * 0.55 + 2.2, len(rows) * 0.62 + 0.5))
    for ax, (label, img) in zip(axes, rows):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{DISPLAY.get(model, model)}: samples, reconstructions, interpolations", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


FIG3_COLUMNS = ["Gen FID", "Rec FID", "Interp FID (α=0.2)", "Interp FID (α=0.4)"]


def figure3(df, path: str | Path) -> None:
    """Figure 3: grouped bars of generation, reconstruction and interpolation FID per model, one panel per T."""
    run = df[df["status"] == "run"]
    steps = sorted(run["T"].dropna().unique())
    models = list(dict.fromkeys(run["model"]))
    fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 3.4), sharey=True, squeeze=False)
    width = 0.8 / max(len(models), 1)
    colors = plt.get_cmap("tab10")
    for ax, t in zip(axes[0], steps):
        at_t = run[run["T"] == t].set_index("model")
        x = np.arange(len(FIG3_COLUMNS))
        for j, m in enumerate(models):
            vals = [float(at_t.at[m, c]) if m in at_t.index else np.nan for c in FIG3_COLUMNS]
            ax.bar(x + (j - (len(models) - 1) / 2) * width, vals, width, label=m, color=colors(j))
        ax.set_xticks(x, ["gen", "rec", "interp\nα=0.2", "interp\nα=0.4"], fontsize=8)
        ax.set_title(f"T = {t}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("FID (lower is better)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=len(models), fontsize=8, frameon=False)
    fig.suptitle("Figure 3 (embedded reproduction): one model for generation, reconstruction and interpolation", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
