"""Table 6 rendering: bold rules, not-run rows, LaTeX; probe maths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diled import probe
from diled.report import figures, tables


def _df(rows):
    return tables.with_not_run(pd.DataFrame([{**{c: np.nan for c in tables.SHOWN}, **r, "manifest": "m"} for r in rows]), {"X": "why"})


def test_bold_best_per_t_and_direction():
    df = _df([
        {"model": "DDIM", "T": 10, "Gen FID": 5.0, "Rec SSIM (random)": 0.9},
        {"model": "DiLED", "T": 10, "Gen FID": 4.0, "Rec SSIM (random)": 0.8},
        {"model": "DDIM", "T": 20, "Gen FID": 3.0, "Rec SSIM (random)": 0.7},
        {"model": "DiLED", "T": 20, "Gen FID": 3.5, "Rec SSIM (random)": 0.95},
    ])
    m = tables.bold_mask(df)
    assert m["Gen FID"].tolist() == [False, True, True, False, False]
    assert m["Rec SSIM (random)"].tolist() == [True, False, False, True, False]  # higher is better


def test_model_without_t_is_bold_only_if_it_beats_every_t():
    base = [{"model": "DDIM", "T": 10, "Gen FID": 5.0}, {"model": "DiLED", "T": 20, "Gen FID": 3.0}]
    df = _df([*base, {"model": "LDM", "T": pd.NA, "Gen FID": 4.0}])
    assert not tables.bold_mask(df).at[2, "Gen FID"]  # beats T=10's best, not T=20's
    df = _df([*base, {"model": "LDM", "T": pd.NA, "Gen FID": 2.0}])
    assert tables.bold_mask(df).at[2, "Gen FID"]


def test_markdown_and_latex_cells(tmp_path):
    df = _df([{"model": "DDIM", "T": 10, "Gen FID": 5.0}, {"model": "DiLED", "T": 10, "Gen FID": 4.0}])
    df["manifest"] = ["a.json", "b.json", float("nan")]
    paths = {k: tmp_path / f"t.{k}" for k in ("csv", "md", "tex")}
    tables.write_table6(df, ["a note"], caption="cap", **paths)
    md, tex = paths["md"].read_text(), paths["tex"].read_text()
    assert "**4.00**" in md and "| X " in md and "not run" in md and "- X: not run: why" in md and "n/a" in md
    assert md.index("lower is better") < md.index("- X: not run") < md.index("- a note")
    assert "\\textbf{4.00}" in tex and "X & -- & not run" in tex and "$\\alpha$" in tex and "\\caption{cap}" in tex
    assert pd.read_csv(paths["csv"])["Gen FID"].tolist()[:2] == [5.0, 4.0]


def test_write_table_writes_what_it_is_asked_and_nothing_else(tmp_path):
    df = pd.DataFrame({"model": ["A", "B"], "score": [1.5, 2.0]})
    tables.write_table(df, title="T", notes=["n1", "n2"], md=tmp_path / "t.md")
    assert (tmp_path / "t.md").read_text() == "# T\n\n" + df.to_markdown(index=False) + "\n\n- n1\n- n2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.md"]


def test_linear_probe_separable_and_chance():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    z = np.eye(3)[y] * 5 + rng.normal(size=(600, 3))
    good = probe.linear_probe(z[:400], y[:400], z[400:], y[400:])
    noise = probe.linear_probe(rng.normal(size=(400, 3)), y[:400], rng.normal(size=(200, 3)), y[400:])
    assert good["test_accuracy"] > 0.97 and noise["test_accuracy"] < 0.5
    with pytest.raises(ValueError, match="two classes"):
        probe.linear_probe(z[:10], np.zeros(10), z[10:20], y[10:20])


def test_probe_subset_is_seeded_and_checked():
    assert np.array_equal(probe.subset(100, 10, 3), probe.subset(100, 10, 3))
    with pytest.raises(ValueError, match="1..100"):
        probe.subset(100, 101, 0)


def test_class_directions_move_a_linear_model_to_the_target():
    """On separable Gaussian classes, stepping along dirs[a, b] turns a's predictions into b's."""
    from sklearn.linear_model import LogisticRegression

    from diled import editing

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(10), 50)
    centers = rng.normal(size=(10, 16)) * 3
    z = centers[y] + rng.normal(size=(500, 16))
    dirs = editing.class_directions(z, y)
    assert dirs.shape == (10, 10, 16)
    np.testing.assert_allclose(np.linalg.norm(dirs[0, 1]), 1.0)
    assert np.all(dirs[3, 3] == 0)
    clf = LogisticRegression(max_iter=2000).fit(z, y)
    src = z[y == 0]
    assert (clf.predict(src) == 0).mean() > 0.9
    assert (clf.predict(src + 12 * dirs[0, 1]) == 1).mean() > 0.9


def test_edit_figure_shows_one_example_per_class_before_repeating(tmp_path):
    from diled import editing

    labels = np.array([0, 0, 0, 1, 1, 3, 3, 3, 3])  # a class-sorted split, as the held-out subset is
    assert editing.figure_examples(labels, 5).tolist() == [0, 3, 5, 1, 4]
    assert editing.figure_examples(labels, 20).tolist() == [0, 3, 5, 1, 4, 6, 2, 7, 8]
    assert editing.figure_examples(labels[::-1], 3).tolist() == [6, 4, 0]  # first occurrence within each class
    strips = {"A": np.zeros((3, 3, 8, 8), np.uint8), "B": np.full((3, 3, 8, 8), 255, np.uint8)}
    figures.edit_strips(strips, [1, 2], tmp_path / "e.png", "t", ["0 -> 1", "1 -> 2", "3 -> 4"])
    assert (tmp_path / "e.png").stat().st_size > 1000


def test_ldm_at_a_t_is_judged_against_every_t_not_its_own():
    """LDM has rows at each T but is not in the authors' T-group: bold only where it beats all of DDIM/DiffAE/DiLED."""
    df = _df([
        {"model": "DDIM", "T": 10, "Gen FID": 5.0}, {"model": "DiLED", "T": 20, "Gen FID": 3.0},
        {"model": "LDM", "T": 10, "Gen FID": 4.0}, {"model": "LDM", "T": 20, "Gen FID": 2.5},
        {"model": "CM-CD", "T": 1, "Gen FID": 9.0},
    ])
    m = tables.bold_mask(df)["Gen FID"].tolist()
    assert m == [True, True, False, True, False, False]  # DDIM stays bold at T=10 although LDM T=10 is lower


