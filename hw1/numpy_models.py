"""Question 1 from scratch: perceptron, logistic regression and a one-hidden-layer MLP in NumPy.

The three models are small estimators with scikit-learn's surface: keyword-only hyperparameters
in the constructor, which only stores them; ``fit`` checks them against the class's
``_parameter_constraints`` (the same rules that check params.yaml's ``q1``), trains by
per-example SGD for ``epochs`` epochs, keeps the per-epoch history in ``history_`` and returns
the model; then ``class_scores``, ``predict``, ``score`` and ``weights``. Training is the
report's protocol
exactly: every epoch starts with a seeded shuffle, then one update per example in that order;
nothing is batched.

What makes it fast without changing that semantics (see benchmarks/bench_numpy.py):
- no NumPy array is allocated per example: every buffer is made once per epoch and written
  with ``out=``; the shuffle is an index permutation, never a copy of the data;
- the softmax over a handful of classes is done in Python floats, cheaper than a chain of
  tiny NumPy calls (interpreter overhead is most of a linear model's per-example cost);
- logistic regression and the MLP run in float32; the perceptron runs in float64, where its
  arithmetic on pixels / 256 is exact, so no summation order can flip one of its decisions;
- the MLP's first-layer update for one example is rank one, ``delta_j x_j^T``. Within a chunk
  of K examples those updates are kept as factors and applied once, as a matrix product, at the
  end of the chunk; the forward pass of example j stays exact by adding the pending updates'
  effect, ``sum_{i<j} delta_i (x_i . x_j + 1)``, from the chunk's Gram matrix.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from hw1.params import Rule, Rules, check_value, integer, number, validate_run
from hw1.splits import N_CLASSES

EPOCHS = integer(1)
LR = number(0, above=True)
# Rows per block when evaluating a whole split: bounds the temporaries (the MLP's hidden layer,
# the float64 perceptron's converted inputs) to a few MB however large the split is.
_EVAL_BLOCK = 8192

History = list[dict[str, float]]


class NumpyClassifier(ABC):
    """The surface every Question 1 model shares; subclasses supply the weights and the epoch.

    ``bias_feature`` says whether the model expects a constant-1 feature appended to its inputs
    (the linear models, 785 inputs) or keeps biases of its own (the MLP, 784 inputs);
    ``probabilistic`` whether its class scores are logits of class probabilities (softmax), as
    for logistic regression and the MLP, or scores only (the perceptron).
    ``_parameter_constraints`` holds the rule of each hyperparameter params.yaml sets; the
    other constructor params (``n_classes``, ``dtype``, ``chunk_size``) are set by code.
    """

    bias_feature: bool
    probabilistic: bool = True
    dtype: type[np.floating]
    _parameter_constraints: ClassVar[dict[str, Rule]]

    def __init__(self, *, epochs: int, n_classes: int) -> None:
        self.epochs = epochs
        self.n_classes = n_classes

    # ----------------------------------------------------------------------- to implement
    @abstractmethod
    def initialize(self, n_features: int, rng: np.random.Generator) -> None:
        """Set the starting weights for inputs of ``n_features`` features."""

    @abstractmethod
    def train_epoch(self, X: np.ndarray, y: np.ndarray, order: np.ndarray) -> float | None:
        """One update per example, in ``order``; return the mean loss, for models with one."""

    @abstractmethod
    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Class scores (N, n_classes) of the current weights."""

    @abstractmethod
    def weights(self) -> dict[str, np.ndarray]:
        """The learned arrays by name, as saved to the model file."""

    # ---------------------------------------------------------------------------- shared
    def fit(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator, *,
            validation: tuple[np.ndarray, np.ndarray] | None = None,
            on_epoch: Callable[[dict[str, float]], None] | None = None) -> NumpyClassifier:
        """Check the hyperparameters, train from fresh weights and return the model, its
        per-epoch history in ``history_``.

        A hyperparameter that breaks its rule in ``_parameter_constraints`` raises a
        ParamsError (a ValueError) naming it, e.g. ``Perceptron.epochs must be an integer >= 1,
        got 0``, before any weight is set.

        History rows hold ``epoch`` (1-based); ``train_loss`` for logistic regression and the
        MLP: the mean cross-entropy over the epoch's examples, each taken just before its own
        update; then ``train_acc`` and, given ``validation``, ``val_acc`` of the model as it is
        at the end of the epoch. ``rng`` draws the initial weights (if random), then each
        epoch's shuffle.

        A run whose training loss or weights turn non-finite has diverged: it stops after that
        epoch's row, and ``diverged_`` says why (``"training loss is nan"``); None otherwise.
        """
        self._validate_params()
        X, y = self._check(X, y)
        if validation is not None:
            validation = self._check(*validation)
        self.initialize(X.shape[1], rng)
        self.diverged_: str | None = None
        self.history_: History = []
        for epoch in range(1, self.epochs + 1):
            # A diverging epoch overflows on nearly every example; rather than a wall of
            # RuntimeWarnings, the check below flags the run and stops it after this epoch.
            with np.errstate(over="ignore", invalid="ignore"):
                loss = self.train_epoch(X, y, rng.permutation(len(X)))
            row: dict[str, float] = {"epoch": epoch}
            if loss is not None:
                row["train_loss"] = loss
            row["train_acc"] = self.score(X, y)
            if validation is not None:
                row["val_acc"] = self.score(*validation)
            self.history_.append(row)
            if on_epoch is not None:
                on_epoch(row)
            self.diverged_ = self._divergence(loss)
            if self.diverged_ is not None:
                break
        return self

    def _validate_params(self) -> None:
        for name, rule in self._parameter_constraints.items():
            check_value(getattr(self, name), f"{type(self).__name__}.{name}", rule)

    def _divergence(self, loss: float | None) -> str | None:
        """What is non-finite after an epoch with mean training ``loss``, or None."""
        if loss is not None and not math.isfinite(loss):
            return f"training loss is {loss}"
        # A finite loss can hide blown-up weights (ReLUs of -inf pre-activations output 0).
        if not all(np.isfinite(w).all() for w in self.weights().values()):
            return "weights are not finite"
        return None

    def class_scores(self, X: np.ndarray) -> np.ndarray:
        """``decision_function`` of every row of ``X``, computed in blocks."""
        X = np.asarray(X)
        # A diverged model's scores may be inf or nan (fit flags it).
        with np.errstate(over="ignore", invalid="ignore"):
            return np.concatenate([self.decision_function(X[a:a + _EVAL_BLOCK])
                                   for a in range(0, len(X), _EVAL_BLOCK)])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The predicted class of each row of ``X`` (ties go to the lowest class, as argmax)."""
        return self.class_scores(X).argmax(axis=1)

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on ``(X, y)``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def _input(self, X: np.ndarray) -> np.ndarray:
        # No copy when the caller already holds the model's dtype (fit converts once).
        return np.ascontiguousarray(X, dtype=self.dtype)

    def _check(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X, y = self._input(X), np.asarray(y)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"X must be a non-empty 2-D array (examples, features), "
                             f"got shape {X.shape}")
        if y.shape != (len(X),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must be {len(X)} integer labels, got {y.dtype} {y.shape}")
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError(f"labels must be in 0..{self.n_classes - 1}, "
                             f"got {y.min()}..{y.max()}")
        return X, y


class Perceptron(NumpyClassifier):
    """Multi-class perceptron: on a mistake, add x to the true class's row, subtract it from
    the predicted one. Weights start at zero; inputs carry the bias feature."""

    bias_feature = True
    probabilistic = False
    # Pixels are k/256 and every weight a sum of them, so float64 products and sums are exact
    # (under 2^53): the decisions match any other float64 implementation bit for bit.
    dtype = np.float64
    _parameter_constraints: ClassVar[dict[str, Rule]] = {"epochs": EPOCHS}

    def __init__(self, *, epochs: int = 20, n_classes: int = N_CLASSES) -> None:
        super().__init__(epochs=epochs, n_classes=n_classes)

    def initialize(self, n_features: int, rng: np.random.Generator) -> None:
        self.W_ = np.zeros((self.n_classes, n_features), self.dtype)

    def train_epoch(self, X: np.ndarray, y: np.ndarray, order: np.ndarray) -> None:
        X, W = self._input(X), self.W_
        scores = np.empty(self.n_classes, self.dtype)
        labels = y.tolist()
        for i in order.tolist():
            x = X[i]
            np.dot(W, x, out=scores)
            predicted = scores.argmax()
            if predicted != labels[i]:
                W[labels[i]] += x
                W[predicted] -= x
        return None

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self._input(X) @ self.W_.T

    def weights(self) -> dict[str, np.ndarray]:
        return {"W": self.W_}


class LogisticRegression(NumpyClassifier):
    """Multinomial logistic regression by per-example SGD on the cross-entropy:
    ``W -= lr * outer(softmax(W x) - onehot(y), x)``. Weights start at zero; inputs carry the
    bias feature."""

    bias_feature = True
    _parameter_constraints: ClassVar[dict[str, Rule]] = {"epochs": EPOCHS, "lr": LR}

    def __init__(self, *, epochs: int = 20, lr: float = 0.01, n_classes: int = N_CLASSES,
                 dtype: type[np.floating] = np.float32) -> None:
        super().__init__(epochs=epochs, n_classes=n_classes)
        self.lr = lr
        self.dtype = dtype

    def initialize(self, n_features: int, rng: np.random.Generator) -> None:
        self.W_ = np.zeros((self.n_classes, n_features), self.dtype)

    def train_epoch(self, X: np.ndarray, y: np.ndarray, order: np.ndarray) -> float:
        X, W = self._input(X), self.W_
        scores = np.empty(self.n_classes, self.dtype)
        factor = np.empty((self.n_classes, 1), self.dtype)
        update = np.empty_like(W)
        labels = y.tolist()
        neg_lr, loss_sum = -self.lr, 0.0
        for i in order.tolist():
            x = X[i]
            np.dot(W, x, out=scores)
            step, loss = _softmax_step(scores.tolist(), labels[i], neg_lr)
            loss_sum += loss
            factor[:, 0] = step
            np.multiply(factor, x, out=update)
            W += update
        return loss_sum / len(order)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self._input(X) @ self.W_.T

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy of the current weights on ``(X, y)``."""
        return _cross_entropy(self.decision_function(X), np.asarray(y))

    def weights(self) -> dict[str, np.ndarray]:
        return {"W": self.W_}


