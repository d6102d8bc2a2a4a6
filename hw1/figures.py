"""Figures 1-10 of the report, and the mean curve of every run, from the per-seed curves alone.

Every training run writes one per-epoch curve per seed (``plots/seeds/<run>/<seed>.csv``). This
module averages them per run into ``plots/<run>.csv`` (the file `dvc plots` overlays read) and
draws the report's figures from those means: with one seed, exactly that seed's curve; with
several, the mean line and a band from the lowest to the highest seed.
No figure retrains anything: restyling a figure re-runs only the `figures` stage. Each figure
names the params of the runs it shows (from params.yaml) and the data they came from, so a
figure of a changed run or of the synthetic stand-in cannot pass for the report's.
Figure 11 (Question 3) is drawn by the `boolean` stage.
"""
from __future__ import annotations

import csv
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Figure (not pyplot): no global state and no GUI backend; savefig renders with Agg.
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hw1.errors import UserError
from hw1.outputs import atomic_path, write_csv
from hw1.params import validate_seeds
from hw1.report_inputs import data_note, format_params, split_params
from hw1.runs import RunId, pipeline_runs, run_params

FIGURES_DIR = Path("reports/figures")


class FiguresError(UserError):
    """A curve file is missing or malformed, or lacks a column; the message says what to run."""


@dataclass(frozen=True)
class Panel:
    """One axes: a run and what of it to draw (see ``_KINDS``)."""
    run: RunId
    kind: str
    title: str


@dataclass(frozen=True)
class FigureSpec:
    number: int
    filename: str
    caption: str
    panels: tuple[Panel, ...]


# kind -> (columns drawn, y label, log scale); the report draws training blue, validation orange
_KINDS: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "accuracy": (("train_acc", "val_acc"), "Accuracy", False),
    "loss": (("train_loss", "val_loss"), "Cross-entropy loss", False),
    "loss_log": (("train_loss", "val_loss"), "Cross-entropy loss (log scale)", True),
    "val_accuracy": (("val_acc",), "Validation accuracy", False),
}
# Loss columns a run may lack (Question 1's MLP logs training loss only); the rest are required.
_OPTIONAL = {"val_loss"}
_LEGEND = {"train_acc": "training", "val_acc": "validation", "train_loss": "training",
           "val_loss": "validation"}
_COLORS = {"train_acc": "C0", "val_acc": "C1", "train_loss": "C0", "val_loss": "C1"}

_run = RunId.parse
FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(1, "fig01_perceptron.png", "Accuracy per epoch, perceptron",
               (Panel(_run("q1/perceptron"), "accuracy", "Perceptron (NumPy)"),)),
    FigureSpec(2, "fig02_logreg_lr1e-2.png", "Accuracy per epoch, logistic regression",
               (Panel(_run("q1/logreg_lr1e-2"), "accuracy", "Logistic regression (NumPy)"),)),
    FigureSpec(3, "fig03_logreg_lr1e-3.png", "Accuracy per epoch, logistic regression",
               (Panel(_run("q1/logreg_lr1e-3"), "accuracy", "Logistic regression (NumPy)"),)),
    FigureSpec(4, "fig04_mlp_accuracy.png", "Accuracy per epoch, MLP",
               (Panel(_run("q1/mlp"), "accuracy", "MLP (NumPy)"),)),
    FigureSpec(5, "fig05_mlp_loss.png", "Cross-entropy loss per epoch, MLP",
               (Panel(_run("q1/mlp"), "loss", "MLP (NumPy)"),)),
    FigureSpec(6, "fig06_mlp_loss_log.png", "Figure 5 in logarithmic scale",
               (Panel(_run("q1/mlp"), "loss_log", "MLP (NumPy)"),)),
    FigureSpec(7, "fig07_logreg_torch.png",
               "Logistic regression (PyTorch): training-validation loss and validation accuracy",
               (Panel(_run("q2/logreg_lr1e-2"), "loss", "Loss"),
                Panel(_run("q2/logreg_lr1e-2"), "val_accuracy", "Validation accuracy"))),
    FigureSpec(8, "fig08_batch_size.png", "Training-validation loss, batch size 16 vs 1024",
               (Panel(_run("train"), "loss", "Feed-forward network"),
                Panel(_run("q2/ffn_bs1024"), "loss", "Feed-forward network"))),
    FigureSpec(9, "fig09_learning_rate.png", "Training-validation loss, learning rate 0.1 vs 1",
               (Panel(_run("train"), "loss", "Feed-forward network"),
                Panel(_run("q2/ffn_lr1"), "loss", "Feed-forward network"))),
    FigureSpec(10, "fig10_regularization.png",
               "Training-validation loss, without regularization vs dropout",
               (Panel(_run("q2/ffn_bs256_e150"), "loss", "Feed-forward network"),
                Panel(_run("q2/ffn_bs256_e150_dropout"), "loss", "Feed-forward network"))),
)


