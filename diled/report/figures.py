"""The one figure module: sample grids, Figure 3, the w ablation, latent projections, edit strips, FID-settings bars.

Every figure is written atomically (a failed job leaves no half-written PNG).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from diled import registry  # noqa: E402
from diled.fileio import atomic_path  # noqa: E402


def _strip(images: np.ndarray, count: int) -> np.ndarray:
    """(N, C, H, W) uint8 -> one row of ``count`` tiles with a white 1-pixel border, (H', W') or (H', W', 3)."""
    tiles = np.pad(images[:count].transpose(0, 2, 3, 1), ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=255)
    row = np.concatenate(list(tiles), axis=1)
    return row[..., 0] if row.shape[-1] == 1 else row


def sample_grid(sets_by_steps: dict[int, dict[str, np.ndarray]], title: str, count: int, path: str | Path) -> None:
    """Rows per T: generated; then source a, reconstruction, interpolations, source b (columns are pairs)."""
    rows: list[tuple[str, np.ndarray]] = []
    for steps in sorted(sets_by_steps):
        s = sets_by_steps[steps]
        rows.append((f"T={steps} generated", _strip(s["gen"], count)))
    last = sets_by_steps[max(sets_by_steps)]
    rows.append(("source a", _strip(last["source_a"], count)))
    rows.append((f"T={max(sets_by_steps)} reconstruction" + (" (random x_T)" if "rec_inverted" in last else ""),
                 _strip(last["rec"], count)))
    if "rec_inverted" in last:
        rows.append(("(inverted x_T)", _strip(last["rec_inverted"], count)))
    for key in sorted(k for k in last if k.startswith("interp_")):
        rows.append((f"α={key.split('_')[1]} (a→b)", _strip(last[key], count)))
    rows.append(("source b", _strip(last["source_b"], count)))
    fig, axes = plt.subplots(len(rows), 1, figsize=(count * 0.55 + 3.0, len(rows) * 0.62 + 0.5))
    for ax, (label, img) in zip(axes, rows):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{title}: samples, reconstructions, interpolations", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


FIG3_COLUMNS = ["Gen FID", "Rec FID (random)", "Rec FID (inverted)", "Interp FID (α=0.2)", "Interp FID (α=0.4)"]


def figure3(df, path: str | Path, scope: str = "embedded reproduction") -> None:
    """Figure 3: grouped bars of generation, reconstruction (both protocols) and interpolation FID per model, one panel
    per T, with each cell's 95% bootstrap interval as an error bar.

    Rows whose T counts consistency steps (CM-CD) have no DDIM T: their bars repeat in every panel.
    """
    run = df[df["status"] == "run"]
    consistency = [s.display for s in registry.models("image") if s.step_kind != "DDIM steps"]
    fixed = run[run["model"].isin(consistency)]
    stepped = run[~run["model"].isin(consistency)]
    steps = sorted(stepped["T"].dropna().unique())
    series = [(m, None) for m in dict.fromkeys(stepped["model"])] + [(m, t) for m, t in zip(fixed["model"], fixed["T"])]
    fig, axes = plt.subplots(1, len(steps), figsize=(4.6 * len(steps), 3.4), sharey=True, squeeze=False)
    width = 0.8 / max(len(series), 1)
    colors = plt.get_cmap("tab10")
    for ax, t in zip(axes[0], steps):
        x = np.arange(len(FIG3_COLUMNS))
        for j, (m, k) in enumerate(series):
            row = run[(run["model"] == m) & (run["T"] == (t if k is None else k))]
            vals = np.array([float(row[c].iloc[0]) if len(row) else np.nan for c in FIG3_COLUMNS])
            lo = np.array([float(row[f"{c} lo"].iloc[0]) if len(row) and f"{c} lo" in row else np.nan for c in FIG3_COLUMNS])
            hi = np.array([float(row[f"{c} hi"].iloc[0]) if len(row) and f"{c} hi" in row else np.nan for c in FIG3_COLUMNS])
            err = np.nan_to_num(np.stack([vals - lo, hi - vals]), nan=0.0).clip(min=0)  # the 95% bootstrap interval
            label = m if k is None else f"{m} ({k}-step)"
            ax.bar(x + (j - (len(series) - 1) / 2) * width, vals, width, label=label, color=colors(j),
                   yerr=err, error_kw={"elinewidth": 0.7, "capsize": 1.5, "ecolor": "0.25"})
        ax.set_xticks(x, ["gen", "rec\nrandom", "rec\ninverted", "interp\nα=0.2", "interp\nα=0.4"], fontsize=8)
        ax.set_title(f"T = {t}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("FID (lower is better)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=len(series), fontsize=8, frameon=False)
    fig.suptitle(f"Figure 3 ({scope}): generation, reconstruction and interpolation", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def w_ablation_figure(df, path: str | Path) -> None:
    """FID (generation, reconstruction, interpolation) and probe accuracy against DiLED's w."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    for col, marker in zip(FIG3_COLUMNS, "osvD^"):
        if col in df:
            ax.plot(df["w"], df[col], marker=marker, label=col.replace("Interp FID ", "interp "))
    ax.set_xlabel("w  (loss = w L_latent + (2 - w) L_decoder)")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(f"T = {int(df['T'].iloc[0])}", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax2.plot(df["w"], df["Probe accuracy"], marker="o", color="black")
    ax2.set_xlabel("w")
    ax2.set_ylabel("linear-probe accuracy")
    ax2.grid(alpha=0.3)
    fig.suptitle("DiLED's w: generation vs. representation", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def projection_figure(latents: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str) -> None:
    """One panel per model: PCA (after standardization) of the held-out latents, coloured by class."""
    fig, axes = plt.subplots(1, len(latents), figsize=(3.6 * len(latents), 3.6), squeeze=False)
    for ax, (name, (z, y)) in zip(axes[0], latents.items()):
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        xy = PCA(n_components=2, random_state=0).fit_transform(StandardScaler().fit_transform(z))
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10", s=6, vmin=-0.5, vmax=9.5)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes[0].tolist(), ticks=range(10), label="digit", shrink=0.8)
    fig.suptitle(title, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)


def edit_strips(strips: dict[str, np.ndarray], scales: Sequence[float], path: str | Path, title: str,
                row_labels: Sequence[str] | None = None) -> None:
    """One panel per model: rows are examples, columns source then each step size (uint8 (E, S+1, H, W))."""
    fig, axes = plt.subplots(1, len(strips), figsize=(1.0 * (len(scales) + 1) * len(strips) + 1, 0.95 * next(iter(strips.values())).shape[0] + 1),
                             squeeze=False)
    for ax, (name, grid) in zip(axes[0], strips.items()):
        _, s, h, w = grid.shape
        img = np.concatenate([_strip(row[:, None], s) for row in grid])
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([(w + 2) * (i + 0.5) for i in range(s)], ["source", *[f"s={v:g}" for v in scales]], fontsize=7)
        if row_labels is not None and ax is axes[0, 0]:
            ax.set_yticks([(h + 2) * (i + 0.5) for i in range(len(grid))], list(row_labels)[: len(grid)], fontsize=7)
        else:
            ax.set_yticks([])
        ax.set_title(name, fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def fid_settings_bars(df, path: str | Path, title: str) -> None:
    """Horizontal bars of FID per setting, presets on top, the pytorch-fid value as a dashed line."""
    labels = [f"{g.replace('one factor: ', '')}: {s}" if g != "preset" else f"preset: {s}" for g, s in zip(df["group"], df["setting"])]
    colors = ["#4c72b0" if g == "preset" else "#dd8452" for g in df["group"]]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(df) + 1.2))
    y = range(len(df))[::-1]
    ax.barh(list(y), df["FID"], color=colors)
    base = df.loc[df["setting"] == "pytorch-fid", "FID"].iloc[0]
    ax.axvline(base, color="k", ls="--", lw=1)
    for yi, v, d in zip(y, df["FID"], df["Δ %"]):
        ax.text(v, yi, f" {v:.2f} ({d:+.1f}%)", va="center", fontsize=8)
    ax.set_yticks(list(y), [lbl[:60] for lbl in labels], fontsize=8)
    ax.set_xlabel("FID (lower is better)")
    ax.set_xlim(0, df["FID"].max() * 1.25)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def figure6(panels: dict, path: str | Path) -> None:
    """Figure 6: PCA of training latents coloured by measured fitness, one panel per model, LatentOps paths on top.

    ``panels`` maps a model's name to (its arrays: ``train_z``, ``train_fitness``, ``traj_latentops_y<y>`` of
    shape (points, seeds, d); the k-NN R^2 of fitness from z).
    """
    from sklearn.decomposition import PCA

    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 4.2), squeeze=False)
    for ax, (name, (arrays, r2)) in zip(axes[0], panels.items()):
        z, fit = arrays["train_z"], arrays["train_fitness"]
        pca = PCA(n_components=2, random_state=0).fit(z)
        xy = pca.transform(z)
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=np.clip(fit, -2, 2), cmap="viridis", s=3, vmin=-2, vmax=2, rasterized=True)
        keys = sorted(k for k in arrays.files if k.startswith("traj_latentops"))
        for key, color in zip(keys, plt.cm.autumn(np.linspace(0, 0.8, len(keys)))):
            path_xy = pca.transform(arrays[key].mean(1))  # the mean over seeds of each ODE time point
            ax.plot(path_xy[:, 0], path_xy[:, 1], "-o", color=color, ms=2.5, lw=1.2, label=key.removeprefix("traj_latentops_"))
        ax.set_title(f"{name}  (kNN-10 R² of fitness {r2:.2f})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if keys:
            ax.legend(fontsize=7, title="LatentOps target", title_fontsize=7, loc="lower right")
    fig.colorbar(sc, ax=axes[0].tolist(), label="measured fitness (clipped to ±2)", shrink=0.85)
    fig.suptitle("Figure 6 (embedded): training latents coloured by fitness, with the mean LatentOps path per target", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)


def loss_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str, smooth: int = 20) -> None:
    """Training losses of several runs on one log-scale axis (a ``smooth``-step running mean of each; 20 distinct
    colours, the legend beside the axis so it hides no curve)."""
    fig, ax = plt.subplots(1, 1, figsize=(9, 4.5))
    ax.set_prop_cycle(color=plt.cm.tab20.colors)
    for label, (steps, loss) in curves.items():
        kernel = np.ones(min(smooth, len(loss))) / min(smooth, len(loss))
        y = np.convolve(loss, kernel, mode="valid") if len(loss) else loss
        ax.plot(steps[len(steps) - len(y) :], y, label=label, marker="o" if len(y) < 5 else None)  # a short run's one point shows
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss ({smooth}-step mean)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
