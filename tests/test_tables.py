"""The report's tables beside fabricated reproduced metrics: values, differences, flags, data."""
from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hw1.params import load_params
from hw1.runs import ReportInputError, RunId, load_report_values
from hw1.tables import TABLES, build_tables, params_mismatch, render_markdown, summary
from stages import tables as tables_stage

REPO = Path(__file__).resolve().parents[1]
REPORT = load_report_values(REPO / "reports/report_values.yaml")
PARAMS = load_params(REPO / "params.yaml")
SYNTHETIC = {"source": "synthetic", "dataset": "synthetic (not OctMNIST)", "md5": "5e1f00d5",
             "test_distribution": "train"}
OCTMNIST = {"source": "medmnist", "dataset": "OctMNIST", "md5": "c68d92d5b585d8d81f7112f81e2d0842",
            "test_distribution": "train"}


def fabricate_metrics(root: Path, data: dict, overrides: dict | None = None) -> Path:
    """metrics/<run>.json for every run of the report (0.5 everywhere unless overridden)."""
    metrics = root / "metrics"
    for run in REPORT["runs"]:
        values = {"train_acc": 0.5, "val_acc": 0.5, "test_acc": 0.5, "best_val_acc": 0.5,
                  "best_epoch": 1, "epochs": 2, "train_seconds": 10.0,
                  "data_source": data["source"], **(overrides or {}).get(run, {})}
        path = metrics / f"{run}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    (metrics / "data.json").write_text(json.dumps(data))
    return metrics


def table(tables: list, number: int):
    return next(t for t in tables if t.number == number)


def row(tbl, run: str) -> dict:
    return next(r for r in tbl.csv_rows if r["run"] == run)


def test_rows_show_report_value_reproduced_value_and_difference(tmp_path):
    metrics = fabricate_metrics(tmp_path, SYNTHETIC, {
        "q2/logreg_lr1e-2": {"val_acc": 0.7, "test_acc": 0.61},
        "q2/ffn_bs1024": {"train_seconds": 30.25}})
    tables = build_tables(PARAMS, REPORT, SYNTHETIC, metrics)

    got = row(table(tables, 2), "q2/logreg_lr1e-2")
    report = REPORT["runs"]["q2/logreg_lr1e-2"]
    assert got["val_acc_report"] == report["val_acc"]
    assert got["val_acc_reproduced"] == 0.7
    assert got["val_acc_diff"] == round(0.7 - report["val_acc"], 4)
    assert got["test_acc_diff"] == round(0.61 - report["test_acc"], 4)
    # the report gives no test accuracy for the other learning rates: no difference either
    other = row(table(tables, 2), "q2/logreg_lr1e-1")
    assert other["test_acc_report"] is None and other["test_acc_diff"] is None
    assert other["test_acc_reproduced"] == 0.5

    timing = row(table(tables, 4), "q2/ffn_bs1024")
    assert timing["train_seconds_diff"] == round(30.25 - REPORT["runs"]["q2/ffn_bs1024"]
                                                 ["train_seconds"], 2)


def test_every_table_of_the_report_is_built_with_its_rows():
    assert [spec.number for spec in TABLES] == [1, 2, 4, 5, 6]
    for spec in TABLES:
        for _, run in spec.rows:
            assert run.path in REPORT["runs"], f"Table {spec.number}: {run}"
            for metric in spec.metrics:
                assert metric.key in {"test_acc", "val_acc", "best_val_acc", "train_seconds"}


def test_best_value_is_marked_for_report_and_reproduction(tmp_path):
    metrics = fabricate_metrics(tmp_path, SYNTHETIC, {"q2/logreg_lr1e-1": {"val_acc": 0.9}})
    tbl = table(build_tables(PARAMS, REPORT, SYNTHETIC, metrics), 2)
    report_best = max(REPORT["runs"][r]["val_acc"] for r in
                      ("q2/logreg_lr1e-1", "q2/logreg_lr1e-2", "q2/logreg_lr1e-3"))
    marked = {r["run"]: (r["best_report"], r["best_reproduced"]) for r in tbl.csv_rows}
    assert marked["q2/logreg_lr1e-1"] == ("", "val_acc")
    assert [r["run"] for r in tbl.csv_rows if r["val_acc_report"] == report_best] == \
        [run for run, (theirs, _) in marked.items() if theirs == "val_acc"]
    assert "**0.9000**" in render_markdown([tbl])