# column -> one value per epoch (NaN where that epoch has none); ``epoch`` holds ints
Curves = dict[str, list[float]]


def seed_curve_path(run: RunId, seed: int, plots_dir: str | Path = "plots") -> Path:
    """``plots/seeds/<run>/<seed>.csv``: the curve the stage ``run.seed_stage(seed)`` writes."""
    return Path(plots_dir) / f"{run.seed_curve(seed)}.csv"


def read_curves(run: RunId, seed: int, plots_dir: str | Path = "plots") -> Curves:
    """The curve of ``run`` trained with ``seed``, as columns, or a FiguresError naming the
    stage to run."""
    path = seed_curve_path(run, seed, plots_dir)
    stage = run.seed_stage(seed)
    if not path.is_file():
        raise FiguresError(f"{path} not found: the figures need run '{run}' with seed {seed}; "
                           f"run `dvc repro {stage}` first")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "epoch" not in rows[0]:
        raise FiguresError(f"{path} has no epochs; run `dvc repro {stage}` again")
    try:
        # epochs stay ints so that a one-seed mean is written back byte for byte;
        # an empty cell is an epoch the run did not measure: a gap in the line, not a zero
        return {col: [int(r[col]) if col == "epoch" else
                      float(r[col]) if r[col] not in ("", None) else math.nan for r in rows]
                for col in rows[0]}
    except ValueError as err:
        raise FiguresError(f"{path} holds a value that is not a number ({err}); run "
                           f"`dvc repro {stage}` again") from None


def mean_curve(curves: Sequence[Curves]) -> Curves:
    """The mean over the seeds' curves of one run, epoch by epoch, plus ``<col>_min`` and
    ``<col>_max`` per column when there are several.

    A seed that diverged stops early and leaves empty cells: each epoch averages the seeds that
    have a finite value there, and is empty (NaN) where none has. Means are rounded to 6
    decimals like the curves themselves, so one seed's mean is its curve unchanged.
    """
    columns = [c for c in curves[0] if c != "epoch"]
    epochs = sorted({e for curve in curves for e in curve["epoch"]})
    row_of = {epoch: i for i, epoch in enumerate(epochs)}
    finite: dict[str, list[list[float]]] = {col: [[] for _ in epochs] for col in columns}
    for curve in curves:
        for i, epoch in enumerate(curve["epoch"]):
            for col in columns:
                if math.isfinite(curve[col][i]):
                    finite[col][row_of[epoch]].append(curve[col][i])
    stats: dict[str, list[float]] = {}
    for col, per_epoch in finite.items():
        stats[col] = [round(float(np.mean(v)), 6) if v else math.nan for v in per_epoch]
        if len(curves) > 1:
            stats[f"{col}_min"] = [min(v) if v else math.nan for v in per_epoch]
            stats[f"{col}_max"] = [max(v) if v else math.nan for v in per_epoch]
    # the seeds' own columns first, in their order, then the bands
    return {"epoch": epochs, **{c: stats[c] for c in columns},
            **{c: v for c, v in stats.items() if c not in columns}}


def write_mean_curves(params: Mapping[str, Any],
                      plots_dir: str | Path = "plots") -> dict[RunId, Curves]:
    """Average every run's curves over the seeds of params.yaml into ``plots/<run>.csv``
    (same columns as the per-seed files, and with several seeds ``<col>_min``/``<col>_max``);
    return the mean curves by run."""
    seeds = validate_seeds(dict(params))
    means = {}
    for run in pipeline_runs(params):
        curves = [read_curves(run, seed, plots_dir) for seed in seeds]
        for seed, curve in zip(seeds[1:], curves[1:]):
            if list(curve) != list(curves[0]):
                raise FiguresError(
                    f"{seed_curve_path(run, seed, plots_dir)} has columns {', '.join(curve)}, "
                    f"but {seed_curve_path(run, seeds[0], plots_dir)} has "
                    f"{', '.join(curves[0])}: the seeds of one run must log the same columns; "
                    f"run `dvc repro -f {run.seed_stage(seed)}`")
        mean = means[run] = mean_curve(curves)
        write_csv(Path(plots_dir) / f"{run.path}.csv",
                  [{col: "" if isinstance(v, float) and math.isnan(v) else v
                    for col, v in zip(mean, row)} for row in zip(*mean.values())])
    return means


