"""Question 1 models: gradients, perceptron properties, what each model can learn, determinism,
the fast MLP against a plain per-example loop, and the `train_numpy` stage end to end."""
from __future__ import annotations

import csv
import inspect
import json
import math
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_module

from hw1.numpy_models import MLP, MODELS, RULES, LogisticRegression, Perceptron, from_params
from hw1.params import ParamsError
from hw1.scoring import softmax
from hw1.splits import Splits, load_prepared, save_prepared

REPO = Path(__file__).resolve().parents[1]


def one_step_gradient(model, x: np.ndarray, t: int) -> dict[str, np.ndarray]:
    """The gradient implied by one SGD step on (x, t): (before - after) / lr."""
    before = {k: v.copy() for k, v in model.weights().items()}
    model.train_epoch(x[None, :], np.array([t]), np.array([0]))
    return {k: (before[k] - v) / model.lr for k, v in model.weights().items()}


def finite_difference(model, x: np.ndarray, t: int, eps: float = 1e-6) -> dict[str, np.ndarray]:
    grads = {}
    for name, w in model.weights().items():
        grad = np.zeros_like(w)
        for i in np.ndindex(w.shape):
            saved = w[i]
            w[i] = saved + eps
            up = model.loss(x[None, :], np.array([t]))
            w[i] = saved - eps
            down = model.loss(x[None, :], np.array([t]))
            w[i] = saved
            grad[i] = (up - down) / (2 * eps)
        grads[name] = grad
    return grads


def test_logistic_regression_gradient_equals_finite_difference():
    rng = np.random.default_rng(0)
    model = LogisticRegression(lr=1e-3, n_classes=3, dtype=np.float64)
    model.initialize(6, rng)
    model.W_[:] = rng.normal(size=model.W_.shape)
    x, t = rng.normal(size=6), 2
    expected = finite_difference(model, x, t)
    got = one_step_gradient(model, x, t)
    np.testing.assert_allclose(got["W"], expected["W"], rtol=1e-6, atol=1e-8)


def test_mlp_gradient_equals_finite_difference_and_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    model = MLP(lr=1e-3, hidden_size=7, init_mean=0.0, init_std=1.0, n_classes=3,
                dtype=np.float64)
    model.initialize(5, rng)
    model.b1_[:] = rng.normal(size=7)
    model.b2_[:] = rng.normal(size=3)
    x, t = rng.normal(size=5), 1
    z = model.W1_ @ x + model.b1_
    assert (z > 0).any() and (z < 0).any(), "the check needs active and inactive hidden units"

    params = {k: torch.tensor(v, requires_grad=True) for k, v in model.weights().items()}
    hidden = torch.relu(params["W1"] @ torch.tensor(x) + params["b1"])
    logits = params["W2"] @ hidden + params["b2"]
    torch.nn.functional.cross_entropy(logits[None], torch.tensor([t])).backward()
    expected = finite_difference(model, x, t)

    got = one_step_gradient(model, x, t)
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(got[name], params[name].grad.numpy(), rtol=1e-10,
                                   atol=1e-12)


def test_softmax_stays_finite_for_huge_scores():
    x = np.array([[100.0, 100.0, 1.0]], dtype=np.float32)
    logreg = LogisticRegression(lr=0.5, n_classes=3)
    logreg.initialize(3, np.random.default_rng(0))
    logreg.W_[0] = 10.0                       # score 2010 for class 0, 0 for the others
    logreg.train_epoch(x, np.array([1]), np.array([0]))
    np.testing.assert_allclose(logreg.W_, [[-40, -40, 9.5], [50, 50, 0.5], [0, 0, 0]])

    mlp = MLP(lr=1e-6, hidden_size=4, init_mean=10.0, init_std=1.0, n_classes=3)
    mlp.initialize(3, np.random.default_rng(0))
    loss = mlp.train_epoch(x, np.array([1]), np.array([0]))
    assert np.isfinite(loss) and loss > 100
    assert all(np.isfinite(w).all() for w in mlp.weights().values())