class MLP(NumpyClassifier):
    """One hidden layer of ReLU units with biases, softmax output, cross-entropy loss, per-example
    SGD with hand-written backpropagation. Weights from N(init_mean, init_std^2), biases zero.

    ``chunk_size`` is how many first-layer updates are held as rank-one factors before being
    applied (see the module docstring); it changes the speed, not the updates.
    """

    bias_feature = False
    _parameter_constraints: ClassVar[dict[str, Rule]] = {
        "epochs": EPOCHS, "lr": LR, "hidden_size": integer(1),
        "init_mean": number(), "init_std": number(0, above=True)}

    def __init__(self, *, epochs: int = 20, lr: float = 0.001, hidden_size: int = 200,
                 init_mean: float = 0.1, init_std: float = 0.1, n_classes: int = N_CLASSES,
                 dtype: type[np.floating] = np.float32, chunk_size: int = 64) -> None:
        super().__init__(epochs=epochs, n_classes=n_classes)
        self.lr, self.hidden_size = lr, hidden_size
        self.init_mean, self.init_std = init_mean, init_std
        self.dtype, self.chunk_size = dtype, chunk_size

    def initialize(self, n_features: int, rng: np.random.Generator) -> None:
        def draw(*shape: int) -> np.ndarray:
            return rng.normal(self.init_mean, self.init_std, shape).astype(self.dtype)

        self.W1_ = draw(self.hidden_size, n_features)
        self.b1_ = np.zeros(self.hidden_size, self.dtype)
        self.W2_ = draw(self.n_classes, self.hidden_size)
        self.b2_ = np.zeros(self.n_classes, self.dtype)

    def train_epoch(self, X: np.ndarray, y: np.ndarray, order: np.ndarray) -> float:
        X = self._input(X)
        W1, b1, W2, b2 = self.W1_, self.b1_, self.W2_, self.b2_
        K, H, dt = self.chunk_size, self.hidden_size, self.dtype
        x_chunk = np.empty((K, X.shape[1]), dt)
        z_chunk = np.empty((K, H), dt)      # hidden pre-activations, first layer as at chunk start
        gram_chunk = np.empty((K, K), dt)
        delta_chunk = np.empty((K, H), dt)  # row j: -lr * dLoss/dz for example j
        pending, h, active = np.empty(H, dt), np.empty(H, dt), np.empty(H, bool)
        out = np.empty(self.n_classes, dt)
        update_W1, update_W2 = np.empty_like(W1), np.empty_like(W2)
        labels = y[order].tolist()
        neg_lr, loss_sum = -self.lr, 0.0

        for start in range(0, len(order), K):
            idx = order[start:start + K]
            k = len(idx)
            xc, z, delta = x_chunk[:k], z_chunk[:k], delta_chunk[:k]
            gram = gram_chunk[:k, :k]
            np.take(X, idx, axis=0, out=xc)
            np.matmul(xc, W1.T, out=z)
            z += b1
            np.matmul(xc, xc.T, out=gram)
            gram += 1                       # b1 is a weight on a constant input of 1

            for j, t in enumerate(labels[start:start + k]):
                zj = z[j]
                if j:  # the chunk's earlier first-layer updates, applied to this example only
                    np.dot(gram[j, :j], delta[:j], out=pending)
                    zj += pending
                np.maximum(zj, 0, out=h)
                np.dot(W2, h, out=out)
                out += b2
                step, loss = _softmax_step(out.tolist(), t, neg_lr)
                loss_sum += loss
                out[:] = step               # out = -lr * dLoss/dlogits
                dj = delta[j]
                np.dot(out, W2, out=dj)     # backpropagate through W2 before updating it
                np.greater(zj, 0, out=active)
                dj *= active
                np.outer(out, h, out=update_W2)
                W2 += update_W2
                b2 += out

            np.matmul(delta.T, xc, out=update_W1)
            W1 += update_W1
            b1 += delta.sum(axis=0)
        return loss_sum / len(order)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        hidden = np.maximum(self._input(X) @ self.W1_.T + self.b1_, 0)
        return hidden @ self.W2_.T + self.b2_

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy of the current weights on ``(X, y)``."""
        return _cross_entropy(self.decision_function(X), np.asarray(y))

    def weights(self) -> dict[str, np.ndarray]:
        return {"W1": self.W1_, "b1": self.b1_, "W2": self.W2_, "b2": self.b2_}


def _softmax_step(scores: list[float], target: int, scale: float) -> tuple[list[float], float]:
    """``scale * (softmax(scores) - onehot(target))`` and the cross-entropy, for one example.

    In Python floats: for a handful of classes they beat a chain of tiny NumPy calls by several
    microseconds an example, which is most of the per-example cost of logistic regression.
    """
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]   # shifted by the max, so exp cannot overflow
    total = sum(exps)
    k = scale / total
    step = [e * k for e in exps]
    step[target] -= scale
    return step, math.log(total) - (scores[target] - top)


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    return float(np.mean(log_norm - shifted[np.arange(len(y)), y]))


MODELS: dict[str, type[NumpyClassifier]] = {
    "perceptron": Perceptron,
    "logistic_regression": LogisticRegression,
    "mlp": MLP,
}


RULES: dict[str, Rules] = {name: cls._parameter_constraints for name, cls in MODELS.items()}


def validate(cfg: Any, key: str) -> dict[str, Any]:
    """Check a ``q1.<run>`` section against its model's ``_parameter_constraints``."""
    return validate_run(cfg, key, RULES, "NumPy")


def from_params(cfg: Mapping[str, Any]) -> NumpyClassifier:
    """The model a validated ``q1.<run>`` section describes (see ``validate``)."""
    return MODELS[cfg["model"]](**{k: v for k, v in cfg.items() if k != "model"})
