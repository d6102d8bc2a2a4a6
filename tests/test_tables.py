"""The report's tables beside fabricated reproduced metrics: values, differences, flags, data,
and with several seeds the mean ± sd and where the report's value falls among the seeds."""
from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_module

from hw1.claims import check_claims, claims_metrics, render_claims
from hw1.outputs import write_csv
from hw1.params import ParamsError, load_params
from hw1.report_inputs import ReportInputError, load_report_values
from hw1.runs import RunId
from hw1.tables import (
    TABLES,
    benchmark_table,
    build_tables,
    load_benchmark_values,
    params_mismatch,
    render_markdown,
    summary,
)
from stages import tables as tables_stage

REPO = Path(__file__).resolve().parents[1]
REPORT = load_report_values(REPO / "reports/report_values.yaml")
# params.yaml's runs with the default single seed (spelled out: the tests never depend on the
# file's `seeds`)
PARAMS = {**load_params(REPO / "params.yaml"), "seeds": [42]}
RUNS = [RunId.parse(run) for run in REPORT["runs"]]
TEST_SETS = {"sizes": {"train": 97477, "val": 10832, "test": 1000},
             "report_test": {"size": 529, "missing": None}}
SYNTHETIC = {"source": "synthetic", "dataset": "synthetic (not OctMNIST)", "md5": "5e1f00d5",
             **TEST_SETS}
OCTMNIST = {"source": "medmnist", "dataset": "OctMNIST", "md5": "c68d92d5b585d8d81f7112f81e2d0842",
            **TEST_SETS}


def fabricate_metrics(root: Path, data: dict, overrides: dict | None = None,
                      seeds: tuple[int, ...] = (42,)) -> Path:
    """metrics/seeds/<run>/<seed>.json for every run of the report and seed (0.5 everywhere
    unless overridden: ``overrides[run]`` in every seed, ``overrides[run, seed]`` in one)."""
    metrics = root / "metrics"
    overrides = overrides or {}
    for run in REPORT["runs"]:
        for seed in seeds:
            values = {"train_acc": 0.5, "val_acc": 0.5, "test_acc": 0.5, "best_val_acc": 0.5,
                      "official_acc": 0.5, "official_auc": 0.5, "auc_from": "softmax probabilities",
                      "best_epoch": 1, "epochs": 2, "train_seconds": 10.0,
                      "data_source": data["source"], **overrides.get(run, {}),
                      **overrides.get((run, seed), {})}
            path = metrics / "seeds" / run / f"{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
    (metrics / "data.json").write_text(json.dumps(data))
    return metrics


def project(root: Path, seeds: tuple[int, ...] = (42,)) -> None:
    """The stage's inputs other than metrics: the report's values and params.yaml."""
    (root / "reports").mkdir()
    for name in ("report_values.yaml", "benchmark_values.yaml"):
        (root / "reports" / name).write_text((REPO / "reports" / name).read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "seeds": list(seeds)}))


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
        assert tbl.notes[0] == (
            "Data: synthetic stand-in, not comparable to the report (MD5 5e1f00d5); test sets: "
            "the report's subset (529 images, class mix of the training set: test acc.) and the "
            "official split (1,000 images: ACC, AUC).")
    assert render_markdown(tables).count("synthetic stand-in, not comparable") == 6


def test_octmnist_data_is_named_with_its_md5_and_test_sets(tmp_path):
    metrics = fabricate_metrics(tmp_path, OCTMNIST)
    tables = build_tables(PARAMS, REPORT, OCTMNIST, metrics)
    for tbl in tables:
        assert tbl.notes[0].startswith(f"Data: OctMNIST (MD5 {OCTMNIST['md5']}); test sets: "
                                       f"the report's subset (529 images")
        assert "not comparable" not in tbl.notes[0]


def test_run_trained_on_other_data_than_data_json_is_flagged(tmp_path):
    metrics = fabricate_metrics(tmp_path, OCTMNIST, {"q1/mlp": {"data_source": "synthetic"}})
    tbl = table(build_tables(PARAMS, REPORT, OCTMNIST, metrics), 1)
    assert row(tbl, "q1/mlp")["note"] == "trained on synthetic, not on the data of " \
                                         "metrics/data.json"
    assert row(tbl, "q1/perceptron")["note"] == ""