def test_a_not_run_row_gives_way_to_a_model_that_ran():
    df = tables.with_not_run(pd.DataFrame([{"model": "NVAE", "T": 1, "Gen FID": 9.0}]), {"NVAE": "why", "GAN": "why not"})
    assert list(df["model"]) == ["NVAE", "GAN"] and list(df["status"]) == ["run", "not run: why not"]


def test_budget_note_sums_each_rows_lineage():
    from diled.report.tables import budget_note, training_cost

    def manifest(model, stage, steps, batch, cpu):
        return {"training": {"model": model, "stage": stage, "steps": steps, "parameters": 10, "s_per_step": 0.5,
                             "train_wall_s": steps * 0.5, "resumed_from_step": 0, "precision": "fp32", "rows_seen": steps * batch,
                             "train_cpu_s": cpu, "cpu_s_per_step": cpu / steps},
                "hardware": {"torch_threads": 1, "cuda": None, "machine": "x86_64"}}

    manifests = {"image/ddim/train": manifest("ddim", "train", 800, 64, 400.0),
                 "image/diffae/autoencoder": manifest("diffae", "autoencoder", 4800, 32, 1000.0),
                 "image/diffae/latent": manifest("diffae", "latent", 2000, 256, 50.0)}
    cost = training_cost(manifests)
    (note,) = budget_note(cost)
    assert "DDIM: ddim/train 51,200 (400 CPU-s)" in note
    assert "DiffAE: diffae/autoencoder 153,600 + diffae/latent 512,000 (1,050 CPU-s)" in note  # its lineage, stage by stage
    assert cost.loc[cost["file"] == "image/ddim/train", "CPU ms/step"].item() == 500.0


def test_generation_health_note_flags_unrecognisable_rows_and_one_digit_blobs_separately():
    """A row under 50% recognisable is flagged as such; a row the judge reads confidently as one digit (recognisable 100%,
    class entropy 0: what DDIM with EMA 0.999 drew after 800 steps) is flagged as drawing few digits; a healthy row neither."""
    def record(model, recognisable, entropy):
        return {"track": "image", "model": model, "steps": 50,
                "latent_health": {"generation_recognisable": recognisable, "generation_class_entropy": entropy,
                                  "judge_accuracy_held_out": 0.986, "real_recognisable": 0.97}}

    note = " ".join(tables.generation_health_note([record("diffae", 0.78, 0.98), record("ddim", 0.42, 0.87),
                                                   record("cmcd", 1.0, 0.0)]))
    assert "held-out accuracy 0.986" in note and "97% of real" in note
    flagged, few = note.split("**Not recognisable as digits**")[1].split("**Few digits drawn**")
    assert "DDIM T = 50 (42%)" in flagged and "DiffAE" not in flagged and "CM-CD" not in flagged
    assert "CM-CD T = 50 (0.00)" in few and "DDIM" not in few and "DiffAE" not in few
    healthy = " ".join(tables.generation_health_note([record("diffae", 0.78, 0.98)]))
    assert "Every row's samples are recognisable" in healthy and "Few digits" not in healthy
    assert tables.generation_health_note([{"model": "diffae", "steps": 50, "latent_health": {}}]) == []
