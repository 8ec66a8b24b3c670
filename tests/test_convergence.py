"""The convergence flag (diled.convergence): a falling loss is flagged, a flat or noisy-flat one is not."""

from __future__ import annotations

import numpy as np

from diled import convergence


def test_a_falling_loss_is_flagged_a_plateau_is_not():
    rng = np.random.default_rng(0)
    steps = np.arange(1, 801)
    falling = 1.0 / np.sqrt(steps) + rng.normal(0, 0.002, len(steps))  # still 6% lower at the end of its last quarter
    plateau = 0.05 + rng.normal(0, 0.01, len(steps))  # flat, noisy
    assert convergence.trend(steps, falling)["improving"]
    t = convergence.trend(steps, plateau)
    assert not t["improving"] and abs(t["fall"]) < t["interval"] + 1e-12


def test_a_certain_but_tiny_fall_is_not_material():
    steps = np.arange(1, 1001)
    tiny = 1.0 - 1e-5 * steps  # exact, so certain; but 0.25% of the loss over the last quarter
    t = convergence.trend(steps, tiny)
    assert t["fall"] > t["interval"] and not t["improving"]


def test_the_fall_is_the_fitted_line_across_the_last_quarter():
    steps = np.arange(0, 101, dtype=float)
    line = 10.0 - 0.01 * steps  # exact line: the fall over steps 75..100 is 0.25
    t = convergence.trend(steps, line)
    assert abs(t["fall"] - 0.25) < 1e-9 and t["interval"] < 1e-9
    assert abs(t["relative_fall"] - 0.25 / 9.125) < 1e-9 and t["improving"]  # 2.7% of the loss there: material


def test_short_runs_and_missing_logs_are_not_judged(tmp_path):
    assert convergence.trend(np.arange(5), np.arange(5.0)[::-1])["enough"] is False
    assert convergence.stage_trend(tmp_path) is None
    (tmp_path / "log.csv").write_text("step,loss\n" + "".join(f"{i},{1 / i}\n" for i in range(1, 41)))
    assert convergence.stage_trend(tmp_path)["steps"] == 40
