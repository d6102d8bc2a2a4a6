"""Both test sets scored with ACC and AUC: the AUC against a value counted by hand, the
perceptron's AUC on its class scores, missing values with their reasons, and a user's file
without the report's test subset run through the stages."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hw1.data import synthetic_octmnist
from hw1.scoring import (
    AUC_FROM_PROBABILITIES,
    AUC_FROM_SCORES,
    accuracy,
    macro_auc,
    score_set,
    score_test_sets,
    softmax,
)
from hw1.splits import Splits

REPO = Path(__file__).resolve().parents[1]

# Eight images, two per class; each row's class probabilities. No positive of a class ties a
# negative of it, so every one-vs-rest AUC is a plain count of ordered pairs.
Y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
P = np.array([[0.70, 0.10, 0.10, 0.10],
              [0.40, 0.35, 0.15, 0.10],
              [0.50, 0.30, 0.10, 0.10],
              [0.10, 0.60, 0.20, 0.10],
              [0.20, 0.20, 0.50, 0.10],
              [0.10, 0.40, 0.30, 0.20],
              [0.10, 0.10, 0.10, 0.70],
              [0.25, 0.25, 0.25, 0.25]])
# One-vs-rest, each class: 2 positives x 6 negatives = 12 pairs, AUC = pairs ranked right / 12.
#   CNV    positives 0.70 (above all 6), 0.40 (below 0.50 only): 6 + 5 = 11
#   DME    positives 0.60 (above all 6), 0.30 (below 0.35, 0.40): 6 + 4 = 10
#   DRUSEN positives 0.50, 0.30, every negative at most 0.25:     12
#   NORMAL positives 0.70, 0.25, every negative at most 0.20:     12
# Macro average: (11 + 10 + 12 + 12) / 48 = 45 / 48.
AUC_BY_HAND = 45 / 48
# Argmax (ties to the lowest class): right for images 0, 1, 3, 4 and 6; image 2 -> CNV, 5 -> DME,
# 7 (all equal) -> CNV.
ACC_BY_HAND = 5 / 8


def test_auc_is_the_macro_one_vs_rest_auc_counted_by_hand():
    got = score_set(Y, np.log(P), probabilities=True)   # softmax(log P) = P
    assert got["auc"] == pytest.approx(AUC_BY_HAND, abs=1e-12)
    assert got["acc"] == ACC_BY_HAND and got["missing"] is None


def test_auc_equals_scikit_learns_ovr_macro_auc():
    metrics = pytest.importorskip("sklearn.metrics")
    assert metrics.roc_auc_score(Y, P, multi_class="ovr", average="macro") == \
        pytest.approx(AUC_BY_HAND, abs=1e-12)
    assert score_set(Y, np.log(P), True)["auc"] == pytest.approx(
        metrics.roc_auc_score(Y, P, multi_class="ovr", average="macro"), abs=1e-12)


def score_sets() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Labels and class scores of every kind a run produces: continuous probabilities, rounded
    ones full of ties, one class far more common, constant columns, integer scores, and the
    official split's 1,000 images."""
    rng = np.random.default_rng(0)
    cases = []
    for n in (4, 9, 50, 529, 1000):
        y = np.r_[np.arange(4), rng.integers(0, 4, n - 4)]
        logits = rng.normal(size=(n, 4)) + 1.5 * np.eye(4)[y]
        cases += [(f"probabilities n={n}", y, softmax(logits)),
                  (f"rounded n={n}", y, np.round(softmax(logits), 1)),
                  (f"integer scores n={n}", y, rng.integers(-2, 3, (n, 4)).astype(float))]
    y = np.r_[np.arange(4), np.zeros(96, int)]
    cases.append(("one class of 97", y, softmax(rng.normal(size=(100, 4)))))
    scores = softmax(rng.normal(size=(40, 4)))
    scores[:, 2] = 0.25
    cases.append(("a constant column", np.r_[np.arange(4), rng.integers(0, 4, 36)], scores))
    return cases


