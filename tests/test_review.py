"""End to end with the real `dvc`: the whole pipeline, then one changed param as a reviewer
sees it (`dvc metrics diff`, `dvc params diff`, `dvc plots diff`, the regenerated tables)."""
from __future__ import annotations

import csv
import io
import json
import re

FIGURES = ["fig01_perceptron", "fig02_logreg_lr1e-2", "fig03_logreg_lr1e-3",
           "fig04_mlp_accuracy", "fig05_mlp_loss", "fig06_mlp_loss_log", "fig07_logreg_torch",
           "fig08_batch_size", "fig09_learning_rate", "fig10_regularization", "fig11_boolean"]


def _table(repo, number: int) -> dict[str, dict[str, str]]:
    rows = csv.DictReader(io.StringIO((repo.path / f"reports/tables/table{number}.csv")
                                      .read_text()))
    return {row["run"]: row for row in rows}


def test_whole_pipeline_then_one_param_change_shows_only_that_run(dvc_repo):
    dvc_repo.run("repro")
    for name in FIGURES:
        assert (dvc_repo.path / f"reports/figures/{name}.png").stat().st_size > 10_000
    tables_md = (dvc_repo.path / "reports/tables.md").read_text()
    assert "synthetic stand-in, not comparable to the report" in tables_md
    summary = json.loads((dvc_repo.path / "metrics/summary.json").read_text())
    assert len(summary) == 15 and set(summary["q2_ffn_lr1e-2"]) == {"test", "val", "best_val"}
    assert json.loads((dvc_repo.path / "metrics/boolean.json").read_text())["failures"] == 0
    assert "Running stage" not in dvc_repo.run("repro").stdout
    dvc_repo.commit("baseline")
    table5_before = _table(dvc_repo, 5)

    changed = dvc_repo.run("exp", "run", "-S", "q2.ffn_lr1e-2.lr=0.05")
    assert set(re.findall(r"Running stage '([^']+)'", changed.stdout)) == {
        "q2@ffn_lr1e-2", "figures", "tables"}

    diff = json.loads(dvc_repo.run("metrics", "diff", "main", "--json").stdout)
    # the changed run's own file (its time always moves) and, if its accuracies moved at this
    # tiny scale, its keys in the summary: nothing of any other run
    assert "metrics/q2/ffn_lr1e-2.json" in diff
    assert "train_seconds" in diff["metrics/q2/ffn_lr1e-2.json"]
    assert set(diff) <= {"metrics/q2/ffn_lr1e-2.json", "metrics/summary.json"}
    assert {key.split(".")[0] for key in diff.get("metrics/summary.json", {})} <= {
        "q2_ffn_lr1e-2"}

    params = json.loads(dvc_repo.run("params", "diff", "main", "--json").stdout)
    assert list(params["params.yaml"]) == ["q2.ffn_lr1e-2.lr"]
    assert params["params.yaml"]["q2.ffn_lr1e-2.lr"]["new"] == 0.05

    table5 = _table(dvc_repo, 5)
    row = table5["q2/ffn_lr1e-2"]
    assert "lr=0.05" in row["params"]
    assert "0.05" in row["note"] and "0.01" in row["note"]   # says it differs from the report
    assert row != table5_before["q2/ffn_lr1e-2"]
    for run, before in table5_before.items():   # other rows: same numbers (the bold may move)
        if run != "q2/ffn_lr1e-2":
            assert {k: v for k, v in table5[run].items() if k != "best_reproduced"} == \
                {k: v for k, v in before.items() if k != "best_reproduced"}

    plots = dvc_repo.run("plots", "diff", "main", "--targets", "network_lr_val_acc", "--json")
    rendered = json.loads(plots.stdout)
    assert "network_lr_val_acc" in json.dumps(rendered)