def separable_set(rng: np.random.Generator, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Three classes split by a margin along random directions, with a bias feature."""
    centres = rng.normal(size=(3, 4)) * 4
    y = rng.integers(0, 3, size=n)
    x = centres[y] + rng.uniform(-0.5, 0.5, size=(n, 4))
    return np.hstack([x, np.ones((n, 1))]), y


def test_perceptron_reaches_full_training_accuracy_on_separable_set():
    rng = np.random.default_rng(2)
    x, y = separable_set(rng)
    history = Perceptron(epochs=30, n_classes=3).fit(x, y, rng).history_
    assert history[-1]["train_acc"] == 1.0
    assert set(history[-1]) == {"epoch", "train_acc"}


def test_logistic_regression_learns_a_linear_task_and_its_loss_falls():
    x, y = small_task(np.random.default_rng(9), n=300, d=6)
    model = LogisticRegression(epochs=10, lr=0.5)
    history = model.fit(x, y, np.random.default_rng(0)).history_
    assert history[-1]["train_acc"] >= 0.9
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert model.loss(x, y) < np.log(4) / 2


def test_perceptron_changes_no_weight_on_correct_example_and_corrects_a_mistake():
    model = Perceptron(n_classes=3)
    model.initialize(3, np.random.default_rng(0))
    model.W_[:] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    x = np.array([[2.0, 0.5, 0.25]])

    before = model.W_.copy()
    model.train_epoch(x, np.array([0]), np.array([0]))
    np.testing.assert_array_equal(model.W_, before)

    model.train_epoch(x, np.array([2]), np.array([0]))  # predicted 0, true 2
    np.testing.assert_array_equal(model.W_, before + [[-2.0, -0.5, -0.25], [0, 0, 0],
                                                      [2.0, 0.5, 0.25]])


def xor_set(rng: np.random.Generator, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Question 3.1's 2-D XOR: the class is whether the two signs differ."""
    signs = rng.choice([-1.0, 1.0], size=(n, 2))
    x = signs + rng.normal(scale=0.15, size=(n, 2))
    return x, (signs[:, 0] != signs[:, 1]).astype(np.int64)


def test_mlp_learns_xor_that_perceptron_cannot():
    rng = np.random.default_rng(3)
    x, y = xor_set(rng)
    x_bias = np.hstack([x, np.ones((len(x), 1))])
    perceptron = Perceptron(epochs=50, n_classes=2)
    perceptron.fit(x_bias, y, rng)
    mlp = MLP(epochs=50, lr=0.05, hidden_size=16, init_mean=0.0, init_std=0.5, n_classes=2)
    history = mlp.fit(x, y, rng).history_
    assert perceptron.score(x_bias, y) <= 0.8
    assert mlp.score(x, y) == 1.0
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 4


def small_task(rng: np.random.Generator, n: int = 150, d: int = 12):
    x = rng.uniform(0, 1, size=(n, d)).astype(np.float32)
    y = (x[:, :4].argmax(axis=1)).astype(np.int64)
    return x, y


@pytest.mark.parametrize("make, columns", [
    (lambda: Perceptron(epochs=3), []),
    (lambda: LogisticRegression(epochs=3, lr=0.05), ["train_loss"]),
    (lambda: MLP(epochs=3, lr=0.01, hidden_size=8, chunk_size=16), ["train_loss"]),
], ids=["perceptron", "logistic_regression", "mlp"])
def test_same_seed_gives_identical_run_and_another_seed_changes_it(make, columns):
    x, y = small_task(np.random.default_rng(4))
    val = small_task(np.random.default_rng(5), n=50)

    def run(seed):
        model = make()
        history = model.fit(x, y, np.random.default_rng(seed), validation=val).history_
        return history, model.weights()

    first, second, other = run(7), run(7), run(8)
    assert [list(row) for row in first[0]] == [["epoch", *columns, "train_acc", "val_acc"]] * 3
    assert first[0] == second[0]
    for name, w in first[1].items():
        np.testing.assert_array_equal(w, second[1][name])
    assert any(not np.array_equal(w, other[1][name]) for name, w in first[1].items())


def test_logistic_regression_whose_loss_turns_nan_stops_quietly_and_is_flagged():
    x, y = small_task(np.random.default_rng(4))
    model = LogisticRegression(epochs=3, lr=1e300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no wall of overflow RuntimeWarnings
        history = model.fit(x, y, np.random.default_rng(0), validation=(x, y)).history_
        model.score(x, y)                # scoring the model as it stopped is quiet too
    assert model.diverged_ == "training loss is nan"
    assert [row["epoch"] for row in history] == [1] and math.isnan(history[0]["train_loss"])


def test_mlp_whose_weights_turn_non_finite_stops_at_that_epoch():
    class BlowsUpInEpoch2(MLP):
        """An MLP whose hidden biases become -inf at the end of epoch 2: every ReLU then
        outputs 0, so its loss stays finite (the constant predictor) while its weights do not."""
        def train_epoch(self, X, y, order):
            loss = super().train_epoch(X, y, order)
            self.epochs_done = getattr(self, "epochs_done", 0) + 1
            if self.epochs_done == 2:
                self.b1_[:] = -np.inf
            return loss

    x, y = small_task(np.random.default_rng(4))
    model = BlowsUpInEpoch2(epochs=5, lr=0.01, hidden_size=8)
    history = model.fit(x, y, np.random.default_rng(0)).history_
    assert model.diverged_ == "weights are not finite"
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(math.isfinite(row["train_loss"]) for row in history)
    assert len(set(model.predict(x).tolist())) == 1


def test_runs_that_do_not_diverge_say_so():
    x, y = small_task(np.random.default_rng(4))
    for model in (Perceptron(epochs=2), LogisticRegression(epochs=2), MLP(epochs=2)):
        assert len(model.fit(x, y, np.random.default_rng(0)).history_) == 2
        assert model.diverged_ is None


def test_different_seeds_shuffle_differently_and_each_epoch_afresh():
    orders = []

    class Recording(Perceptron):
        def train_epoch(self, X, y, order):
            orders.append(order.copy())
            return super().train_epoch(X, y, order)

    x, y = small_task(np.random.default_rng(4))
    Recording(epochs=2).fit(x, y, np.random.default_rng(1))
    Recording(epochs=1).fit(x, y, np.random.default_rng(2))
    assert sorted(orders[0]) == list(range(len(x)))
    assert not np.array_equal(orders[0], orders[1])   # a new shuffle every epoch
    assert not np.array_equal(orders[0], orders[2])   # another seed, another shuffle


def plain_mlp_epoch(w: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray,
                    order: np.ndarray, lr: float) -> float:
    """The textbook per-example loop, the reference the fast MLP must equal."""
    W1, b1, W2, b2 = w["W1"], w["b1"], w["W2"], w["b2"]
    losses = []
    for i in order:
        z1 = W1 @ x[i] + b1
        h = np.maximum(z1, 0)
        z2 = W2 @ h + b2
        p = np.exp(z2 - z2.max())
        p /= p.sum()
        losses.append(-np.log(p[y[i]]))
        g2 = p - np.eye(len(b2))[y[i]]
        g1 = (W2.T @ g2) * (z1 > 0)
        W2 -= lr * np.outer(g2, h)
        b2 -= lr * g2
        W1 -= lr * np.outer(g1, x[i])
        b1 -= lr * g1
    return float(np.mean(losses))


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_fast_mlp_equals_plain_per_example_loop(chunk_size):
    rng = np.random.default_rng(6)
    x, y = small_task(rng, n=120, d=20)
    x = x.astype(np.float64)
    model = MLP(lr=0.05, hidden_size=10, init_mean=0.0, init_std=0.3, dtype=np.float64,
                chunk_size=chunk_size)
    model.initialize(20, rng)
    reference = {k: v.copy() for k, v in model.weights().items()}
    for _ in range(2):
        order = rng.permutation(len(x))
        loss = model.train_epoch(x, y, order)
        assert loss == pytest.approx(plain_mlp_epoch(reference, x, y, order, 0.05), rel=1e-12)
    for name, w in model.weights().items():
        np.testing.assert_allclose(w, reference[name], rtol=1e-10, atol=1e-12)


def test_from_params_builds_the_configured_model():
    model = from_params({"model": "mlp", "epochs": 3, "lr": 0.002, "hidden_size": 5,
                         "init_mean": 0.1, "init_std": 0.2})
    assert isinstance(model, MLP) and not model.bias_feature
    assert (model.epochs, model.lr, model.hidden_size, model.init_std) == (3, 0.002, 5, 0.2)
    assert from_params({"model": "perceptron", "epochs": 1}).bias_feature


def test_fit_rejects_labels_out_of_range():
    with pytest.raises(ValueError, match="labels must be in 0..3"):
        Perceptron().fit(np.zeros((2, 3)), np.array([0, 4]), np.random.default_rng(0))



# ------------------------------------------------------------- scikit-learn's estimator contract

MODEL_CLASSES = [Perceptron, LogisticRegression, MLP]


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_constructor_takes_keyword_arguments_only_and_only_stores_them(cls):
    with pytest.raises(TypeError):
        cls(3)
    model = cls(epochs=0)            # invalid, but the constructor does not check
    assert model.epochs == 0 and not hasattr(model, "history_")


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_fit_returns_the_model_with_its_history(cls):
    x, y = small_task(np.random.default_rng(4))
    if cls.bias_feature:
        x = np.hstack([x, np.ones((len(x), 1), x.dtype)])
    model = cls(epochs=2)
    assert model.fit(x, y, np.random.default_rng(0), validation=(x, y)) is model
    assert [row["epoch"] for row in model.history_] == [1, 2]
    assert model.history_[-1]["train_acc"] == model.score(x, y)
    assert model.history_[-1]["val_acc"] == model.score(x, y)


@pytest.mark.parametrize("make, message", [
    (lambda: Perceptron(epochs=0), "Perceptron.epochs must be an integer >= 1, got 0"),
    (lambda: LogisticRegression(lr=-0.1), "LogisticRegression.lr must be a finite number > 0, "
                                          "got -0.1"),
    (lambda: MLP(hidden_size=2.5), "MLP.hidden_size must be an integer >= 1, got 2.5"),
    (lambda: MLP(init_std=0), "MLP.init_std must be a finite number > 0, got 0"),
], ids=["perceptron_epochs", "logreg_lr", "mlp_hidden_size", "mlp_init_std"])
def test_fit_rejects_a_hyperparameter_outside_its_constraints_naming_it(make, message):
    x, y = small_task(np.random.default_rng(4))
    model = make()
    with pytest.raises(ParamsError) as err:
        model.fit(x, y, np.random.default_rng(0))
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)
    assert not any(hasattr(model, a) for a in ("history_", "W_", "W1_"))  # checked first


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_the_constraints_fit_checks_are_the_ones_params_yaml_is_checked_against(cls):
    name = next(n for n, c in MODELS.items() if c is cls)
    assert RULES[name] is cls._parameter_constraints
    assert set(cls._parameter_constraints) <= set(inspect.signature(cls).parameters)


# --------------------------------------------------------------------------- the stage

SMALL_Q1 = {
    "perceptron": {"model": "perceptron", "epochs": 2},
    "mlp": {"model": "mlp", "epochs": 2, "lr": 0.001, "hidden_size": 16, "init_mean": 0.1,
            "init_std": 0.1},
}


@pytest.fixture
def stage_dir(tmp_path: Path) -> Path:
    """A working directory with params.yaml and a tiny prepared file."""
    rng = np.random.default_rng(0)

    def split(n):
        return rng.integers(0, 256, size=(n, 784)).astype(np.float32) / 256, \
            rng.integers(0, 4, size=n)

    (xtr, ytr), (xva, yva), (xte, yte) = split(120), split(40), split(30)
    save_prepared(tmp_path / "data/prepared/octmnist.npz",
                  Splits(xtr, ytr, xva, yva, xte, yte, dataset="synthetic (not OctMNIST)",
                         md5="0" * 32, report_test=np.arange(10, 30)))
    write_params(tmp_path, SMALL_Q1)
    return tmp_path


def write_params(where: Path, q1: dict) -> None:
    (where / "params.yaml").write_text(yaml.safe_dump({"seed": 42, "q1": q1}))


def run_stage(where: Path, key: str, seed: str = "42") -> subprocess.CompletedProcess:
    return run_module("stages.train_numpy", key, seed, cwd=where)


def test_stage_trains_and_writes_weights_plot_data_and_metrics(stage_dir):
    for key, shapes in (("mlp", {"W1": (16, 784), "b1": (16,), "W2": (4, 16), "b2": (4,)}),
                        ("perceptron", {"W": (4, 785)})):
        proc = run_stage(stage_dir, f"q1.{key}")
        assert proc.returncode == 0, proc.stderr
        assert f"q1.{key} seed 42 epoch 2/2" in proc.stderr
        with np.load(stage_dir / f"models/q1/{key}/42.npz", allow_pickle=False) as npz:
            assert {k: npz[k].shape for k in npz.files} == shapes
        metrics = json.loads((stage_dir / f"metrics/seeds/q1/{key}/42.json").read_text())
        assert metrics["epochs"] == 2
        assert metrics["data_source"] == "synthetic (not OctMNIST)"
        assert_both_test_sets_scored(stage_dir, key, metrics)
        with open(stage_dir / f"plots/seeds/q1/{key}/42.csv") as fh:
            rows = list(csv.DictReader(fh))
        loss = ["train_loss"] if key == "mlp" else []
        assert list(rows[0]) == ["epoch", *loss, "train_acc", "val_acc"]
        assert [r["epoch"] for r in rows] == ["1", "2"]
        assert float(rows[-1]["val_acc"]) == metrics["val_acc"]
        assert metrics["diverged"] is False and metrics["diverged_epoch"] is None
        assert metrics["last_finite_losses"] == {r["epoch"]: float(r["train_loss"])
                                                 for r in rows if loss}

    assert run_stage(stage_dir, "q1.perceptron").returncode == 0
    again = json.loads((stage_dir / "metrics/seeds/q1/perceptron/42.json").read_text())
    assert {**again, "train_seconds": 0} == {**metrics, "train_seconds": 0}


def assert_both_test_sets_scored(stage_dir: Path, key: str, metrics: dict) -> None:
    """The saved model's class scores on the prepared test split give the metrics' ACC and AUC
    on both test sets: all 30 images, and the report's subset (images 10..29)."""
    from medmnist.evaluator import getAUC

    model = from_params(SMALL_Q1[key])
    splits = load_prepared(stage_dir / "data/prepared/octmnist.npz", bias=model.bias_feature)
    with np.load(stage_dir / f"models/q1/{key}/42.npz", allow_pickle=False) as npz:
        for name in npz.files:
            setattr(model, f"{name}_", npz[name])
    scores = model.class_scores(splits.x_test)
    probs = softmax(scores) if key != "perceptron" else scores
    y = splits.y_test
    for prefix, rows, n in (("official", slice(None), 30), ("test", slice(10, 30), 20)):
        assert metrics[f"{prefix}_images"] == n and metrics[f"{prefix}_missing"] is None
        assert metrics[f"{prefix}_acc"] == round(float(np.mean(
            scores[rows].argmax(1) == y[rows])), 6)
        assert metrics[f"{prefix}_auc"] == round(getAUC(y[rows], probs[rows], "multi-class"), 6)
    assert metrics["auc_from"] == ("class scores (the perceptron has no probabilities)"
                                   if key == "perceptron" else "softmax probabilities")


def test_stage_flags_a_diverged_run_with_one_line_and_exits_0(stage_dir):
    write_params(stage_dir, {"logreg": {"model": "logistic_regression", "epochs": 3,
                                        "lr": 1e300}})
    proc = run_stage(stage_dir, "q1.logreg")
    assert proc.returncode == 0, proc.stderr
    assert "q1.logreg seed 42: training loss is nan at epoch 1: stopped (diverged)\n" in proc.stderr
    assert "Warning" not in proc.stderr
    text = (stage_dir / "metrics/seeds/q1/logreg/42.json").read_text()
    assert "NaN" not in text and "Infinity" not in text   # strict JSON
    metrics = json.loads(text)
    assert {k: metrics[k] for k in ("diverged", "diverged_epoch", "diverged_reason", "epochs",
                                    "last_finite_losses")} == {
        "diverged": True, "diverged_epoch": 1, "diverged_reason": "training loss is nan",
        "epochs": 1, "last_finite_losses": {}}
    with open(stage_dir / "plots/seeds/q1/logreg/42.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["epoch"], r["train_loss"]) for r in rows] == [("1", "")]   # nan: empty cell
    assert 0 <= metrics["test_acc"] <= 1 and 0 <= metrics["official_acc"] <= 1
    # the diverged weights' scores are not finite: no AUC, and the reason beside it
    assert metrics["official_auc"] is None and metrics["test_auc"] is None
    assert metrics["official_missing"] == metrics["test_missing"] == \
        "AUC undefined: the model's class scores are not finite"


@pytest.mark.parametrize("key, q1, message", [
    ("q1.mlp", {"mlp": {**SMALL_Q1["mlp"], "lr": -1}},
     "q1.mlp.lr must be a finite number > 0, got -1"),
    ("q1.mlp", {"mlp": {**SMALL_Q1["mlp"], "dropout": 0.1}}, "q1.mlp has unknown key(s) dropout"),
    ("q1.nope", SMALL_Q1, "params key 'q1.nope' not found"),
])
def test_stage_rejects_bad_params_before_loading_data(tmp_path, key, q1, message):
    write_params(tmp_path, q1)   # no prepared data: params must fail first
    proc = run_stage(tmp_path, key)
    assert proc.returncode != 0
    assert proc.stderr.startswith("train_numpy failed: ")
    assert message in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_stage_without_prepared_data_says_how_to_make_it(tmp_path):
    write_params(tmp_path, SMALL_Q1)
    proc = run_stage(tmp_path, "q1.perceptron")
    assert proc.returncode != 0
    assert "train_numpy failed:" in proc.stderr and "dvc repro prepare" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.e2e
def test_dvc_repro_runs_a_q1_stage_then_finds_it_up_to_date(dvc_repo):
    stage = "q1@logreg_lr1e-3-42"
    first = dvc_repo.run("repro", stage)
    assert f"Running stage '{stage}'" in first.stdout
    metrics = json.loads((dvc_repo.path / "metrics/seeds/q1/logreg_lr1e-3/42.json").read_text())
    assert metrics["epochs"] == 2 and metrics["data_source"] == "synthetic (not OctMNIST)"
    with np.load(dvc_repo.path / "models/q1/logreg_lr1e-3/42.npz", allow_pickle=False) as npz:
        assert npz["W"].shape == (4, 785)

    second = dvc_repo.run("repro", stage)
    assert "Running stage" not in second.stdout
