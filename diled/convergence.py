"""Is a training stage still improving at its last step? A trend test on its training loss over the last quarter.

The embedded default trains every model for minutes, so a row of Table 6 can be a half-trained model. Each stage
logs its loss at every step (``log.csv`` in its run directory); over the last quarter of the run, an ordinary
least-squares line through the per-step losses (a diffusion loss draws a fresh t every step, so consecutive losses
are close to independent) predicts how much the loss fell across that quarter, with a 95% interval. A stage is
**still improving** when that fall is larger than its interval and than ``MATERIAL`` of the loss: more steps would
very likely have given a better model, and its row says so ("not converged at this budget").
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

LAST = 0.25  # the part of the run the trend is fitted on
MATERIAL = 0.02  # a fall of less than this share of the loss is not worth flagging, however certain


def trend(steps: np.ndarray, losses: np.ndarray, last: float = LAST) -> dict[str, Any]:
    """The loss's fall across the last ``last`` of the run (OLS slope x span), its 95% half-interval, the fall
    relative to the mean loss there, and ``improving``: fall > interval and relative fall > ``MATERIAL``."""
    steps, losses = np.asarray(steps, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    keep = np.isfinite(losses)
    steps, losses = steps[keep], losses[keep]
    k = max(int(math.ceil(len(losses) * last)), 3)
    if len(losses) < 8:
        return {"steps": int(len(losses)), "fall": float("nan"), "interval": float("nan"), "level": float("nan"),
                "relative_fall": float("nan"), "improving": False, "enough": False}
    x, y = steps[-k:], losses[-k:]
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc * xc).sum())
    resid = y - y.mean() - slope * xc
    se = math.sqrt(float((resid**2).sum()) / (k - 2) / float((xc * xc).sum()))
    span = float(x[-1] - x[0])
    fall, half, level = -slope * span, 1.96 * se * span, float(np.abs(y).mean()) or 1.0
    return {"steps": int(len(losses)), "fall": fall, "interval": half, "level": level, "relative_fall": fall / level,
            "improving": bool(fall - half > 0 and fall / level > MATERIAL), "enough": True}


def read_log(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, losses) of a run directory's ``log.csv``; None where there is none (released weights, a missing folder)."""
    path = Path(run_dir) / "log.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = [(float(r["step"]), float(r["loss"]) if r.get("loss") not in (None, "") else float("nan")) for r in csv.DictReader(f)]
    if not rows:
        return None
    steps, losses = zip(*rows)
    return np.array(steps), np.array(losses)


def stage_trend(run_dir: str | Path) -> dict[str, Any] | None:
    """``trend`` of one run directory's logged losses (None without a log)."""
    log = read_log(run_dir)
    return None if log is None else trend(*log)
