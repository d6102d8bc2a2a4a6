"""The mean curves and Figures 1-10, from fabricated per-seed curves: the mean, min and max over
seeds, a diverged seed, files, bands, titles naming params, errors, and dvc.yaml's plots."""
from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.collections import PolyCollection

from hw1.figures import (
    FIGURES,
    FiguresError,
    draw,
    mean_curve,
    read_curves,
    render_figures,
    seed_curve_path,
    write_mean_curves,
)
from hw1.outputs import write_csv
from hw1.params import load_params
from hw1.report_inputs import data_note, load_report_values
from hw1.runs import RunId, pipeline_runs
from stages import figures as figures_stage

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")
REPORT_DATA = load_report_values(REPO / "reports/report_values.yaml")["data"]
SYNTHETIC = {"source": "synthetic", "dataset": "synthetic (not OctMNIST)", "md5": "5e1f00d5",
             "sizes": {"train": 975, "val": 108, "test": 1000},
             "report_test": {"size": 529, "missing": None}}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What each run logs, as the training stages write it (see hw1.outputs.write_run)
ACC = ["epoch", "train_acc", "val_acc"]
TORCH = ["epoch", "train_loss", "val_loss", "train_acc", "val_acc"]
BAND = "mean of 3 seeds, band: min-max"


def with_seeds(*seeds: int, params: dict = PARAMS) -> dict:
    return {**copy.deepcopy(params), "seeds": list(seeds)}


def columns_of(run: str) -> list[str]:
    if run == "q1/mlp":
        return ["epoch", "train_loss", "train_acc", "val_acc"]
    return ACC if run.startswith("q1/") else TORCH


def write_curve(plots: Path, run: str, seed: int, values: np.ndarray,
                columns: list[str] | None = None) -> Path:
    """A per-seed curve as the training stages write it: one row per epoch, values rounded to
    6 decimals, a non-finite value an empty cell. ``values``: epochs x (columns - epoch)."""
    columns = columns or columns_of(run)
    rows = [{"epoch": epoch, **{c: round(float(v), 6) if math.isfinite(v) else ""
                                for c, v in zip(columns[1:], row)}}
            for epoch, row in enumerate(values, start=1)]
    path = seed_curve_path(RunId.parse(run), seed, plots)
    write_csv(path, rows)
    return path


def fabricate_plots(root: Path, seeds: tuple[int, ...] = (42,), epochs: int = 3) -> Path:
    """Every run's curve for every seed, with values that differ by run, seed and epoch."""
    plots = root / "plots"
    rng = np.random.default_rng(0)
    for run in pipeline_runs(PARAMS):
        for seed in seeds:
            write_curve(plots, run.path, seed,
                        rng.uniform(0.1, 0.9, (epochs, len(columns_of(run.path)) - 1)))
    return plots


def figure(number: int):
    return next(s for s in FIGURES if s.number == number)


def draw_from(root: Path, number: int, params: dict) -> object:
    """Figure ``number`` drawn from the mean curves of the per-seed curves under ``root``."""
    return draw(figure(number), params, "Data: somewhere",
                write_mean_curves(params, root / "plots"))


