"""A run that diverges is a flagged result, not a failure: what its metrics and plot data hold,
and end to end with the real `dvc`: the stage exits 0, its metrics and the tables say it
diverged, and no other run's output changes."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from hw1.outputs import write_run
from hw1.runs import RunId

RUN = "q2/ffn_lr1"
RUN_OUTPUTS = {f"metrics/seeds/{RUN}/42.json", f"plots/seeds/{RUN}/42.csv",
               f"models/{RUN}/42.pt", f"plots/{RUN}.csv"}   # the last: its mean curve


def test_metrics_keep_the_last_three_finite_losses_by_epoch_and_plots_leave_inf_blank(
        tmp_path):
    history = [{"epoch": e, "train_loss": loss, "val_loss": loss, "train_acc": 0.5,
                "val_acc": 0.25} for e, loss in
               enumerate([1.5, 1.25, 3e12, 4.0e30, float("inf")], start=1)]
    test = {"test_acc": 0.3, "test_auc": None, "official_acc": 0.25, "official_auc": None}
    metrics = write_run(RunId.parse("q2/x"), 42, history, test, 1.0, "tiny",
                        diverged="training loss is inf", metrics_dir=tmp_path / "metrics",
                        plots_dir=tmp_path / "plots")
    text = (tmp_path / "metrics/seeds/q2/x/42.json").read_text()
    assert "Infinity" not in text and json.loads(text) == metrics
    assert metrics["last_finite_losses"] == {"2": 1.25, "3": 3e12, "4": 4.0e30}
    assert (metrics["diverged"], metrics["diverged_epoch"], metrics["epochs"]) == (True, 5, 5)
    plot = (tmp_path / "plots/seeds/q2/x/42.csv").read_text().splitlines()
    assert plot[1] == "1,1.5,1.5,0.5,0.25" and plot[-1] == "5,,,0.5,0.25"   # inf: blank


def run_outputs(root: Path) -> dict[str, bytes]:
    """Every training run's model, metrics and plot data, but those of the diverging run."""
    files = [p for top in ("models", "metrics", "plots") for p in (root / top).rglob("*")
             if p.is_file()]
    found = {p.relative_to(root).as_posix(): p.read_bytes() for p in files}
    return {name: data for name, data in found.items()
            if name not in RUN_OUTPUTS
            and name not in ("metrics/summary.json", "metrics/claims.json")}


@pytest.mark.e2e
def test_diverging_run_is_flagged_in_metrics_and_tables_and_touches_no_other_run(
        pipeline_repo):
    dvc_repo = pipeline_repo   # the whole pipeline, committed
    before = run_outputs(dvc_repo.path)
    assert sum(name.startswith("models/") for name in before) == 14   # every other run

    proc = dvc_repo.run("exp", "run", "-S", "q2.ffn_lr1.lr=10000")   # fails on a non-0 exit
    assert set(re.findall(r"Running stage '([^']+)'", proc.stdout)) == \
        {"check_params", "q2@ffn_lr1-42", "figures", "tables"}

    text = (dvc_repo.path / f"metrics/seeds/{RUN}/42.json").read_text()
    assert "NaN" not in text and "Infinity" not in text   # strict JSON
    metrics = json.loads(text)
    epoch = metrics["diverged_epoch"]
    assert metrics["diverged"] is True and epoch in (1, 2) and metrics["epochs"] == epoch
    assert metrics["diverged_reason"] in ("training loss is nan", "training loss is inf")
    assert list(metrics["last_finite_losses"]) == [str(e) for e in range(1, epoch)]
    line = f"{RUN} seed 42: {metrics['diverged_reason']} at epoch {epoch}: stopped (diverged)"
    assert line in proc.stdout + proc.stderr
    with open(dvc_repo.path / f"plots/seeds/{RUN}/42.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == epoch and rows[-1]["train_loss"] == ""

    note = f"diverged at epoch {epoch} ({metrics['diverged_reason']})"
    table5 = (dvc_repo.path / "reports/tables/table5.csv").read_text()
    assert note in table5 and len(list(csv.DictReader(table5.splitlines()))) == 4
    ffn_lr1_row = next(line for line in (dvc_repo.path / "reports/tables.md").read_text()
                       .splitlines() if f"`{RUN}`" in line)
    assert note in ffn_lr1_row

    summary = json.loads((dvc_repo.path / "metrics/summary.json").read_text())
    assert [run for run, values in summary.items() if "diverged" in values] == ["q2_ffn_lr1"]
    assert summary["q2_ffn_lr1"]["diverged"] is True
    diff = json.loads(dvc_repo.run("metrics", "diff", "main", "--json").stdout)
    assert {key.split(".")[0] for key in diff["metrics/summary.json"]} == {"q2_ffn_lr1"}

    assert run_outputs(dvc_repo.path) == before
