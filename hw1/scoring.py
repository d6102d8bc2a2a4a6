"""Scoring a trained model on both test sets, with the two metrics of the MedMNIST benchmark.

Every run is scored on the report's test subset (529 images whose class mix follows the training
set, the course loader's protocol: ``test_*``) and on OctMNIST's official test split (all 1,000
images, 250 per class: ``official_*``), each with ACC (argmax accuracy) and AUC (the mean over
the classes of the one-vs-rest ROC AUC), the benchmark's own metrics: ``medmnist.evaluator``'s
``getACC`` and ``getAUC`` (scikit-learn's ``accuracy_score`` and ``roc_auc_score``). They are
computed here in NumPy, step for step as those compute them and equal to them to the last bit
(tests/test_scoring.py compares the two on many score sets, ties included), because importing
``medmnist.evaluator`` costs a training stage seconds: the package imports torch and scikit-learn.
AUC is not invariant to softmax: the benchmark feeds the evaluator softmax probabilities, and so
does this module for every model that has them; the perceptron has none, so its AUC is computed
on its raw class scores, and its metrics say so (``auc_from``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hw1.splits import CLASSES, Splits

AUC_FROM_PROBABILITIES = "softmax probabilities"
AUC_FROM_SCORES = "class scores (the perceptron has no probabilities)"


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by each row's max so no exponent overflows."""
    z = np.asarray(scores, np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def accuracy(y: np.ndarray, scores: np.ndarray) -> float:
    """``medmnist.evaluator.getACC(y, scores, "multi-class")``: the share of rows whose highest
    score is at the label's column."""
    return float(np.average(np.asarray(y).reshape(-1) == np.argmax(scores, axis=-1)))


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of ``score`` for the boolean labels ``positive``, as scikit-learn's
    ``roc_auc_score`` computes it: the ROC curve's points at each distinct score (highest first,
    collinear points dropped), integrated by the trapezoidal rule."""
    order = np.argsort(score, kind="mergesort")[::-1]
    score, hits = score[order], positive[order].astype(np.float64)
    thresholds = np.r_[np.where(np.diff(score))[0], hits.size - 1]
    tps = np.cumsum(hits, dtype=np.float64)[thresholds]
    fps = 1 + thresholds.astype(np.float64) - tps
    if len(fps) > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps = fps[keep], tps[keep]
    fpr, tpr = np.r_[0, fps] / fps[-1], np.r_[0, tps] / tps[-1]
    return float(np.trapezoid(tpr, fpr))


def macro_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """``medmnist.evaluator.getAUC(y, scores, "multi-class")``: the one-vs-rest AUC of each
    class's column, summed in class order and divided by the number of classes."""
    y = np.asarray(y).reshape(-1)
    total = 0
    for c in range(scores.shape[1]):
        total += binary_auc(y == c, scores[:, c])
    return total / scores.shape[1]


def score_set(y: np.ndarray, scores: np.ndarray, probabilities: bool) -> dict[str, Any]:
    """ACC and AUC of class ``scores`` (N, classes) against labels ``y``, and ``missing``: why
    a value is None (AUC is undefined on non-finite scores or with a class absent), else None.

    ``probabilities``: whether the model has them (AUC then on the softmax of the scores)."""
    y, scores = np.asarray(y).reshape(-1), np.asarray(scores)
    acc = accuracy(y, scores)
    absent = [CLASSES[c] for c in range(scores.shape[1]) if not np.any(y == c)]
    if not np.isfinite(scores).all():
        return {"acc": acc, "auc": None,
                "missing": "AUC undefined: the model's class scores are not finite"}
    if absent:
        return {"acc": acc, "auc": None,
                "missing": f"AUC undefined: no test image of class {', '.join(absent)}"}
    inputs = softmax(scores) if probabilities else scores.astype(np.float64)
    return {"acc": acc, "auc": macro_auc(y, inputs), "missing": None}


def score_test_sets(scores: np.ndarray, splits: Splits, probabilities: bool) -> dict[str, Any]:
    """Both test sets scored from the class ``scores`` of the whole official test split:
    ``test_acc``, ``test_auc``, ``test_images`` and ``test_missing`` on the report's subset (its
    values None and ``test_missing`` saying why where the data has no such subset), the same as
    ``official_*`` on the official split, and ``auc_from`` (what the AUC was computed on)."""
    scores = np.asarray(scores)
    if len(scores) != len(splits.y_test):
        raise ValueError(f"{len(scores)} rows of scores for {len(splits.y_test)} test images")
    official = score_set(splits.y_test, scores, probabilities)
    if splits.report_test_missing:
        report = {"acc": None, "auc": None, "missing": splits.report_test_missing}
    else:
        keep = splits.report_test
        report = score_set(splits.y_test[keep], scores[keep], probabilities)
    return {
        "test_acc": report["acc"], "test_auc": report["auc"],
        "test_images": 0 if splits.report_test_missing else int(len(splits.report_test)),
        "test_missing": report["missing"],
        "official_acc": official["acc"], "official_auc": official["auc"],
        "official_images": int(len(splits.y_test)), "official_missing": official["missing"],
        "auc_from": AUC_FROM_PROBABILITIES if probabilities else AUC_FROM_SCORES,
    }


def scores_line(metrics: dict[str, Any]) -> str:
    """``"test_acc 0.7713 (529 images), official ACC 0.7010 AUC 0.9123 (1000 images)"``, for a
    stage's last line; a missing value reads ``n/a``."""
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"
    return (f"test_acc {fmt(metrics['test_acc'])} ({metrics['test_images']} images), official "
            f"ACC {fmt(metrics['official_acc'])} AUC {fmt(metrics['official_auc'])} "
            f"({metrics['official_images']} images)")
