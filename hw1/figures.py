"""Figures 1-10 of the report, drawn from the per-epoch plot data (``plots/<run>.csv``) alone.

No figure retrains anything: restyling a figure re-runs only the `figures` stage. Each figure
names the params of the runs it shows (from params.yaml) and the data they came from, so a
figure of a changed run or of the synthetic stand-in cannot pass for the report's.
Figure 11 (Question 3) is drawn by the `boolean` stage.
"""
from __future__ import annotations

import csv
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

# Figure (not pyplot): no global state and no GUI backend; savefig renders with Agg.
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hw1.outputs import atomic_path
from hw1.runs import RunId, data_note, format_params, run_params, split_params

FIGURES_DIR = Path("reports/figures")


class FiguresError(RuntimeError):
    """A plot data file is missing or lacks a column; the message says what to run."""


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


def read_curves(run: RunId, plots_dir: str | Path = "plots") -> dict[str, list[float]]:
    """``plots/<run>.csv`` as columns of floats, or a FiguresError naming the stage to run."""
    path = Path(plots_dir) / f"{run.path}.csv"
    if not path.is_file():
        raise FiguresError(f"{path} not found: the figures need run '{run}'; run "
                           f"`dvc repro {run.stage}` first")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise FiguresError(f"{path} has no epochs; run `dvc repro {run.stage}` again")
    # an empty cell is an epoch the run did not measure: a gap in the line, not a zero
    return {col: [float(r[col]) if r[col] not in ("", None) else math.nan for r in rows]
            for col in rows[0]}


def _columns(curves: Mapping[str, list[float]], kind: str, run: RunId,
             plots_dir: str | Path) -> list[str]:
    wanted = _KINDS[kind][0]
    missing = [c for c in ("epoch", *wanted) if c not in curves and c not in _OPTIONAL]
    if missing:
        raise FiguresError(f"{Path(plots_dir) / f'{run.path}.csv'} has no column "
                           f"{', '.join(missing)} (it has {', '.join(curves)})")
    return [c for c in wanted if c in curves]


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))


def draw(spec: FigureSpec, params: Mapping[str, Any], data_line: str,
         plots_dir: str | Path = "plots") -> Figure:
    """One figure: its panels side by side, titles naming each run's params."""
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
        curves = read_curves(panel.run, plots_dir)
        _, ylabel, log = _KINDS[panel.kind]
        for col in _columns(curves, panel.kind, panel.run, plots_dir):
            ax.plot(curves["epoch"], curves[col], color=_COLORS[col], label=_LEGEND[col],
                    marker="o" if len(curves["epoch"]) <= 30 else None, markersize=3)
        if log:
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
    described = format_params(common) if len(runs) > 1 else format_params(shown[runs[0]])
    fig.suptitle(f"{caption}\n{_wrap(described, 55 * n)}", fontsize=11)
    fig.text(0.5, -0.01, _wrap(data_line, 95 * n), ha="center", va="top", fontsize=8,
             color="dimgray")
    return fig


def render_figures(params: Mapping[str, Any], data: Mapping[str, Any],
                   report_data: Mapping[str, Any], plots_dir: str | Path = "plots",
                   out_dir: str | Path = FIGURES_DIR,
                   specs: Sequence[FigureSpec] | None = None) -> list[Path]:
    """Write the figures (all of ``FIGURES`` by default) as PNG under ``out_dir``."""
    data_line = data_note(data, report_data)
    written = []
    for spec in FIGURES if specs is None else specs:
        fig = draw(spec, params, data_line, plots_dir)
        out = Path(out_dir) / spec.filename
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        written.append(out)
    return written