DIVERGED = {"diverged": True, "diverged_epoch": 3, "diverged_reason": "training loss is nan",
            "last_finite_losses": {"1": 1.3, "2": 2.5e11}, "epochs": 3, "test_acc": 0.344,
            "official_auc": None,
            "official_missing": "AUC undefined: the model's class scores are not finite"}


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
    (metrics / "seeds/q2/ffn_lr1/42.json").unlink()
    with pytest.raises(ReportInputError,
                       match=r"seeds/q2/ffn_lr1/42\.json not found.*dvc repro q2@ffn_lr1-42"):
        build_tables(PARAMS, REPORT, SYNTHETIC, metrics)


def test_metrics_file_without_a_metric_names_it(tmp_path):
    metrics = fabricate_metrics(tmp_path, SYNTHETIC)
    (metrics / "seeds/train/42.json").write_text(json.dumps({"val_acc": 0.5, "test_acc": 0.5}))
    with pytest.raises(ReportInputError, match=r"metrics/seeds/train/42\.json has no "
                                               r"'train_seconds' \(Table 4\); run `dvc repro "
                                               r"train@42` again"):
        build_tables(PARAMS, REPORT, SYNTHETIC, metrics)
    with pytest.raises(ReportInputError, match=r"metrics/seeds/train/42\.json has no "
                                               r"'best_val_acc' \(metrics/summary\.json\)"):
        summary([RunId.parse("train")], [42], metrics)


def test_summary_holds_headline_numbers_per_run_under_short_keys(tmp_path):
    metrics = fabricate_metrics(tmp_path, SYNTHETIC, {"q1/mlp": {
        "test_acc": 0.123456, "best_val_acc": 0.7, "official_acc": 0.25, "official_auc": 0.61237}})
    got = summary(RUNS, [42], metrics)
    assert set(got) == {run.replace("/", "_") for run in REPORT["runs"]}
    assert got["q1_mlp"] == {"test": 0.1235, "val": 0.5, "best_val": 0.7, "official_acc": 0.25,
                             "official_auc": 0.6124}


def test_summary_flags_only_a_diverged_run(tmp_path):
    not_diverged = {"diverged": False, "diverged_epoch": None, "diverged_reason": None,
                    "last_finite_losses": {"1": 1.2, "2": 1.1}}
    metrics = fabricate_metrics(tmp_path, SYNTHETIC, {"q2/ffn_lr1": DIVERGED,
                                                      "train": not_diverged})
    got = summary(RUNS, [42], metrics)
    assert got["q2_ffn_lr1"] == {"test": 0.344, "val": 0.5, "best_val": 0.5,
                                 "official_acc": 0.5, "official_auc": None, "diverged": True}
    assert [run for run, values in got.items() if "diverged" in values] == ["q2_ffn_lr1"]