def read_columns(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {col: [r[col] for r in rows] for col in rows[0]}


def as_floats(cells: list[str]) -> list[float]:
    return [float(c) if c else math.nan for c in cells]


def texts(fig) -> str:
    """Every title, label, legend entry and note drawn on ``fig``, as one string."""
    parts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        parts += [t.get_text() for t in ax.texts]
        parts += [t.get_text() for t in ax.get_legend().get_texts()]
    return "\n".join(parts)


def bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


# --- the mean curves ---------------------------------------------------------------------------

def test_mean_curve_is_numpys_mean_with_min_and_max_columns(tmp_path):
    plots = fabricate_plots(tmp_path, seeds=(42, 1, 2))
    rng = np.random.default_rng(7)
    per_seed = rng.uniform(0.0, 2.0, (3, 5, 4)).round(6)  # seeds x epochs x curve columns
    for seed, values in zip((42, 1, 2), per_seed):
        write_curve(plots, "q2/ffn_lr1", seed, values)
    mean = write_mean_curves(with_seeds(42, 1, 2), plots)[RunId.parse("q2/ffn_lr1")]

    written = read_columns(plots / "q2/ffn_lr1.csv")
    assert list(written) == TORCH + [f"{c}_{s}" for c in TORCH[1:] for s in ("min", "max")]
    assert written["epoch"] == ["1", "2", "3", "4", "5"]
    for i, col in enumerate(TORCH[1:]):
        np.testing.assert_array_equal(as_floats(written[col]),
                                      per_seed[:, :, i].mean(axis=0).round(6))
        np.testing.assert_array_equal(as_floats(written[f"{col}_min"]),
                                      per_seed[:, :, i].min(axis=0))
        np.testing.assert_array_equal(as_floats(written[f"{col}_max"]),
                                      per_seed[:, :, i].max(axis=0))
        assert mean[col] == as_floats(written[col])  # what the figures draw is what is written


def test_one_seed_mean_file_is_the_seed_curve_byte_for_byte(tmp_path):
    plots = fabricate_plots(tmp_path, seeds=(7,))
    values = np.array([[2.302585, math.nan, 0.25, 1 / 3],
                       [1.7e16, 1e-06, 1.0, 0.123456789],
                       [math.inf, 0.0, 0.5, 0.999999]])
    seed_file = write_curve(plots, "train", 7, values)
    write_mean_curves(with_seeds(7), plots)
    assert (plots / "train.csv").read_bytes() == seed_file.read_bytes()
    assert ",," in seed_file.read_text()  # the empty cell survives as an empty cell


def test_diverged_seed_that_stops_early_is_averaged_over_the_seeds_that_have_each_epoch():
    nan = math.nan
    # the first seed diverges at epoch 2 (loss empty there) and stops; the last has no
    # training loss at epoch 3 and stops there
    curves = [{"epoch": [1, 2], "train_loss": [3.0, nan], "val_acc": [0.3, 0.2]},
              {"epoch": [1, 2, 3, 4], "train_loss": [1.0, 0.8, 0.6, 0.5],
               "val_acc": [0.5, 0.6, 0.7, 0.8]},
              {"epoch": [1, 2, 3], "train_loss": [2.0, 1.0, nan], "val_acc": [0.4, 0.5, 0.4]}]
    mean = mean_curve(curves)
    padded = {col: np.array([c[col] + [nan] * (4 - len(c[col])) for c in curves])
              for col in ("train_loss", "val_acc")}
    assert mean["epoch"] == [1, 2, 3, 4]
    for col, table in padded.items():
        np.testing.assert_allclose(mean[col], np.nanmean(table, axis=0), rtol=0, atol=5e-7)
        np.testing.assert_array_equal(mean[f"{col}_min"], np.nanmin(table, axis=0))
        np.testing.assert_array_equal(mean[f"{col}_max"], np.nanmax(table, axis=0))
    assert mean["train_loss"][1] == 0.9  # (0.8 + 1.0) / 2 without the diverged seed's cell
    assert mean["val_acc"][3] == 0.8     # epoch 4: the one seed that got there


def test_an_epoch_no_seed_measured_stays_an_empty_cell(tmp_path):
    plots = fabricate_plots(tmp_path, seeds=(1, 2))
    write_curve(plots, "q1/mlp", 1, np.array([[math.nan, 0.5, 0.4], [math.nan, 0.6, 0.5]]))
    write_curve(plots, "q1/mlp", 2, np.array([[math.nan, 0.7, 0.6]]))
    write_mean_curves(with_seeds(1, 2), plots)
    assert (plots / "q1/mlp.csv").read_text().splitlines()[1:] == [
        "1,,0.6,0.5,,,0.5,0.7,0.4,0.6", "2,,0.6,0.5,,,0.6,0.6,0.5,0.5"]


def test_every_run_of_params_gets_its_mean_curve(tmp_path):
    plots = fabricate_plots(tmp_path, seeds=(42, 1))
    means = write_mean_curves(with_seeds(42, 1), plots)
    expected = {"train"} | {f"{g}/{k}" for g in ("q1", "q2") for k in PARAMS[g]}
    assert {run.path for run in means} == expected
    assert all((plots / f"{run}.csv").is_file() for run in expected)
    assert len(expected) == 15


# --- the figures -------------------------------------------------------------------------------

def test_every_figure_is_written_as_png(tmp_path):
    plots = fabricate_plots(tmp_path)
    params = with_seeds(42)
    written = render_figures(params, write_mean_curves(params, plots), SYNTHETIC, REPORT_DATA,
                             tmp_path / "figures")
    assert [p.name for p in written] == [spec.filename for spec in FIGURES]
    assert [spec.number for spec in FIGURES] == list(range(1, 11))
    assert written[0].name == "fig01_perceptron.png"
    assert written[-1].name == "fig10_regularization.png"
    for path in written:
        assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    # atomic writes leave no temporary files behind
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == \
        sorted(spec.filename for spec in FIGURES)


def test_band_and_its_caption_only_with_several_seeds(tmp_path):
    fabricate_plots(tmp_path, seeds=(42, 1, 2))
    one = draw_from(tmp_path, 8, with_seeds(42))
    assert all(bands(ax) == [] for ax in one.axes)
    assert "seeds" not in texts(one) and "band" not in texts(one)

    several = draw_from(tmp_path, 8, with_seeds(42, 1, 2))
    means = write_mean_curves(with_seeds(42, 1, 2), tmp_path / "plots")
    for ax, run in zip(several.axes, ("train", "q2/ffn_bs1024")):
        mean = means[RunId.parse(run)]
        for band, col in zip(bands(ax), ("train_loss", "val_loss"), strict=True):
            # the band's outline runs along the seeds' minimum and back along their maximum
            outline = set(band.get_paths()[0].vertices[:, 1].round(6))
            assert outline == set(mean[f"{col}_min"]) | set(mean[f"{col}_max"])
            assert band.get_alpha() == pytest.approx(0.2)
        assert [line.get_label() for line in ax.get_lines()] == ["training", "validation"]
    assert BAND in several.texts[0].get_text()


def test_panel_without_finite_values_says_so_on_the_runs_epoch_axis(tmp_path):
    plots = fabricate_plots(tmp_path)
    # q2@ffn_lr1 diverged in its first epoch: one row, both losses non-finite
    write_curve(plots, "q2/ffn_lr1", 42, np.array([[math.nan, math.nan, 0.25, 0.25]]))
    left, right = draw_from(tmp_path, 9, with_seeds(42)).axes
    assert [t.get_text() for t in right.texts] == ["no finite values (diverged)"]
    assert right.get_xlim() == (1, PARAMS["q2"]["ffn_lr1"]["epochs"])
    assert len(left.texts) == 0 and len(left.get_lines()) == 2


def test_side_by_side_panels_name_the_params_that_set_each_run_apart(tmp_path):
    fabricate_plots(tmp_path)
    left, right = (fig := draw_from(tmp_path, 8, with_seeds(42))).axes
    assert "batch_size=16" in left.get_title() and "train" in left.get_title()
    assert "batch_size=1024" in right.get_title() and "q2/ffn_bs1024" in right.get_title()
    shared = fig.texts[0].get_text()
    assert shared.startswith("Figure 8:") and "lr=0.1" in shared and "batch_size" not in shared
    assert left.get_xlabel() == "Epoch" and left.get_ylabel() == "Cross-entropy loss"
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["training", "validation"]


def test_single_run_figure_names_the_params_actually_used(tmp_path):
    fabricate_plots(tmp_path)
    params = with_seeds(42)
    params["q1"]["logreg_lr1e-2"]["lr"] = 0.03
    drawn = texts(draw_from(tmp_path, 2, params))
    assert "lr=0.03" in drawn and "q1/logreg_lr1e-2" in drawn and "Accuracy" in drawn


def test_figures_say_when_the_data_is_the_synthetic_stand_in(tmp_path):
    plots = fabricate_plots(tmp_path)
    params = with_seeds(42)
    fig = draw(FIGURES[0], params, data_note(SYNTHETIC, REPORT_DATA),
               write_mean_curves(params, plots))
    assert "Data: synthetic stand-in, not comparable to the report" in texts(fig)


def test_log_scale_figure_and_mlp_without_validation_loss(tmp_path):
    fabricate_plots(tmp_path)
    (ax,) = draw_from(tmp_path, 6, with_seeds(42)).axes
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["training"]


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("run, stage", [("q2/ffn_lr1", "q2@ffn_lr1-1"), ("train", "train@1")])
def test_missing_seed_curve_names_the_stage_to_run(tmp_path, run, stage):
    plots = fabricate_plots(tmp_path, seeds=(42, 1))
    (plots / f"seeds/{run}/1.csv").unlink()
    with pytest.raises(FiguresError, match=rf"plots/seeds/{run}/1\.csv not found: .* seed 1; "
                                           rf"run `dvc repro {stage}` first"):
        write_mean_curves(with_seeds(42, 1), plots)


def test_curve_with_a_value_that_is_not_a_number_names_the_file(tmp_path):
    path = fabricate_plots(tmp_path) / "seeds/q1/mlp/42.csv"
    path.write_text("epoch,train_loss,train_acc,val_acc\n1,0.5,abc,0.5\n")
    with pytest.raises(FiguresError, match=r"seeds/q1/mlp/42\.csv holds a value that is not a "
                                           r"number .*'abc'.*dvc repro q1@mlp-42"):
        read_curves(RunId.parse("q1/mlp"), 42, tmp_path / "plots")


def test_seeds_of_one_run_with_different_columns_say_which(tmp_path):
    plots = fabricate_plots(tmp_path, seeds=(42, 1))
    write_curve(plots, "train", 1, np.full((3, 2), 0.5), ACC)
    with pytest.raises(FiguresError, match=r"seeds/train/1\.csv has columns epoch, train_acc, "
                                           r"val_acc, but .*seeds/train/42\.csv has epoch, "
                                           r"train_loss.*dvc repro -f train@1"):
        write_mean_curves(with_seeds(42, 1), plots)


def test_curve_without_a_needed_column_says_which(tmp_path):
    plots = fabricate_plots(tmp_path)
    write_curve(plots, "train", 42, np.full((3, 2), 0.5), ACC)
    with pytest.raises(FiguresError, match=r"run 'train' logs no column train_loss "
                                           r"\(its curves have epoch, train_acc, val_acc\)"):
        draw_from(tmp_path, 9, with_seeds(42))


def test_empty_cells_are_gaps_not_zeros(tmp_path):
    path = tmp_path / "plots/seeds/train/42.csv"
    path.parent.mkdir(parents=True)
    path.write_text("epoch,train_acc,val_acc\n1,0.5,\n2,0.6,0.7\n")
    curves = read_curves(RunId.parse("train"), 42, tmp_path / "plots")
    assert curves["epoch"] == [1, 2] and curves["val_acc"][1] == 0.7
    assert math.isnan(curves["val_acc"][0])


def test_stage_writes_mean_curves_and_figures_from_the_working_directory(tmp_path,
                                                                          monkeypatch):
    fabricate_plots(tmp_path, seeds=(42, 3))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/data.json").write_text(json.dumps(SYNTHETIC))
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/report_values.yaml").write_text(
        (REPO / "reports/report_values.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_seeds(42, 3)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("hw1.figures.FIGURES", FIGURES[:2])
    figures_stage.main()
    assert (tmp_path / "reports/figures/fig01_perceptron.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "val_acc_max" in read_columns(tmp_path / "plots/q2/ffn_lr1.csv")


# --- dvc.yaml ------------------------------------------------------------------------------------

def test_dvc_plots_overlay_only_runs_of_the_pipeline():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    runs = {"train"} | {f"{group}/{key}" for group in ("q1", "q2") for key in PARAMS[group]}
    figures = dvc["stages"]["figures"]
    stage_plots = {path: props for entry in figures["plots"] for path, props in entry.items()}
    mean_files = {f"plots/{run}.csv" for run in runs}
    # the figures stage declares every run's mean curve, git-tracked, with its own props
    assert mean_files <= stage_plots.keys()
    for path in mean_files:
        props = stage_plots[path]
        run = path.removeprefix("plots/").removesuffix(".csv")
        assert props["cache"] is False and props["x"] == "epoch" and props["y"] == "val_acc"
        assert run in props["title"] and "mean over seeds" in props["title"], path
        assert props["x_label"] and props["y_label"]
    assert "plots/seeds" in figures["deps"] and "seeds" in figures["params"]

    top_level = [plot_id for entry in dvc["plots"] for plot_id in entry]
    # DVC draws a stage's plots output on its own: a top-level entry for it would draw it twice
    assert not set(top_level) & stage_plots.keys()
    for entry in dvc["plots"]:
        ((plot_id, props),) = entry.items()
        assert isinstance(props["y"], dict), f"{plot_id}: only overlays belong at the top level"
        for path, fields in props["y"].items():
            fields = [fields] if isinstance(fields, str) else fields
            assert path in mean_files, f"{plot_id}: {path} is no run's mean curve"
            run = path.removeprefix("plots/").removesuffix(".csv")
            assert set(fields) <= set(columns_of(run)), f"{plot_id}: {run} logs no {fields}"