def test_repository_params_are_the_reports_runs(tmp_path):
    metrics = fabricate_metrics(tmp_path, OCTMNIST)
    for tbl in build_tables(PARAMS, REPORT, OCTMNIST, metrics):
        if tbl.number == 3:
            assert {r["difference"] for r in tbl.csv_rows} == {"same"}
        else:
            assert [r["note"] for r in tbl.csv_rows] == [""] * len(tbl.csv_rows)


def test_run_whose_params_differ_from_the_report_says_so(tmp_path):
    params = copy.deepcopy(PARAMS)
    params["q2"]["ffn_lr1e-2"]["lr"] = 0.05
    params["q1"]["perceptron"]["epochs"] = 5
    params["train"]["lr"] = 1.0
    metrics = fabricate_metrics(tmp_path, OCTMNIST)
    tables = build_tables(params, REPORT, OCTMNIST, metrics)

    note = row(table(tables, 5), "q2/ffn_lr1e-2")["note"]
    assert note.startswith("params differ from the report's")
    assert "lr=0.05 (report: 0.01)" in note
    # the row is labelled with the params actually used
    assert "lr=0.05" in row(table(tables, 5), "q2/ffn_lr1e-2")["params"]
    assert row(table(tables, 5), "q2/ffn_lr1e-3")["note"] == ""
    assert "epochs=5 (assumed, not stated in the report: 20)" in \
        row(table(tables, 1), "q1/perceptron")["note"]
    # `train` is in Tables 4 and 5, and Table 3 is its params
    assert "lr=1.0" in row(table(tables, 4), "train")["note"]
    lr = next(r for r in table(tables, 3).csv_rows if r["key"] == "train.lr")
    assert lr["params"] == 1.0 and lr["difference"] == "+0.9"
    assert "lr=1.0 (report: 0.1)" in render_markdown(tables)


def test_params_mismatch_treats_int_and_float_as_equal_and_ignores_device():
    report_run = {"params": {"lr": 1.0, "epochs": 20}, "assumed": {"l2_decay": 0.0}}
    assert params_mismatch(report_run, {"lr": 1, "epochs": 20, "l2_decay": 0,
                                        "device": "cuda"}) == []
    assert params_mismatch(report_run, {"lr": 1.0, "epochs": 20}) == \
        ["l2_decay=<missing> (assumed, not stated in the report: 0.0)"]


def test_synthetic_data_is_labelled_not_comparable_in_every_table(tmp_path):
    metrics = fabricate_metrics(tmp_path, SYNTHETIC)
    tables = build_tables(PARAMS, REPORT, SYNTHETIC, metrics)
    assert len(tables) == 6
    for tbl in tables:
        assert tbl.notes[0].startswith("Data: synthetic stand-in, not comparable to the report")
        assert "test distribution 'train'" in tbl.notes[0]
    assert render_markdown(tables).count("synthetic stand-in, not comparable") == 6


def test_octmnist_data_is_named_with_its_md5_and_test_distribution(tmp_path):
    metrics = fabricate_metrics(tmp_path, OCTMNIST)
    tables = build_tables(PARAMS, REPORT, OCTMNIST, metrics)
    for tbl in tables:
        assert tbl.notes[0].startswith(f"Data: OctMNIST (MD5 {OCTMNIST['md5']})")
        assert "not comparable" not in tbl.notes[0]

    balanced = {**OCTMNIST, "test_distribution": "balanced"}
    note = build_tables(PARAMS, REPORT, balanced, metrics)[0].notes[0]
    assert "test distribution 'balanced' (all 1,000 test images)" in note
    assert "test accuracies are not comparable" in note


def test_run_trained_on_other_data_than_data_json_is_flagged(tmp_path):
    metrics = fabricate_metrics(tmp_path, OCTMNIST, {"q1/mlp": {"data_source": "synthetic"}})
    tbl = table(build_tables(PARAMS, REPORT, OCTMNIST, metrics), 1)
    assert row(tbl, "q1/mlp")["note"] == "trained on synthetic, not on the data of " \
                                         "metrics/data.json"
    assert row(tbl, "q1/perceptron")["note"] == ""


DIVERGED = {"diverged": True, "diverged_epoch": 3, "diverged_reason": "training loss is nan",
            "last_finite_losses": {"1": 1.3, "2": 2.5e11}, "epochs": 3, "test_acc": 0.344}