@pytest.mark.parametrize("name, y, scores", score_sets(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_acc_and_auc_equal_medmnists_evaluator_to_the_last_bit(name, y, scores):
    from medmnist.evaluator import getACC, getAUC

    assert accuracy(y, scores) == getACC(y, scores, "multi-class")
    assert macro_auc(y, scores) == getAUC(y, scores, "multi-class")


def test_scoring_imports_neither_medmnist_nor_scikit_learn_nor_torch():
    code = ("import sys, hw1.scoring, stages.train_numpy; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'medmnist', 'sklearn', 'scipy', 'torch', 'pandas'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_softmax_is_stable_and_sums_to_one():
    probs = softmax(np.array([[1000.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs[1], 0.25)
    assert probs[0, 0] == 1.0


def test_a_model_without_probabilities_is_scored_on_its_class_scores():
    from medmnist.evaluator import getAUC

    # image 0 scores CNV 2 with nothing else, image 1 CNV 3 but DME 3 as well: by raw score
    # image 1 ranks above image 0 for CNV, by softmax below it (0.71 > 0.48)
    scores = np.array([[2.0, 0.0, 0.0, 0.0], [3.0, 3.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0],
                       [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [2.5, 0.0, 0.0, 0.0]])
    y = np.array([1, 0, 1, 2, 3, 0])
    raw = score_set(y, scores, probabilities=False)["auc"]
    soft = score_set(y, scores, probabilities=True)["auc"]
    assert raw == getAUC(y, scores, "multi-class")
    assert soft == getAUC(y, softmax(scores), "multi-class")
    assert raw != soft


@pytest.mark.parametrize("scores, y, reason", [
    (np.array([[np.nan] * 4] * 4), np.arange(4),
     "AUC undefined: the model's class scores are not finite"),
    (np.eye(4)[[0, 1, 1, 3]], np.array([0, 1, 1, 3]),
     "AUC undefined: no test image of class DRUSEN"),
])
def test_an_undefined_auc_is_none_with_the_reason(scores, y, reason):
    got = score_set(y, scores, probabilities=True)
    assert got["auc"] is None and got["missing"] == reason
    assert 0 <= got["acc"] <= 1


def splits_with_test(y_test: np.ndarray, report_test: np.ndarray,
                     missing: str | None = None) -> Splits:
    x = np.zeros((4, 784), np.float32)
    return Splits(x, np.arange(4), x, np.arange(4), np.zeros((len(y_test), 784), np.float32),
                  y_test, dataset="tiny (test)", md5="0" * 32, report_test=report_test,
                  report_test_missing=missing)


def test_both_test_sets_are_scored_from_one_set_of_scores():
    y = np.concatenate([Y, Y[::-1]])            # 16 images; the report's subset: the first 8
    scores = np.log(np.concatenate([P, P[::-1] ** 2]))
    got = score_test_sets(scores, splits_with_test(y, np.arange(8)), probabilities=True)
    whole = score_set(y, scores, True)
    assert got == {
        "test_acc": ACC_BY_HAND, "test_auc": pytest.approx(AUC_BY_HAND, abs=1e-12),
        "test_images": 8, "test_missing": None,
        "official_acc": whole["acc"], "official_auc": whole["auc"], "official_images": 16,
        "official_missing": None, "auc_from": AUC_FROM_PROBABILITIES}
    assert score_test_sets(scores, splits_with_test(y, np.arange(8)), False)["auc_from"] == \
        AUC_FROM_SCORES


def test_without_the_reports_subset_its_values_are_none_with_the_reason():
    got = score_test_sets(np.log(P), splits_with_test(Y, np.zeros(0, np.int64), "too few"), True)
    assert (got["test_acc"], got["test_auc"], got["test_images"], got["test_missing"]) == \
        (None, None, 0, "too few")
    assert got["official_auc"] == pytest.approx(AUC_BY_HAND, abs=1e-12)


def test_scores_for_another_number_of_images_are_refused():
    with pytest.raises(ValueError, match="7 rows of scores for 8 test images"):
        score_test_sets(np.log(P[:7]), splits_with_test(Y, np.arange(8)), True)


# --- a user's file without the report's test subset, through the stages ----------------------

def run(stage: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_user_file_with_too_few_test_images_runs_and_says_why_the_subset_is_missing(tmp_path):
    data = synthetic_octmnist(5, 0.005)
    keep = np.concatenate([np.flatnonzero(data["test_labels"].ravel() == c)[:30]
                           for c in range(4)])            # 30 per class: fewer than 42 anywhere
    data["test_images"], data["test_labels"] = data["test_images"][keep], data["test_labels"][keep]
    mine = tmp_path / "mine.npz"
    np.savez(mine, **data)
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump({
        "seed": 0, "data": {"source": "file", "path": str(mine), "synthetic": {"scale": 0.01}},
        "q1": {"logreg": {"model": "logistic_regression", "epochs": 1, "lr": 0.01}}}))
    for stage, args in (("fetch", ()), ("prepare", ()), ("train_numpy", ("q1.logreg", "42"))):
        proc = run(stage, *args, cwd=work)
        assert proc.returncode == 0, proc.stderr

    reason = ("the test split has only 30 CNV, 30 DME, 30 DRUSEN, 30 NORMAL images; the report's "
              "test subset takes the first 182 CNV, 55 DME, 42 DRUSEN, 250 NORMAL")
    summary = json.loads((work / "metrics/data.json").read_text())
    assert summary["report_test"] == {"size": 0, "class_counts": None, "missing": reason}
    assert summary["dataset"] == "file (not OctMNIST)"
    metrics = json.loads((work / "metrics/seeds/q1/logreg/42.json").read_text())
    assert {k: metrics[k] for k in ("test_acc", "test_auc", "test_images", "test_missing")} == \
        {"test_acc": None, "test_auc": None, "test_images": 0, "test_missing": reason}
    assert metrics["official_images"] == 120 and metrics["official_missing"] is None
    assert 0 <= metrics["official_acc"] <= 1 and 0 <= metrics["official_auc"] <= 1
    assert "test_acc n/a (0 images), official ACC" in proc.stdout


def test_medmnists_evaluator_imports_no_torchvision():
    code = ("import sys, medmnist.evaluator; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torchvision'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
