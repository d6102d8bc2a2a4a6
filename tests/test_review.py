"""End to end with the real `dvc`: the whole pipeline, then one changed param as a reviewer
sees it (`dvc metrics diff`, `dvc params diff`, `dvc plots diff`, the regenerated tables), then
a queued sweep as `dvc exp show` lists it."""
from __future__ import annotations

import csv
import io
import json
import re
import time

import pytest
from conftest import stages_run

pytestmark = pytest.mark.e2e

FIGURES = ["fig01_perceptron", "fig02_logreg_lr1e-2", "fig03_logreg_lr1e-3",
           "fig04_mlp_accuracy", "fig05_mlp_loss", "fig06_mlp_loss_log", "fig07_logreg_torch",
           "fig08_batch_size", "fig09_learning_rate", "fig10_regularization", "fig11_boolean"]


def _table(repo, number: int) -> dict[str, dict[str, str]]:
    rows = csv.DictReader(io.StringIO((repo.path / f"reports/tables/table{number}.csv")
                                      .read_text()))
    return {row["run"]: row for row in rows}


@pytest.mark.slow
def test_review_workflow_on_the_whole_pipeline(pipeline_repo):
    dvc_repo = pipeline_repo   # the whole pipeline, reproduced and committed on main
    for name in FIGURES:
        assert (dvc_repo.path / f"reports/figures/{name}.png").stat().st_size > 10_000
    tables_md = (dvc_repo.path / "reports/tables.md").read_text()
    assert "synthetic stand-in, not comparable to the report" in tables_md
    summary = json.loads((dvc_repo.path / "metrics/summary.json").read_text())
    assert len(summary) == 15 and set(summary["q2_ffn_lr1e-2"]) == {
        "test", "val", "best_val", "official_acc", "official_auc"}
    assert json.loads((dvc_repo.path / "metrics/boolean.json").read_text())["failures"] == 0
    assert "Running stage" not in dvc_repo.run("repro").stdout
    dvc_repo.run("git", "checkout", "-q", "-b", "review")   # a branch; main stays the baseline
    table1_before = _table(dvc_repo, 1)

    changed = dvc_repo.run("exp", "run", "-S", "q1.logreg_lr1e-3.lr=0.1")
    assert stages_run(changed.stdout) == {"check_params", "q1@logreg_lr1e-3-42", "figures",
                                          "tables"}

    # metrics diff: the changed run's headline numbers, nothing of any other run
    diff = json.loads(dvc_repo.run("metrics", "diff", "main", "--json").stdout)
    assert list(diff) == ["metrics/summary.json"]
    assert {key.split(".")[0] for key in diff["metrics/summary.json"]} == {"q1_logreg_lr1e-3"}

    params = json.loads(dvc_repo.run("params", "diff", "main", "--json").stdout)
    assert list(params["params.yaml"]) == ["q1.logreg_lr1e-3.lr"]
    assert params["params.yaml"]["q1.logreg_lr1e-3.lr"]["new"] == 0.1

    table1 = _table(dvc_repo, 1)
    row = table1["q1/logreg_lr1e-3"]
    assert "lr=0.1" in row["params"]
    assert "lr=0.1 (report: 0.001)" in row["note"]   # says it differs from the report
    assert row["test_acc_reproduced"] != table1_before["q1/logreg_lr1e-3"]["test_acc_reproduced"]
    for run, before in table1_before.items():   # other rows: same numbers (the bold may move)
        if run != "q1/logreg_lr1e-3":
            assert {k: v for k, v in table1[run].items() if k != "best_reproduced"} == \
                {k: v for k, v in before.items() if k != "best_reproduced"}

    # what the pull-request workflow runs: a Vega-Lite spec per overlay, and the HTML page
    vega = json.loads(dvc_repo.run("plots", "diff", "main", "--show-vega", "--targets",
                                   "q1_logreg_lr_val_acc").stdout)
    assert "vega-lite" in vega["$schema"]
    revisions = {row["rev"] for row in vega["data"]["values"]}
    assert revisions == {"main", "workspace"}
    dvc_repo.run("plots", "diff", "main", "--out", "dvc_plots")
    assert "q1_logreg_lr_val_acc" in (dvc_repo.path / "dvc_plots/index.html").read_text()

    # a queued sweep on top: each experiment re-runs `train` and the report stages only, and
    # `dvc exp show` lists the swept param beside its headline numbers
    dvc_repo.commit("q1 change")
    queued = dvc_repo.run("exp", "run", "--queue", "-S", "train.lr=1,0.01")
    assert queued.stdout.count("Queued experiment") == 2
    dvc_repo.run("queue", "start")
    status = wait_for_queue(dvc_repo)
    assert status.count("Success") == 2, status
    for name in re.findall(r"Queued experiment '([^']+)'", queued.stdout):
        log = dvc_repo.run("queue", "logs", name).stdout
        assert stages_run(log) == {"check_params", "train@42", "figures", "tables"}, log

    shown = dvc_repo.run("exp", "show", "--csv").stdout
    header, *rows = shown.strip().splitlines()
    columns = header.split(",")
    assert {"train.lr", "train.val", "train.test", "train.official_acc",
            "train.official_auc"} <= set(columns)
    experiments = [dict(zip(columns, line.split(","))) for line in rows]
    swept = {float(e["train.lr"]): e for e in experiments if e["Experiment"]}
    assert set(swept) == {1.0, 0.01}
    assert all(0 <= float(e["train.val"]) <= 1 for e in swept.values())


def wait_for_queue(dvc_repo, timeout: float = 300.0) -> str:
    """`dvc queue start` returns at once; poll `dvc queue status` until nothing is pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = dvc_repo.run("queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(2)
    raise AssertionError(f"queue still busy after {timeout} s:\n{status}")