def _columns(curves: Mapping[str, list[float]], kind: str, run: RunId) -> list[str]:
    wanted = _KINDS[kind][0]
    missing = [c for c in ("epoch", *wanted) if c not in curves and c not in _OPTIONAL]
    if missing:
        logged = [c for c in curves if not c.endswith(("_min", "_max"))]
        raise FiguresError(f"run '{run}' logs no column {', '.join(missing)} (its curves have "
                           f"{', '.join(logged)}), which this figure draws")
    return [c for c in wanted if c in curves]


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))


def _no_finite_values(ax: Any, epochs: int) -> None:
    """A panel whose every curve is non-finite (a run that diverged at once): say so, on the
    run's own epoch axis, rather than leave a blank panel with a meaningless one."""
    ax.set_xlim(1, max(epochs, 2))
    ax.tick_params(axis="y", which="both", left=False, labelleft=False)
    ax.text(0.5, 0.5, "no finite values (diverged)", transform=ax.transAxes, ha="center",
            va="center", color="dimgray")


def draw(spec: FigureSpec, params: Mapping[str, Any], data_line: str,
         curves: Mapping[RunId, Curves]) -> Figure:
    """One figure from the mean curves: its panels side by side, titles naming each run's
    params; with several seeds, each line has a min-max band."""
    n_seeds = len(validate_seeds(dict(params)))
    runs = list(dict.fromkeys(p.run for p in spec.panels))
    used = {run: run_params(params, run) for run in runs}
    # side-by-side runs: each panel shows what sets its run apart, the caption what they share
    common, distinct = split_params([used[r] for r in runs]) if len(runs) > 1 \
        else ({}, [used[runs[0]]])
    shown = dict(zip(runs, distinct))

    n = len(spec.panels)
    fig = Figure(figsize=(6.0 * n, 4.8), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, panel in zip(axes, spec.panels):
        curve = curves[panel.run]
        _, ylabel, log = _KINDS[panel.kind]
        columns = _columns(curve, panel.kind, panel.run)
        epochs = curve["epoch"]
        for col in columns:
            ax.plot(epochs, curve[col], color=_COLORS[col], label=_LEGEND[col],
                    marker="o" if len(epochs) <= 30 else None, markersize=3)
            if n_seeds > 1:
                ax.fill_between(epochs, curve[f"{col}_min"], curve[f"{col}_max"],
                                color=_COLORS[col], alpha=0.2, linewidth=0)
        if not any(math.isfinite(v) for col in columns for v in curve[col]):
            _no_finite_values(ax, int(used[panel.run]["epochs"]))
        elif log:
            ax.set_yscale("log")
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        title = f"{panel.title} ({panel.run})"
        if len(runs) > 1:
            title += "\n" + _wrap(format_params(shown[panel.run]), 60)
        ax.set_title(title, fontsize=10)
    caption = f"Figure {spec.number}: {spec.caption}"
    if n_seeds > 1:
        caption += f" (mean of {n_seeds} seeds, band: min-max)"
    described = format_params(common) if len(runs) > 1 else format_params(shown[runs[0]])
    fig.suptitle(f"{caption}\n{_wrap(described, 55 * n)}", fontsize=11)
    fig.text(0.5, -0.01, _wrap(data_line, 95 * n), ha="center", va="top", fontsize=8,
             color="dimgray")
    return fig


def render_figures(params: Mapping[str, Any], curves: Mapping[RunId, Curves],
                   data: Mapping[str, Any], report_data: Mapping[str, Any],
                   out_dir: str | Path = FIGURES_DIR,
                   specs: Sequence[FigureSpec] | None = None) -> list[Path]:
    """Write the figures (all of ``FIGURES`` by default) as PNG under ``out_dir``, from the
    mean curves (``write_mean_curves``)."""
    data_line = data_note(data, report_data)
    written = []
    for spec in FIGURES if specs is None else specs:
        fig = draw(spec, params, data_line, curves)
        out = Path(out_dir) / spec.filename
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        written.append(out)
    return written
