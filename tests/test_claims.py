"""The report's conclusions checked seed by seed, against a hand count on fabricated metrics."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hw1.claims import CLAIMS, check_claims, claims_metrics, render_claims
from hw1.params import load_params
from hw1.report_inputs import ReportInputError, load_report_values
from hw1.runs import RunId
from stages import tables as tables_stage

REPO = Path(__file__).resolve().parents[1]
REPORT = load_report_values(REPO / "reports/report_values.yaml")
SEEDS = (1, 2, 3)

# Values with which every claim holds (close to the report's own), per run and metric ...
HOLDING = {
    "q1/perceptron": {"test_acc": 0.34}, "q1/logreg_lr1e-2": {"test_acc": 0.58},
    "q1/logreg_lr1e-3": {"test_acc": 0.59}, "q1/mlp": {"test_acc": 0.75},
    "q2/logreg_lr1e-1": {"val_acc": 0.62}, "q2/logreg_lr1e-2": {"val_acc": 0.65},
    "q2/logreg_lr1e-3": {"val_acc": 0.61},
    "train": {"test_acc": 0.77, "train_seconds": 600.0, "best_val_acc": 0.83},
    "q2/ffn_bs1024": {"test_acc": 0.70, "train_seconds": 80.0},
    "q2/ffn_lr1": {"best_val_acc": 0.47}, "q2/ffn_lr1e-2": {"best_val_acc": 0.81},
    "q2/ffn_lr1e-3": {"best_val_acc": 0.72},
    "q2/ffn_bs256_e150": {"best_val_acc": 0.867, "val_acc": 0.84, "test_acc": 0.78},
    "q2/ffn_bs256_e150_l2": {"best_val_acc": 0.865, "val_acc": 0.858, "test_acc": 0.77},
    "q2/ffn_bs256_e150_dropout": {"best_val_acc": 0.864, "val_acc": 0.863, "test_acc": 0.79},
}
# ... and what each seed changes: a tie counts as not holding.
PER_SEED = {
    1: {"q2/logreg_lr1e-1": {"val_acc": 0.65},               # table2: tie with lr 0.01
        "q2/ffn_bs1024": {"test_acc": 0.77},                  # table4: tie in test accuracy
        "q2/ffn_bs256_e150": {"val_acc": 0.87},               # table6_overfitting: last highest
        "q2/ffn_bs256_e150_dropout": {"test_acc": 0.78}},     # dropout: tie with no regularization
    2: {"q1/logreg_lr1e-3": {"test_acc": 0.34},               # q1_order: tie with perceptron
        "q2/ffn_bs256_e150_l2": {"best_val_acc": 0.867},      # table6_overfitting: tie in best
        "q2/ffn_bs256_e150_dropout": {"test_acc": 0.765}},    # dropout: below both
    3: {"q1/mlp": {"test_acc": 0.585},                        # q1_order: MLP below lr 0.001
        "train": {"train_seconds": 70.0},                     # table4: batch 16 is faster
        "q2/ffn_bs256_e150_dropout": {"test_acc": 0.775}},    # dropout: above L2 only
}
EXPECTED = {  # claim: (holds in k of the 3 seeds, the failing seeds), counted by hand
    "q1_order": (1, [2, 3]),
    "table2_lr1e-2_best": (2, [1]),
    "table4_batch16_vs_1024": (1, [1, 3]),
    "table5_lr_order": (3, []),
    "table6_overfitting": (1, [1, 2]),
    "table6_dropout_best_test": (0, [1, 2, 3]),
}
DATA = {"source": "synthetic", "dataset": "synthetic (not OctMNIST)", "md5": "5e1f00d5",
        "sizes": {"train": 975, "val": 108, "test": 1000},
        "report_test": {"size": 529, "missing": None}}


def fabricate(root: Path, seeds: tuple[int, ...] = SEEDS,
              per_seed: dict | None = None) -> Path:
    """metrics/seeds/<run>/<seed>.json for every run of the report: HOLDING, then ``per_seed``
    (PER_SEED unless given), 0.5 for any other metric."""
    per_seed = PER_SEED if per_seed is None else per_seed
    metrics = root / "metrics"
    for run in REPORT["runs"]:
        for seed in seeds:
            values = {"train_acc": 0.5, "val_acc": 0.5, "test_acc": 0.5, "best_val_acc": 0.5,
                      "official_acc": 0.5, "official_auc": 0.5,
                      "best_epoch": 1, "epochs": 2, "train_seconds": 10.0, "data_source":
                      DATA["source"], **HOLDING.get(run, {}),
                      **per_seed.get(seed, {}).get(run, {})}
            path = metrics / "seeds" / run / f"{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
    (metrics / "data.json").write_text(json.dumps(DATA))
    return metrics


def test_each_claim_holds_in_the_seeds_counted_by_hand(tmp_path):
    results = check_claims(SEEDS, fabricate(tmp_path))
    assert {r.claim.id: (r.holds, sorted(r.failures)) for r in results} == EXPECTED
    assert claims_metrics(results) == {claim: {"holds": k, "seeds": 3}
                                       for claim, (k, _) in EXPECTED.items()}


def test_a_failing_seed_names_the_comparisons_it_breaks_ties_included(tmp_path):
    results = {r.claim.id: r for r in check_claims(SEEDS, fabricate(tmp_path))}
    assert results["q1_order"].failures == {
        2: ["test_acc of q1/logreg_lr1e-3 0.34 ≤ q1/perceptron 0.34"],
        3: ["test_acc of q1/mlp 0.585 ≤ q1/logreg_lr1e-3 0.59"]}
    assert results["table4_batch16_vs_1024"].failures == {
        1: ["test_acc of train 0.77 ≤ q2/ffn_bs1024 0.77"],
        3: ["train_seconds of train 70 ≤ q2/ffn_bs1024 80"]}


def test_one_seed_where_every_claim_holds(tmp_path):
    results = check_claims([42], fabricate(tmp_path, seeds=(42,)))
    assert claims_metrics(results) == {claim: {"holds": 1, "seeds": 1} for claim in EXPECTED}
    assert "| 1 of 1 seed | — |" in render_claims(results, "Data: x.")
    assert "Where a claim fails" not in render_claims(results, "Data: x.")


def test_claims_hold_on_the_reports_own_values_where_it_gives_them():
    """Guards the direction of every comparison: the report's numbers bear its conclusions."""
    values = {(RunId.parse(run), key): value for run, entry in REPORT["runs"].items()
              for key, value in entry.items() if isinstance(value, (int, float))}
    checked = 0
    for claim in CLAIMS:
        given = [c for c in claim.comparisons
                 if (c.higher, c.metric) in values and (c.lower, c.metric) in values]
        assert all(c.holds(values) for c in given), claim.id
        checked += len(given)
    assert checked >= 15   # most comparisons: the report omits some test accuracies


