"""Figures 1-10 from fabricated per-epoch plot data: files, titles naming params, errors."""
from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import yaml

from hw1.figures import FIGURES, FiguresError, draw, read_curves, render_figures
from hw1.params import load_params
from hw1.runs import RunId, data_note, load_report_values
from stages import figures as figures_stage

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")
REPORT_DATA = load_report_values(REPO / "reports/report_values.yaml")["data"]
SYNTHETIC = {"source": "synthetic", "dataset": "synthetic (not OctMNIST)", "md5": "5e1f00d5",
             "test_distribution": "train"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What each run logs, as the training stages write it (see hw1.outputs.write_run)
ACC = ["epoch", "train_acc", "val_acc"]
TORCH = ACC + ["train_loss", "val_loss"]


def columns_of(run: str) -> list[str]:
    if run == "q1/mlp":
        return ACC + ["train_loss"]
    return ACC if run.startswith("q1/") else TORCH


def write_plot(plots: Path, run: str, columns: list[str], epochs: int = 3) -> None:
    path = plots / f"{run}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for epoch in range(1, epochs + 1):
            writer.writerow([epoch] + [round(1.0 / (epoch + i), 4)
                                       for i in range(len(columns) - 1)])


def fabricate_plots(root: Path) -> Path:
    plots = root / "plots"
    for run in {panel.run.path for spec in FIGURES for panel in spec.panels}:
        write_plot(plots, run, columns_of(run))
    return plots


def texts(fig) -> str:
    """Every title, label, legend entry and note drawn on ``fig``, as one string."""
    parts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        parts += [t.get_text() for t in ax.get_legend().get_texts()]
    return "\n".join(parts)


def test_every_figure_is_written_as_png(tmp_path):
    plots = fabricate_plots(tmp_path)
    written = render_figures(PARAMS, SYNTHETIC, REPORT_DATA, plots, tmp_path / "figures")
    assert [p.name for p in written] == [spec.filename for spec in FIGURES]
    assert [spec.number for spec in FIGURES] == list(range(1, 11))
    assert written[0].name == "fig01_perceptron.png"
    assert written[-1].name == "fig10_regularization.png"
    for path in written:
        assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    # atomic writes leave no temporary files behind
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == \
        sorted(spec.filename for spec in FIGURES)


def test_side_by_side_panels_name_the_params_that_set_each_run_apart(tmp_path):
    plots = fabricate_plots(tmp_path)
    spec = next(s for s in FIGURES if s.number == 8)
    fig = draw(spec, PARAMS, "Data: somewhere", plots)
    left, right = fig.axes
    assert "batch_size=16" in left.get_title() and "train" in left.get_title()
    assert "batch_size=1024" in right.get_title() and "q2/ffn_bs1024" in right.get_title()
    shared = fig.texts[0].get_text()
    assert shared.startswith("Figure 8:") and "lr=0.1" in shared and "batch_size" not in shared
    assert left.get_xlabel() == "Epoch" and left.get_ylabel() == "Cross-entropy loss"
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["training", "validation"]


def test_single_run_figure_names_the_params_actually_used(tmp_path):
    plots = fabricate_plots(tmp_path)
    params = copy.deepcopy(PARAMS)
    params["q1"]["logreg_lr1e-2"]["lr"] = 0.03
    spec = next(s for s in FIGURES if s.number == 2)
    drawn = texts(draw(spec, params, "Data: somewhere", plots))
    assert "lr=0.03" in drawn and "q1/logreg_lr1e-2" in drawn and "Accuracy" in drawn


def test_figures_say_when_the_data_is_the_synthetic_stand_in(tmp_path):
    plots = fabricate_plots(tmp_path)
    fig = draw(FIGURES[0], PARAMS, data_note(SYNTHETIC, REPORT_DATA), plots)
    assert "Data: synthetic stand-in, not comparable to the report" in texts(fig)


def test_log_scale_figure_and_mlp_without_validation_loss(tmp_path):
    plots = fabricate_plots(tmp_path)
    spec = next(s for s in FIGURES if s.number == 6)
    (ax,) = draw(spec, PARAMS, "", plots).axes
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["training"]


def test_missing_plot_file_names_the_stage_to_run(tmp_path):
    plots = fabricate_plots(tmp_path)
    (plots / "q2/ffn_lr1.csv").unlink()
    figure9 = [s for s in FIGURES if s.number == 9]
    with pytest.raises(FiguresError, match=r"q2/ffn_lr1\.csv not found.*dvc repro q2@ffn_lr1"):
        render_figures(PARAMS, SYNTHETIC, REPORT_DATA, plots, tmp_path / "figures", figure9)
    assert not (tmp_path / "figures" / figure9[0].filename).exists()


def test_plot_file_without_a_needed_column_says_which(tmp_path):
    plots = fabricate_plots(tmp_path)
    write_plot(plots, "train", ACC)
    spec = next(s for s in FIGURES if s.number == 9)
    with pytest.raises(FiguresError, match=r"train\.csv has no column train_loss "
                                           r"\(it has epoch, train_acc, val_acc\)"):
        draw(spec, PARAMS, "", plots)


def test_empty_cells_are_gaps_not_zeros(tmp_path):
    path = tmp_path / "plots/train.csv"
    path.parent.mkdir()
    path.write_text("epoch,train_acc,val_acc\n1,0.5,\n2,0.6,0.7\n")
    curves = read_curves(RunId.parse("train"), tmp_path / "plots")
    assert curves["epoch"] == [1.0, 2.0] and curves["val_acc"][1] == 0.7
    assert curves["val_acc"][0] != curves["val_acc"][0]  # NaN


def test_stage_renders_from_the_working_directory(tmp_path, monkeypatch):
    fabricate_plots(tmp_path)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/data.json").write_text(json.dumps(SYNTHETIC))
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/report_values.yaml").write_text(
        (REPO / "reports/report_values.yaml").read_text())
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("hw1.figures.FIGURES", FIGURES[:2])
    figures_stage.main()
    assert (tmp_path / "reports/figures/fig01_perceptron.png").read_bytes()[:8] == PNG_SIGNATURE


def test_dvc_plots_overlay_only_runs_of_the_pipeline():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    runs = {"train"} | {f"{group}/{key}" for group in ("q1", "q2") for key in PARAMS[group]}
    for entry in dvc["plots"]:
        ((plot_id, props),) = entry.items()
        targets = props["y"] if isinstance(props["y"], dict) else {plot_id: props["y"]}
        for path, fields in targets.items():
            fields = [fields] if isinstance(fields, str) else fields
            if path in ("plots/q1", "plots/q2"):
                assert set(fields) <= set(ACC)
                continue
            run = path.removeprefix("plots/").removesuffix(".csv")
            assert run in runs, f"{plot_id}: {path} is no run's plot data"
            assert set(fields) <= set(columns_of(run)), f"{plot_id}: {run} logs no {fields}"
