"""Speed of Question 1's per-example SGD: hw1.numpy_models against the plain textbook loop.

Times one epoch of each model on full-size synthetic OctMNIST (97,477 training images), the
project's implementation and the plain loop (float64, np.outer, a fresh one-hot per example,
shuffling by fancy indexing) in the same run, from the same weights and the same shuffle, and
checks that both end with the same weights:

- perceptron: bit for bit (its float64 arithmetic on pixels / 256 is exact);
- logistic regression: to float32 tolerance after the whole epoch;
- MLP: per-example SGD on this network at lr 0.001 is chaotic (a 1e-12 nudge to the plain
  loop's initial weights grows to differences of 1e-2 within an epoch, and float32 against
  float64 ends an epoch 0.1 apart even from a small init), so no two summation orders agree
  after a full epoch. The check is therefore the fast code in float64 against the plain loop
  on the epoch's first 200 examples (several chunks of lazy updates), to 1e-9; the full float32
  epoch's difference is printed next to the plain loop's own sensitivity to a 1e-12 nudge.

Run from the repository root: ``python benchmarks/bench_numpy.py`` (about three minutes).
Timings on a shared machine are noisy: each figure is the best of ``--repeats`` alternating
runs, and the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# As in stages/train_numpy.py: tiny BLAS calls run best on one thread (plain and fast alike).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw1.data import features, synthetic_octmnist  # noqa: E402
from hw1.numpy_models import MLP, LogisticRegression, NumpyClassifier, Perceptron  # noqa: E402

TARGETS = {"perceptron": 1.5, "logistic_regression": 1.5, "mlp": 6.0}
MLP_PREFIX = 200

Weights = dict[str, np.ndarray]


# ------------------------------------------------------------------- the plain textbook loops

def plain_perceptron(w: Weights, X: np.ndarray, y: np.ndarray, order: np.ndarray) -> None:
    W = w["W"]
    for x, t in zip(X[order], y[order]):
        p = np.argmax(W @ x)
        if p != t:
            W[t] += x
            W[p] -= x


def plain_logistic_regression(w: Weights, X: np.ndarray, y: np.ndarray, order: np.ndarray,
                              lr: float) -> None:
    W = w["W"]
    for x, t in zip(X[order], y[order]):
        z = W @ x
        p = np.exp(z - z.max())
        p /= p.sum()
        onehot = np.zeros(len(p))
        onehot[t] = 1
        W -= lr * np.outer(p - onehot, x)


def plain_mlp(w: Weights, X: np.ndarray, y: np.ndarray, order: np.ndarray, lr: float) -> None:
    W1, b1, W2, b2 = w["W1"], w["b1"], w["W2"], w["b2"]
    for x, t in zip(X[order], y[order]):
        z1 = W1 @ x + b1
        h = np.maximum(z1, 0)
        z2 = W2 @ h + b2
        p = np.exp(z2 - z2.max())
        p /= p.sum()
        onehot = np.zeros(len(p))
        onehot[t] = 1
        g2 = p - onehot
        g1 = (W2.T @ g2) * (z1 > 0)
        W2 -= lr * np.outer(g2, h)
        b2 -= lr * g2
        W1 -= lr * np.outer(g1, x)
        b1 -= lr * g1


# ------------------------------------------------------------------------------ measuring

def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def start_weights(model: NumpyClassifier, n_features: int, seed: int) -> Weights:
    """Initialize ``model`` and return its starting weights in float64 for the plain loop."""
    model.initialize(n_features, np.random.default_rng(seed))
    return {k: v.astype(np.float64) for k, v in model.weights().items()}


def max_difference(a: Weights, b: Weights) -> float:
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} CPUs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="size of the synthetic training set relative to OctMNIST's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="time each epoch this many times, alternating, and keep the best")
    args = parser.parse_args()

    raw = synthetic_octmnist(args.seed, args.scale)
    X = features(raw["train_images"])
    y = raw["train_labels"].reshape(-1).astype(np.int64)
    X_bias = np.hstack([X, np.ones((len(X), 1), np.float32)])
    order = np.random.default_rng(args.seed).permutation(len(X))
    print(f"one epoch of per-example SGD over {len(X):,} synthetic images; {load_line()}")
    print(f"{'model':<20} {'plain s':>8} {'fast s':>8} {'speed-up':>9} {'target':>7}  weights")

    ok = True
    runs = [
        ("perceptron", Perceptron(), X_bias, plain_perceptron),
        ("logistic_regression", LogisticRegression(lr=0.01), X_bias,
         lambda w, X, y, o: plain_logistic_regression(w, X, y, o, 0.01)),
        ("mlp", MLP(lr=0.001), X, lambda w, X, y, o: plain_mlp(w, X, y, o, 0.001)),
    ]
    for name, model, inputs, plain in runs:
        X64, X_model = inputs.astype(np.float64), np.ascontiguousarray(inputs, model.dtype)
        plain_s = fast_s = float("inf")
        for _ in range(args.repeats):
            plain_w = start_weights(model, inputs.shape[1], args.seed)
            plain_s = min(plain_s, timed(lambda: plain(plain_w, X64, y, order)))
            fast_s = min(fast_s, timed(lambda: model.train_epoch(X_model, y, order)))
        diff = max_difference(model.weights(), plain_w)
        if name == "perceptron":
            same = diff == 0.0
            verdict = f"identical (max |diff| {diff:g})"
        elif name == "logistic_regression":
            scale = max(float(np.abs(w).max()) for w in plain_w.values())
            same = diff <= 1e-4 * scale
            verdict = f"max |diff| {diff:.1e} of weights up to {scale:.2f}"
        else:
            same, verdict = mlp_check(X64, y, order, plain_w, diff, args.seed)
        ratio = plain_s / fast_s
        meets = "ok" if ratio >= TARGETS[name] else "BELOW"
        print(f"{name:<20} {plain_s:8.2f} {fast_s:8.2f} {ratio:8.1f}x {TARGETS[name]:5.1f}x "
              f"{meets:>5}  {'match' if same else 'MISMATCH'}: {verdict}")
        ok &= same
    print(load_line())
    return 0 if ok else 1


def mlp_check(X64: np.ndarray, y: np.ndarray, order: np.ndarray, plain_w: Weights,
              full_epoch_diff: float, seed: int) -> tuple[bool, str]:
    """The float64 prefix check, and the chaos yardstick for the full epoch (see docstring)."""
    prefix = order[:MLP_PREFIX]
    exact = MLP(lr=0.001, dtype=np.float64)
    reference = start_weights(exact, X64.shape[1], seed)
    exact.train_epoch(X64, y, prefix)
    plain_mlp(reference, X64, y, prefix, 0.001)
    prefix_diff = max_difference(exact.weights(), reference)

    nudged = start_weights(MLP(lr=0.001), X64.shape[1], seed)
    nudged["W1"] += 1e-12 * np.random.default_rng(seed + 1).standard_normal(nudged["W1"].shape)
    plain_mlp(nudged, X64, y, order, 0.001)
    chaos = max_difference(nudged, plain_w)
    return prefix_diff <= 1e-9, (f"float64, first {MLP_PREFIX} examples: max |diff| "
                                 f"{prefix_diff:.1e}; full float32 epoch {full_epoch_diff:.1e}, "
                                 f"plain loop vs itself nudged by 1e-12: {chaos:.1e}")


if __name__ == "__main__":
    sys.exit(main())