def test_every_claim_compares_runs_of_the_report():
    assert [c.id for c in CLAIMS] == list(EXPECTED)
    for claim in CLAIMS:
        assert claim.comparisons, claim.id
        for run, metric in claim.compared:
            assert run.path in REPORT["runs"], (claim.id, run)
            assert metric in {"test_acc", "val_acc", "best_val_acc", "train_seconds"}


def test_claims_markdown_reads_k_of_n_and_the_failing_seeds(tmp_path):
    text = render_claims(check_claims(SEEDS, fabricate(tmp_path)), "Data: synthetic stand-in.")
    assert "(1, 2, 3)" in text and "a tie counts as not holding" in text
    assert "Data: synthetic stand-in." in text
    lines = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| `")}
    for claim, (k, failing) in EXPECTED.items():
        assert lines[f"| `{claim}`"].endswith(
            f"| {k} of 3 seeds | {', '.join(map(str, failing)) or '—'} |")
    assert "test_acc: train > q2/ffn_bs1024; train_seconds: train > q2/ffn_bs1024" in \
        lines["| `table4_batch16_vs_1024`"]
    assert "- `table6_overfitting`, seed 2: best_val_acc of q2/ffn_bs256_e150 0.867 ≤ " \
           "q2/ffn_bs256_e150_l2 0.867" in text


def test_a_missing_metric_names_the_file_the_claim_and_the_stage(tmp_path):
    metrics = fabricate(tmp_path)
    path = metrics / "seeds/train/2.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items()
                                if k != "train_seconds"}))
    with pytest.raises(ReportInputError, match=r"metrics/seeds/train/2\.json has no "
                                               r"'train_seconds' \(claim table4_batch16_vs_1024\)"
                                               r"; run `dvc repro train@2` again"):
        check_claims(SEEDS, metrics)


def test_stage_writes_claims_markdown_and_metric(tmp_path, monkeypatch):
    fabricate(tmp_path)
    (tmp_path / "reports").mkdir()
    for name in ("report_values.yaml", "benchmark_values.yaml"):
        (tmp_path / "reports" / name).write_text((REPO / "reports" / name).read_text())
    params = {**load_params(REPO / "params.yaml"), "seeds": list(SEEDS)}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    tables_stage.main()

    assert json.loads((tmp_path / "metrics/claims.json").read_text()) == \
        {claim: {"holds": k, "seeds": 3} for claim, (k, _) in EXPECTED.items()}
    markdown = (tmp_path / "reports/claims.md").read_text()
    assert markdown.startswith("# The report's conclusions, checked seed by seed")
    assert "Data: synthetic stand-in, not comparable to the report" in markdown
    assert "| `table5_lr_order` |" in markdown
    summary = json.loads((tmp_path / "metrics/summary.json").read_text())
    assert summary["train"]["n"] == 3 and summary["train"]["test_sd"] == 0.0