def test_diverged_run_is_marked_and_every_row_is_still_written(tmp_path):
    metrics = fabricate_metrics(tmp_path, OCTMNIST, {"q2/ffn_lr1": DIVERGED})
    tables = build_tables(PARAMS, REPORT, OCTMNIST, metrics)
    tbl = table(tables, 5)
    assert row(tbl, "q2/ffn_lr1")["note"] == "diverged at epoch 3 (training loss is nan)"
    assert row(tbl, "q2/ffn_lr1")["test_acc_reproduced"] == 0.344
    assert [r["note"] for r in tbl.csv_rows if r["run"] != "q2/ffn_lr1"] == [""] * 3
    spec = next(spec for spec in TABLES if spec.number == 5)
    assert [r["run"] for r in tbl.csv_rows] == [run.path for _, run in spec.rows]
    assert len(tbl.cells) == len(spec.rows)
    assert "| diverged at epoch 3 (training loss is nan) |" in render_markdown(tables)


def test_missing_metrics_file_names_the_stage_to_run(tmp_path):
    metrics = fabricate_metrics(tmp_path, SYNTHETIC)
    (metrics / "q2/ffn_lr1.json").unlink()
    with pytest.raises(ReportInputError, match=r"q2/ffn_lr1\.json not found.*dvc repro q2@ffn_lr1"):
        build_tables(PARAMS, REPORT, SYNTHETIC, metrics)


def test_metrics_file_without_a_metric_names_it(tmp_path):
    metrics = fabricate_metrics(tmp_path, SYNTHETIC)
    (metrics / "train.json").write_text(json.dumps({"val_acc": 0.5, "test_acc": 0.5}))
    with pytest.raises(ReportInputError, match=r"metrics/train\.json has no 'train_seconds'"):
        build_tables(PARAMS, REPORT, SYNTHETIC, metrics)
    with pytest.raises(ReportInputError, match=r"metrics/train\.json has no best_val_acc"):
        summary([RunId.parse("train")], metrics)


def test_summary_holds_headline_numbers_per_run_under_short_keys(tmp_path):
    metrics = fabricate_metrics(tmp_path, SYNTHETIC, {"q1/mlp": {"test_acc": 0.123456,
                                                                 "best_val_acc": 0.7}})
    got = summary([RunId.parse(run) for run in REPORT["runs"]], metrics)
    assert set(got) == {run.replace("/", "_") for run in REPORT["runs"]}
    assert got["q1_mlp"] == {"test": 0.1235, "val": 0.5, "best_val": 0.7}


def test_summary_flags_only_a_diverged_run(tmp_path):
    not_diverged = {"diverged": False, "diverged_epoch": None, "diverged_reason": None,
                    "last_finite_losses": {"1": 1.2, "2": 1.1}}
    metrics = fabricate_metrics(tmp_path, SYNTHETIC, {"q2/ffn_lr1": DIVERGED,
                                                      "train": not_diverged})
    got = summary([RunId.parse(run) for run in REPORT["runs"]], metrics)
    assert got["q2_ffn_lr1"] == {"test": 0.344, "val": 0.5, "best_val": 0.5, "diverged": True}
    assert [run for run, values in got.items() if set(values) != {"test", "val", "best_val"}] \
        == ["q2_ffn_lr1"]


def test_stage_writes_markdown_csv_per_table_and_summary(tmp_path, monkeypatch):
    fabricate_metrics(tmp_path, SYNTHETIC)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/report_values.yaml").write_text(
        (REPO / "reports/report_values.yaml").read_text())
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    tables_stage.main()

    markdown = (tmp_path / "reports/tables.md").read_text()
    headings = [line.split(":")[0] for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == [f"## Table {n}" for n in range(1, 7)]
    for n in range(1, 7):
        with open(tmp_path / f"reports/tables/table{n}.csv", newline="") as fh:
            assert list(csv.DictReader(fh)), f"table{n}.csv is empty"
    assert json.loads((tmp_path / "metrics/summary.json").read_text())["train"] == \
        {"test": 0.5, "val": 0.5, "best_val": 0.5}


def test_stage_fails_with_a_clear_message_when_metrics_are_missing(tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/report_values.yaml").write_text(
        (REPO / "reports/report_values.yaml").read_text())
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    proc = subprocess.run([sys.executable, "-m", "stages.tables"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "tables failed: metrics/data.json not found" in proc.stderr
    assert "dvc repro prepare" in proc.stderr
    assert not (tmp_path / "reports/tables.md").exists()