def test_stage_writes_markdown_csv_per_table_and_summary(tmp_path, monkeypatch):
    fabricate_metrics(tmp_path, SYNTHETIC)
    project(tmp_path)
    monkeypatch.chdir(tmp_path)
    tables_stage.main()

    markdown = (tmp_path / "reports/tables.md").read_text()
    headings = [line.split(":")[0] for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == [f"## Table {n}" for n in range(1, 7)] + ["## Benchmark"]
    for name in [f"table{n}" for n in range(1, 7)] + ["benchmark"]:
        with open(tmp_path / f"reports/tables/{name}.csv", newline="") as fh:
            assert list(csv.DictReader(fh)), f"{name}.csv is empty"
    assert json.loads((tmp_path / "metrics/summary.json").read_text())["train"] == \
        {"test": 0.5, "val": 0.5, "best_val": 0.5, "official_acc": 0.5, "official_auc": 0.5}


def test_stage_fails_with_a_clear_message_when_metrics_are_missing(tmp_path):
    project(tmp_path)
    proc = run_module("stages.tables", cwd=tmp_path)
    assert proc.returncode == 1
    assert "tables failed: metrics/data.json not found" in proc.stderr
    assert "dvc repro prepare" in proc.stderr
    assert not (tmp_path / "reports/tables.md").exists()


# --- one seed: the tables as they were before seeds -------------------------------------------

def test_one_seed_gives_every_cell_csv_column_and_summary_entry_of_a_single_run(tmp_path):
    """The default `seeds: [42]`: the expected values are what the tables gave for these
    metrics before runs had seeds (one metrics file per run)."""
    metrics = fabricate_metrics(tmp_path, SYNTHETIC, {
        "train": {"best_val_acc": 0.81234, "val_acc": 0.80011, "test_acc": 0.7654321,
                  "train_seconds": 123.456},
        "q2/ffn_lr1": DIVERGED,
        "q2/ffn_lr1e-2": {"best_val_acc": 0.8, "val_acc": 0.79, "test_acc": 0.75,
                          "data_source": "medmnist"},
        "q2/ffn_lr1e-3": {"best_val_acc": 0.70004, "val_acc": 0.69996, "test_acc": 0.71}})
    tables = build_tables(PARAMS, REPORT, SYNTHETIC, metrics)

    t5 = table(tables, 5)
    assert t5.cells == [
        ["1", "`q2/ffn_lr1`", "lr=1.0", "0.4721", "0.5000", "+0.0279", "0.4721", "0.5000",
         "+0.0279", "—", "0.3440", "—", "diverged at epoch 3 (training loss is nan)"],
        ["0.1", "`train`", "lr=0.1", "**0.8291**", "**0.8123**", "-0.0168", "**0.8291**",
         "**0.8001**", "-0.0290", "0.7713", "0.7654", "-0.0059", "—"],
        ["0.01", "`q2/ffn_lr1e-2`", "lr=0.01", "0.8147", "0.8000", "-0.0147", "0.8099",
         "0.7900", "-0.0199", "—", "0.7500", "—",
         "trained on medmnist, not on the data of metrics/data.json"],
        ["0.001", "`q2/ffn_lr1e-3`", "lr=0.001", "0.7224", "0.7000", "-0.0224", "0.7224",
         "0.7000", "-0.0224", "—", "0.7100", "—", "—"]]
    assert t5.notes[1:] == [
        "Params every row shares: model=feedforward, epochs=20, batch_size=16, hidden_size=200, "
        "layers=2, dropout=0.0, activation=relu, l2_decay=0.0, optimizer=sgd.",
        "Bold: the best value of its column, as the report marks it."]
    assert list(row(t5, "train").items()) == [
        ("row", "0.1"), ("run", "train"),
        ("params", "model=feedforward, epochs=20, lr=0.1, batch_size=16, hidden_size=200, "
                   "layers=2, dropout=0.0, activation=relu, l2_decay=0.0, optimizer=sgd"),
        ("best_val_acc_report", 0.8291), ("best_val_acc_reproduced", 0.81234),
        ("best_val_acc_diff", -0.0168), ("val_acc_report", 0.8291),
        ("val_acc_reproduced", 0.80011), ("val_acc_diff", -0.029), ("test_acc_report", 0.7713),
        ("test_acc_reproduced", 0.7654321), ("test_acc_diff", -0.0059),
        ("best_report", "best_val_acc;val_acc"), ("best_reproduced", "best_val_acc;val_acc"),
        ("note", "")]
    assert table(tables, 4).cells[0][3:6] == ["657.34", "123.46", "-533.88"]
    for tbl in tables:
        assert not any(key.endswith(("_sd", "_n", "_z", "_in_range", "_seeds")) or key == "seeds"
                       for r in tbl.csv_rows for key in r), f"Table {tbl.number}"
        assert not any("±" in cell for r in tbl.cells for cell in r)

    got = summary([RunId.parse("train"), RunId.parse("q2/ffn_lr1")], [42], metrics)
    assert json.dumps(got) == json.dumps({
        "train": {"test": 0.7654, "val": 0.8001, "best_val": 0.8123, "official_acc": 0.5,
                  "official_auc": 0.5},
        "q2_ffn_lr1": {"test": 0.344, "val": 0.5, "best_val": 0.5, "official_acc": 0.5,
                       "official_auc": None, "diverged": True}})


def test_the_seed_number_alone_changes_nothing_in_the_tables(tmp_path):
    overrides = {"q1/mlp": {"test_acc": 0.71}, "train": {"train_seconds": 99.0}}
    at_42 = build_tables(PARAMS, REPORT, SYNTHETIC,
                         fabricate_metrics(tmp_path / "a", SYNTHETIC, overrides))
    at_7 = build_tables({**PARAMS, "seeds": [7]}, REPORT, SYNTHETIC,
                        fabricate_metrics(tmp_path / "b", SYNTHETIC, overrides, seeds=(7,)))
    assert render_markdown(at_7) == render_markdown(at_42)
    assert [t.csv_rows for t in at_7] == [t.csv_rows for t in at_42]


# --- several seeds ----------------------------------------------------------------------------

SEEDS = (42, 7, 9)
MLP_TEST = {42: 0.71, 7: 0.74, 9: 0.80}   # report: 0.7561, inside [0.71, 0.80]


def test_several_seeds_give_numpys_mean_and_sample_sd_and_where_the_report_falls(tmp_path):
    overrides = {("q1/mlp", seed): {"test_acc": v} for seed, v in MLP_TEST.items()}
    overrides |= {("q1/perceptron", seed): {"test_acc": 0.5 + seed / 1000} for seed in SEEDS}
    metrics = fabricate_metrics(tmp_path, SYNTHETIC, overrides, seeds=SEEDS)
    tables = build_tables({**PARAMS, "seeds": list(SEEDS)}, REPORT, SYNTHETIC, metrics)

    values = list(MLP_TEST.values())
    mean, sd = np.mean(values), np.std(values, ddof=1)
    report = REPORT["runs"]["q1/mlp"]["test_acc"]
    got = row(table(tables, 1), "q1/mlp")
    assert got["seeds"] == "42;7;9"
    assert got["test_acc_seeds"] == "0.71;0.74;0.8"
    assert got["test_acc_reproduced"] == mean
    assert got["test_acc_sd"] == sd
    assert got["test_acc_n"] == 3
    assert got["test_acc_diff"] == round(mean - report, 4)
    assert got["test_acc_z"] == round((report - mean) / sd, 4)
    assert got["test_acc_in_range"] is True
    mlp_cells = next(c for c in table(tables, 1).cells if c[1] == "`q1/mlp`")
    assert mlp_cells[4] == f"{mean:.4f} ± {sd:.4f} (3)"  # Table 1 marks no best
    assert mlp_cells[5] == (f"{mean - report:+.4f} (z {(report - mean) / sd:+.2f}, "
                            f"in [0.7100, 0.8000])")

    # the perceptron's report value (0.3422) lies far below its seeds' [0.507, 0.542]
    perceptron = row(table(tables, 1), "q1/perceptron")
    assert perceptron["test_acc_in_range"] is False
    assert "outside [0.5070, 0.5420]" in table(tables, 1).cells[0][5]
    # a run whose seeds agree exactly has no sd to measure the report against
    logreg = table(tables, 1).cells[1]
    assert logreg[4] == "0.5000 ± 0.0000 (3)"
    assert logreg[5] == "-0.0784 (z undefined (sd 0), outside [0.5000, 0.5000])"
    assert row(table(tables, 1), "q1/logreg_lr1e-2")["test_acc_z"] is None
    # no report value: no difference and nothing to place among the seeds
    other = row(table(tables, 2), "q2/logreg_lr1e-1")
    assert other["test_acc_diff"] is None and other["test_acc_z"] is None
    assert other["test_acc_in_range"] is None and other["test_acc_n"] == 3
    assert "mean ± sample sd (n) over seeds 42, 7, 9" in render_markdown(tables)

    got = summary([RunId.parse("q1/mlp")], list(SEEDS), metrics)["q1_mlp"]
    assert got == {"test": round(mean, 4), "val": 0.5, "best_val": 0.5, "official_acc": 0.5,
                   "official_auc": 0.5, "test_sd": round(sd, 4), "val_sd": 0.0,
                   "best_val_sd": 0.0, "official_acc_sd": 0.0, "official_auc_sd": 0.0, "n": 3}


def test_bold_marks_the_best_mean_not_the_best_single_seed(tmp_path):
    # lr 0.1 has the single best seed (0.9) but the lower mean (0.6333 < 0.7)
    overrides = {("q2/logreg_lr1e-1", 42): {"val_acc": 0.9},
                 ("q2/logreg_lr1e-1", 7): {"val_acc": 0.5},
                 ("q2/logreg_lr1e-1", 9): {"val_acc": 0.5},
                 "q2/logreg_lr1e-3": {"val_acc": 0.7}}
    metrics = fabricate_metrics(tmp_path, SYNTHETIC, overrides, seeds=SEEDS)
    tbl = table(build_tables({**PARAMS, "seeds": list(SEEDS)}, REPORT, SYNTHETIC, metrics), 2)
    assert {r["run"]: r["best_reproduced"] for r in tbl.csv_rows} == \
        {"q2/logreg_lr1e-1": "", "q2/logreg_lr1e-2": "", "q2/logreg_lr1e-3": "val_acc"}
    assert tbl.cells[2][4] == "**0.7000 ± 0.0000 (3)**"
    assert tbl.notes[-1] == ("Bold: the best value of its column, as the report marks it "
                             "(reproduced: the best mean).")


def test_a_run_diverged_in_some_seeds_says_which_and_where(tmp_path):
    diverged_at_5 = {**DIVERGED, "diverged_epoch": 5, "diverged_reason": "weights are inf"}
    metrics = fabricate_metrics(tmp_path, OCTMNIST, {("q2/ffn_lr1", 7): DIVERGED,
                                                     ("q2/ffn_lr1", 9): diverged_at_5,
                                                     ("q1/mlp", 9): {"data_source": "synthetic"}},
                                seeds=SEEDS)
    tables = build_tables({**PARAMS, "seeds": list(SEEDS)}, REPORT, OCTMNIST, metrics)
    assert row(table(tables, 5), "q2/ffn_lr1")["note"] == (
        "diverged in 2 of 3 seeds: seed 7 at epoch 3 (training loss is nan), "
        "seed 9 at epoch 5 (weights are inf)")
    assert row(table(tables, 1), "q1/mlp")["note"] == \
        "seed 9 trained on synthetic, not on the data of metrics/data.json"
    assert [r["note"] for r in table(tables, 5).csv_rows if r["run"] != "q2/ffn_lr1"] == [""] * 3
    got = summary(RUNS, list(SEEDS), metrics)
    assert got["q2_ffn_lr1"]["diverged"] is True
    assert [run for run, values in got.items() if "diverged" in values] == ["q2_ffn_lr1"]


def test_several_seeds_put_every_seeds_value_in_the_csv(tmp_path):
    metrics = fabricate_metrics(tmp_path, SYNTHETIC, {("train", 7): {"train_seconds": 12.5}},
                                seeds=SEEDS)
    tbl = table(build_tables({**PARAMS, "seeds": list(SEEDS)}, REPORT, SYNTHETIC, metrics), 4)
    write_csv(tmp_path / "table4.csv", tbl.csv_rows)
    with open(tmp_path / "table4.csv", newline="") as fh:
        got = next(r for r in csv.DictReader(fh) if r["run"] == "train")
    assert got["train_seconds_seeds"] == "10.0;12.5;10.0"
    assert float(got["train_seconds_sd"]) == pytest.approx(np.std([10, 12.5, 10], ddof=1))
    assert got["train_seconds_n"] == "3"


def test_invalid_seeds_name_the_params_key(tmp_path):
    metrics = fabricate_metrics(tmp_path, SYNTHETIC)
    with pytest.raises(ParamsError, match=r"seeds must be a non-empty list of distinct "
                                          r"integers >= 0, got \[42, 42\]"):
        build_tables({**PARAMS, "seeds": [42, 42]}, REPORT, SYNTHETIC, metrics)


# --- the benchmark table ----------------------------------------------------------------------

BENCHMARK = load_benchmark_values(REPO / "reports/benchmark_values.yaml")


def test_benchmark_values_name_their_source_protocol_and_models():
    assert BENCHMARK["dataset"] == "OctMNIST" and BENCHMARK["auc_from"] == "softmax probabilities"
    assert "Scientific Data 10, 41 (2023)" in BENCHMARK["source"]
    assert "best validation AUC" in BENCHMARK["protocol"]
    assert {m["name"]: (m["auc"], m["acc"]) for m in BENCHMARK["models"]} == {
        "ResNet-18 (28)": (0.943, 0.743), "ResNet-18 (224)": (0.958, 0.763),
        "ResNet-50 (28)": (0.952, 0.762), "ResNet-50 (224)": (0.958, 0.776),
        "auto-sklearn": (0.887, 0.601), "AutoKeras": (0.955, 0.763),
        "Google AutoML Vision": (0.963, 0.771)}


def test_benchmark_table_puts_the_benchmarks_rows_above_every_runs_official_acc_and_auc(
        tmp_path):
    metrics = fabricate_metrics(tmp_path, OCTMNIST, {
        "q1/mlp": {"official_acc": 0.71234, "official_auc": 0.91},
        "q1/perceptron": {"auc_from": "class scores (the perceptron has no probabilities)"}})
    tbl = benchmark_table(PARAMS, BENCHMARK, REPORT, OCTMNIST, metrics)
    assert tbl.heading == ("Benchmark: ACC and AUC on the official test split, beside the "
                           "MedMNIST v2 benchmark") and tbl.csv_name == "benchmark.csv"
    n = len(BENCHMARK["models"])
    assert [r["source"] for r in tbl.csv_rows] == ["benchmark"] * n + ["reproduced"] * len(RUNS)
    assert tbl.cells[0] == ["ResNet-18 (28)", "MedMNIST v2 (benchmark)", "—", "0.743", "0.943",
                            "—"]
    assert {r["run"] for r in tbl.csv_rows[n:]} == set(REPORT["runs"])
    mlp = next(c for c in tbl.cells if c[1] == "`q1/mlp`")
    assert mlp == ["mlp", "`q1/mlp`", "epochs=20, lr=0.001, hidden_size=200, init_mean=0.1, "
                   "init_std=0.1", "0.7123", "0.9100", "—"]
    assert row(tbl, "q1/mlp")["acc"] == 0.71234 and row(tbl, "q1/mlp")["auc"] == 0.91
    assert row(tbl, "q1/perceptron")["note"] == (
        "AUC from class scores (the perceptron has no probabilities), not softmax probabilities")
    # the data named as in every table, then the benchmark's source and protocol in one line
    assert tbl.notes[0].startswith(f"Data: OctMNIST (MD5 {OCTMNIST['md5']})")
    assert tbl.notes[1] == f"Benchmark: {BENCHMARK['source']}; {BENCHMARK['test_set']}."
    assert tbl.notes[2] == f"Benchmark protocol: {BENCHMARK['protocol']}"
    assert "\n" not in tbl.notes[2]
    assert tbl.notes[3].startswith("Reproduced: each run as params.yaml trains it (the report's "
                                   "protocol), its model after the last epoch scored on the "
                                   "whole official test split (1,000 images)")
    markdown = render_markdown([tbl])
    assert "Scientific Data 10, 41 (2023)" in markdown and "Benchmark protocol: ResNets" in markdown


def test_benchmark_table_on_synthetic_data_says_it_is_not_octmnist(tmp_path):
    metrics = fabricate_metrics(tmp_path, SYNTHETIC)
    tbl = benchmark_table(PARAMS, BENCHMARK, REPORT, SYNTHETIC, metrics)
    assert tbl.notes[0].startswith("Data: synthetic stand-in, not comparable to the report")
    assert tbl.notes[1] == "Not OctMNIST: the reproduced rows cannot be compared with the " \
                           "benchmark's."


def test_benchmark_table_over_several_seeds_gives_mean_and_sd(tmp_path):
    overrides = {("train", seed): {"official_acc": acc, "official_auc": auc}
                 for seed, acc, auc in ((42, 0.70, 0.90), (7, 0.72, 0.91), (9, 0.74, 0.95))}
    metrics = fabricate_metrics(tmp_path, OCTMNIST, overrides, seeds=SEEDS)
    tbl = benchmark_table({**PARAMS, "seeds": list(SEEDS)}, BENCHMARK, REPORT, OCTMNIST, metrics)
    acc_sd, auc_sd = np.std([0.70, 0.72, 0.74], ddof=1), np.std([0.90, 0.91, 0.95], ddof=1)
    got = row(tbl, "train")
    assert got["acc"] == pytest.approx(0.72) and got["acc_sd"] == pytest.approx(acc_sd)
    assert got["auc_seeds"] == "0.9;0.91;0.95" and got["n"] == 3
    cells = next(c for c in tbl.cells if c[1] == "`train`")
    assert cells[3:5] == [f"0.7200 ± {acc_sd:.4f} (3)", f"{np.mean([0.9, 0.91, 0.95]):.4f} ± "
                                                        f"{auc_sd:.4f} (3)"]
    benchmark_row = tbl.csv_rows[0]
    assert list(benchmark_row) == list(got) and benchmark_row["n"] is None
    assert "mean ± sample sd (n) over seeds 42, 7, 9" in render_markdown([tbl])


def test_benchmark_table_shows_a_missing_auc_with_its_reason(tmp_path):
    metrics = fabricate_metrics(tmp_path, OCTMNIST, {"q2/ffn_lr1": DIVERGED})
    tbl = benchmark_table(PARAMS, BENCHMARK, REPORT, OCTMNIST, metrics)
    cells = next(c for c in tbl.cells if c[1] == "`q2/ffn_lr1`")
    assert cells[3:5] == ["0.5000", "—"]
    assert cells[5] == ("diverged at epoch 3 (training loss is nan); AUC not measured: AUC "
                        "undefined: the model's class scores are not finite")
    assert row(tbl, "q2/ffn_lr1")["auc"] is None


@pytest.mark.parametrize("text, message", [
    (None, "not found: it holds the MedMNIST v2 benchmark's values"),
    ("models: [\n", "is not valid YAML"),
    ("models: []\n", "must give dataset, source, protocol, test_set, auc_from as text"),
    (yaml.safe_dump({**BENCHMARK, "models": [{"name": "x", "acc": "high"}]}),
     "models must be a list of entries with name, acc, auc"),
])
def test_bad_benchmark_values_file_is_named(tmp_path, text, message):
    path = tmp_path / "benchmark_values.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ReportInputError, match=message):
        load_benchmark_values(path)


# --- data without the report's test subset ----------------------------------------------------

MISSING = ("the test split has only 30 DRUSEN images; the report's test subset takes the first "
           "182 CNV, 55 DME, 42 DRUSEN, 250 NORMAL")
NO_SUBSET = {"source": "file", "dataset": "file (not OctMNIST)", "md5": "ab12",
             "sizes": {"train": 97477, "val": 10832, "test": 900},
             "report_test": {"size": 0, "class_counts": None, "missing": MISSING}}
NO_SUBSET_METRICS = {"test_acc": None, "test_auc": None, "test_images": 0,
                     "test_missing": MISSING}


def test_without_the_reports_subset_the_tables_show_its_values_missing_and_why(tmp_path,
                                                                                monkeypatch):
    metrics = fabricate_metrics(tmp_path, NO_SUBSET, {run: NO_SUBSET_METRICS
                                                      for run in REPORT["runs"]})
    tables = build_tables(PARAMS, REPORT, NO_SUBSET, metrics)
    t1 = table(tables, 1)
    assert t1.notes[0] == (
        "Data: file stand-in, not comparable to the report (MD5 ab12); test sets: the official "
        f"split (900 images: ACC, AUC); the report's subset is missing ({MISSING}), so its "
        "test accuracies are not measured.")
    assert t1.cells[0][3:] == ["0.3422", "—", "—", f"Test acc. not measured: {MISSING}"]
    assert row(t1, "q1/perceptron")["test_acc_reproduced"] is None
    assert row(t1, "q1/perceptron")["test_acc_diff"] is None
    t5 = table(tables, 5)   # the validation columns are there as ever
    assert row(t5, "train")["best_val_acc_reproduced"] == 0.5
    assert summary([RunId.parse("q1/mlp")], [42], metrics)["q1_mlp"] == {
        "test": None, "val": 0.5, "best_val": 0.5, "official_acc": 0.5, "official_auc": 0.5}
    claims = {r.claim.id: r for r in check_claims([42], metrics)}
    assert claims["q1_order"].holds == 0 and claims["q1_order"].unchecked == {
        42: f"test_acc of q1/mlp not measured ({MISSING}); test_acc of q1/logreg_lr1e-2 not "
            f"measured ({MISSING}); test_acc of q1/logreg_lr1e-3 not measured ({MISSING}); "
            f"test_acc of q1/perceptron not measured ({MISSING})"}
    assert claims["table2_lr1e-2_best"].unchecked == {}   # validation accuracy only
    text = render_claims(list(claims.values()), "Data: x.")
    assert "| 0 of 1 seed (1 unchecked) | — |" in text
    assert "## Where a claim could not be checked" in text
    assert claims_metrics(list(claims.values()))["q1_order"] == {"holds": 0, "seeds": 1,
                                                                 "unchecked": 1}
    # and the tables stage writes every table
    project(tmp_path)
    monkeypatch.chdir(tmp_path)
    tables_stage.main()
    assert "Test acc. not measured" in (tmp_path / "reports/tables.md").read_text()
    assert json.loads((tmp_path / "metrics/summary.json").read_text())["train"]["test"] is None
