"""Question 2's PyTorch models, training loop and stage entry point, on tiny data."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import run_module
from torch import nn

from hw1.params import ParamsError
from hw1.splits import DataError, Splits, save_prepared
from hw1.torch_models import FeedforwardNetwork, LogisticRegression, build_model, parameter_count
from hw1.torch_training import (
    EpochBatches,
    available_cores,
    child_seeds,
    cpu_threads,
    evaluate,
    fit,
    make_optimizer,
    seeded_global_rng,
    threads_for,
)
from stages import train_torch

REPO = Path(__file__).resolve().parents[1]

FFN = {"model": "feedforward", "epochs": 3, "lr": 0.1, "batch_size": 8, "hidden_size": 16,
       "layers": 2, "dropout": 0.0, "activation": "relu", "l2_decay": 0.0,
       "optimizer": "sgd", "device": "cpu"}
LOGREG = {"model": "logistic_regression", "epochs": 3, "lr": 0.1, "batch_size": 8,
          "l2_decay": 0.0, "optimizer": "sgd", "device": "cpu"}
# Full-batch steps at lr 1e5: the loss goes from 1.4 to about 1e12, then nan at epoch 3.
DIVERGING = {**FFN, "epochs": 5, "lr": 1e5, "batch_size": 96, "hidden_size": 64}


def tiny_splits(n_train: int = 96, seed: int = 0) -> Splits:
    """A small learnable 4-class problem: the class is the brightest of four pixel blocks."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 4, size=n)
        x = rng.uniform(0, 0.5, size=(n, 784)).astype(np.float32)
        for c in range(4):
            x[y == c, c * 196:(c + 1) * 196] += 0.5
        return x, y.astype(np.int64)

    return Splits(*split(n_train), *split(40), *split(40), dataset="tiny (test)", md5="0" * 32,
                  report_test=np.arange(0, 40, 2))


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def train(cfg: dict, seed: int = 1, splits: Splits | None = None):
    model = build_model(cfg, seed)
    result = fit(model, splits or tiny_splits(), cfg, seed)
    return model, result


# ------------------------------------------------------------------------------------ models

def test_logistic_regression_maps_784_features_to_4_logits():
    model = LogisticRegression()
    assert parameter_count(model) == 784 * 4 + 4
    assert model(torch.zeros(5, 784)).shape == (5, 4)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_feedforward_shapes_and_parameter_count(layers):
    hidden = 200
    model = FeedforwardNetwork(hidden_size=hidden, layers=layers, activation="tanh")
    expected = (784 * hidden + hidden) + (layers - 1) * (hidden * hidden + hidden) + hidden * 4 + 4
    assert parameter_count(model) == expected
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == \
        [(784, hidden)] + [(hidden, hidden)] * (layers - 1) + [(hidden, 4)]
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == layers
    assert model(torch.zeros(3, 784)).shape == (3, 4)


def test_table3_network_has_the_reports_size():
    model = build_model({**FFN, "hidden_size": 200, "layers": 2}, seed=0)
    assert parameter_count(model) == 784 * 200 + 200 + 200 * 200 + 200 + 200 * 4 + 4 == 198_004


def test_dropout_follows_each_hidden_activation_and_is_inactive_in_eval():
    with_dropout = build_model({**FFN, "dropout": 0.5}, seed=3)
    without = build_model(FFN, seed=3)
    names = [name for name, _ in with_dropout.layers.named_children()]
    assert names == ["hidden1", "relu1", "dropout1", "hidden2", "relu2", "dropout2", "output"]
    # same seed and parameter names: dropout adds no parameters, so the weights coincide
    assert same_weights(weights(with_dropout), weights(without))
    x = torch.rand(32, 784)
    with_dropout.eval()
    assert torch.equal(with_dropout(x), without(x))
    with_dropout.train()
    assert not torch.equal(with_dropout(x), without(x))


def test_build_model_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = build_model(FFN, 7), build_model(FFN, 7), build_model(FFN, 8)
    assert torch.equal(torch.get_rng_state(), state)
    assert same_weights(weights(a), weights(b))
    assert not same_weights(weights(a), weights(c))


# -------------------------------------------------------------------------------- training

def test_epoch_batches_cover_the_set_once_in_a_seeded_order():
    x = torch.arange(20, dtype=torch.float32).reshape(20, 1)
    y = torch.arange(20)
    batches = EpochBatches(x, y, batch_size=8, seed=5)
    first = list(batches)
    assert len(batches) == 3 and [len(yb) for _, yb in first] == [8, 8, 4]
    order = torch.cat([yb for _, yb in first])
    assert sorted(order.tolist()) == list(range(20))
    assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in first)   # pairs stay together
    again = torch.cat([yb for _, yb in EpochBatches(x, y, 8, seed=5)])
    assert torch.equal(order, again)
    second_epoch = torch.cat([yb for _, yb in batches])
    assert not torch.equal(order, second_epoch)


def test_loss_decreases_on_a_learnable_set():
    for cfg in (LOGREG, FFN):
        _, result = train({**cfg, "epochs": 5})
        losses = [row["train_loss"] for row in result.history]
        assert losses[-1] < losses[0] * 0.8, (cfg["model"], losses)
        assert result.history[-1]["val_acc"] > 0.5


def test_history_has_one_row_per_epoch_with_the_plot_columns():
    _, result = train(FFN)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert list(result.history[0]) == ["epoch", "train_loss", "val_loss", "train_acc",
                                       "val_acc"]
    assert all(0 <= row["val_acc"] <= 1 and row["val_loss"] > 0 for row in result.history)
    assert result.test_scores.shape == (40, 4) and result.test_scores.dtype == np.float32
    assert result.train_seconds > 0 and result.device == "cpu"


def replay_train_acc(cfg: dict, seed: int,
                     splits: Splits) -> tuple[list[float], list[float]]:
    """Each epoch's training accuracy computed by hand: fit's model init, permutations and
    dropout RNG, every batch's right predictions counted before its step. Also returns what the
    loop recorded before: the accuracy of the end-of-epoch model in eval mode."""
    model = build_model(cfg, seed)
    shuffle_seed, dropout_seed = child_seeds(seed, 2)
    x, y = torch.from_numpy(splits.x_train), torch.from_numpy(splits.y_train)
    batches = EpochBatches(x, y, cfg["batch_size"], shuffle_seed)
    optimizer = make_optimizer(model, cfg["optimizer"], cfg["lr"], cfg["l2_decay"])
    running, end_of_epoch = [], []
    with seeded_global_rng(dropout_seed, torch.device("cpu")), \
            cpu_threads(threads_for(cfg["batch_size"])):
        for _ in range(cfg["epochs"]):
            model.train()
            correct = 0
            for xb, yb in batches:
                logits = model(xb)
                correct += int((logits.argmax(dim=1) == yb).sum())
                optimizer.zero_grad()
                F.cross_entropy(logits, yb).backward()
                optimizer.step()
            running.append(correct / len(y))
            end_of_epoch.append(evaluate(model, x, y)[1])
    return running, end_of_epoch


@pytest.mark.parametrize("cfg", [
    {**FFN, "batch_size": 10},   # 96 examples: a last batch of 6
    {**FFN, "dropout": 0.5},
    LOGREG,
], ids=["ffn", "ffn_dropout", "logreg"])
def test_train_acc_is_the_running_accuracy_of_the_epochs_own_forward_passes(cfg):
    splits = tiny_splits()
    _, result = train(cfg, seed=5, splits=splits)
    recorded = [row["train_acc"] for row in result.history]
    running, end_of_epoch = replay_train_acc(cfg, seed=5, splits=splits)
    assert recorded == running   # exact: counts / 96
    assert recorded != end_of_epoch   # the measure the loop recorded before


def test_training_is_deterministic_on_cpu():
    cfg = {**FFN, "dropout": 0.3}
    model_a, a = train(cfg, seed=11)
    model_b, b = train(cfg, seed=11)
    model_c, c = train(cfg, seed=12)
    assert a.history == b.history and np.array_equal(a.test_scores, b.test_scores)
    assert same_weights(weights(model_a), weights(model_b))
    assert a.history != c.history


def test_weight_decay_changes_training():
    plain, _ = train(FFN)
    decayed, _ = train({**FFN, "l2_decay": 0.01})
    assert not same_weights(weights(plain), weights(decayed))
    # decay pulls the weights toward zero
    norm = lambda m: sum(float(p.detach().norm()) for p in m.parameters())  # noqa: E731
    assert norm(decayed) < norm(plain)


def test_dropout_changes_training():
    plain, a = train(FFN)
    dropped, b = train({**FFN, "dropout": 0.5})
    assert not same_weights(weights(plain), weights(dropped))
    assert a.history != b.history


def test_adam_trains_too():
    _, result = train({**FFN, "optimizer": "adam", "lr": 0.001, "epochs": 5})
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_a_run_whose_loss_turns_nan_stops_at_that_epoch():
    _, result = train(DIVERGING)
    assert result.diverged == "training loss is nan"
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    losses = [row["train_loss"] for row in result.history]
    assert all(math.isfinite(v) for v in losses[:2]) and math.isnan(losses[2])
    assert result.test_scores.shape == (40, 4)   # the model as it stopped
    _, healthy = train(FFN)
    assert healthy.diverged is None


def test_fit_restores_thread_count_and_global_rng():
    threads, state = torch.get_num_threads(), torch.get_rng_state()
    train({**FFN, "dropout": 0.5})
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), state)


def test_thread_count_is_one_for_small_batches_and_all_cores_for_large():
    assert threads_for(1) == threads_for(16) == threads_for(64) == 1
    assert threads_for(256) == threads_for(1024) == available_cores()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1


def test_evaluate_uses_eval_mode_and_restores_training_mode():
    model = build_model({**FFN, "dropout": 0.9}, seed=0)
    data = tiny_splits()
    x, y = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    model.train()
    # with dropout 0.9 active, two passes (in different batches) would disagree
    (loss, acc), (loss_again, acc_again) = evaluate(model, x, y), evaluate(model, x, y, 7)
    assert loss == pytest.approx(loss_again, rel=1e-6) and acc == acc_again
    assert model.training


# --------------------------------------------------------------------------------- stage

def write_project(root: Path, cfg: dict, data: bool = True) -> None:
    """params.yaml with `train` and `q2.tiny` set to ``cfg``, and the prepared file."""
    params = {"seed": 42, "train": dict(cfg), "q2": {"tiny": dict(cfg)}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if data:
        save_prepared(root / "data/prepared/octmnist.npz", tiny_splits())


def test_stage_writes_model_metrics_and_plot(tmp_path, monkeypatch):
    write_project(tmp_path, FFN)
    monkeypatch.chdir(tmp_path)
    train_torch.main(["q2.tiny", "42"])

    metrics = json.loads((tmp_path / "metrics/seeds/q2/tiny/42.json").read_text())
    assert metrics["epochs"] == 3 and metrics["data_source"] == "tiny (test)"
    assert set(metrics) >= {"train_acc", "val_acc", "test_acc", "test_auc", "official_acc",
                            "official_auc", "best_val_acc", "best_epoch", "train_seconds"}
    rows = (tmp_path / "plots/seeds/q2/tiny/42.csv").read_text().splitlines()
    assert rows[0] == "epoch,train_loss,val_loss,train_acc,val_acc" and len(rows) == 4
    assert metrics["diverged"] is False and metrics["diverged_epoch"] is None
    assert metrics["diverged_reason"] is None
    assert metrics["last_finite_losses"] == {r.split(",")[0]: float(r.split(",")[1])
                                             for r in rows[1:]}
    state = torch.load(tmp_path / "models/q2/tiny/42.pt", weights_only=True)
    model = build_model(FFN, seed=0)
    model.load_state_dict(state)
    assert_both_test_sets_scored(model, metrics)

    # same params and seed: identical metrics (all but the wall time)
    first = {k: v for k, v in metrics.items() if k != "train_seconds"}
    first_plot = (tmp_path / "plots/seeds/q2/tiny/42.csv").read_text()
    train_torch.main(["q2.tiny", "42"])
    again = json.loads((tmp_path / "metrics/seeds/q2/tiny/42.json").read_text())
    assert {k: v for k, v in again.items() if k != "train_seconds"} == first
    assert (tmp_path / "plots/seeds/q2/tiny/42.csv").read_text() == first_plot


def assert_both_test_sets_scored(model: nn.Module, metrics: dict) -> None:
    """The saved model gives the metrics' ACC (as ``evaluate`` counts it) and AUC (medmnist's
    evaluator on softmax probabilities) on all 40 test images and the report's subset (the
    even-numbered 20)."""
    from medmnist.evaluator import getAUC

    data = tiny_splits()
    for prefix, rows, n in (("official", slice(None), 40), ("test", data.report_test, 20)):
        x, y = torch.from_numpy(data.x_test[rows]), torch.from_numpy(data.y_test[rows])
        _, acc = evaluate(model, x, y)
        with torch.no_grad():
            probs = torch.softmax(model.eval()(x).double(), dim=1).numpy()
        assert metrics[f"{prefix}_images"] == n and metrics[f"{prefix}_missing"] is None
        assert metrics[f"{prefix}_acc"] == pytest.approx(acc, abs=1e-6)
        assert metrics[f"{prefix}_auc"] == pytest.approx(getAUC(y.numpy(), probs, "multi-class"),
                                                         abs=1e-6)
    assert metrics["auc_from"] == "softmax probabilities"


def test_stage_flags_a_diverged_run_and_writes_it_deterministically(tmp_path, monkeypatch,
                                                                    capsys):
    write_project(tmp_path, DIVERGING)
    monkeypatch.chdir(tmp_path)
    train_torch.main(["q2.tiny", "42"])   # returns: the stage exits 0

    assert "q2/tiny seed 42: training loss is nan at epoch 3: stopped (diverged)\n" \
        in capsys.readouterr().err
    text = (tmp_path / "metrics/seeds/q2/tiny/42.json").read_text()
    assert "NaN" not in text and "Infinity" not in text   # strict JSON
    metrics = json.loads(text)
    assert (metrics["diverged"], metrics["diverged_epoch"], metrics["epochs"]) == (True, 3, 3)
    assert metrics["diverged_reason"] == "training loss is nan"
    with open(tmp_path / "plots/seeds/q2/tiny/42.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]   # no row past the stop
    assert rows[2]["train_loss"] == rows[2]["val_loss"] == ""   # nan: an empty cell
    assert metrics["last_finite_losses"] == {r["epoch"]: float(r["train_loss"])
                                             for r in rows[:2]}
    data = tiny_splits()
    model = build_model(DIVERGING, seed=0)
    model.load_state_dict(torch.load(tmp_path / "models/q2/tiny/42.pt", weights_only=True))
    _, test_acc = evaluate(model, torch.from_numpy(data.x_test), torch.from_numpy(data.y_test))
    assert metrics["official_acc"] == pytest.approx(test_acc, abs=1e-6)
    assert metrics["official_auc"] is None and metrics["test_auc"] is None
    assert metrics["official_missing"] == "AUC undefined: the model's class scores are not finite"

    outputs = ["plots/seeds/q2/tiny/42.csv", "models/q2/tiny/42.pt"]
    first = {name: (tmp_path / name).read_bytes() for name in outputs}
    train_torch.main(["q2.tiny", "42"])
    assert {name: (tmp_path / name).read_bytes() for name in outputs} == first
    again = json.loads((tmp_path / "metrics/seeds/q2/tiny/42.json").read_text())
    assert {**again, "train_seconds": 0} == {**metrics, "train_seconds": 0}


@pytest.mark.parametrize("key, value, message", [
    ("model", "svm", "train.model is 'svm'; expected one of: logistic_regression, feedforward"),
    ("activation", "sigmoid", "train.activation must be one of: relu, tanh, got 'sigmoid'"),
    ("optimizer", "rmsprop", "train.optimizer must be one of: sgd, adam, got 'rmsprop'"),
    ("lr", 0, "train.lr must be a finite number > 0, got 0"),
    ("lr", -0.1, "train.lr must be a finite number > 0, got -0.1"),
    ("batch_size", 0, "train.batch_size must be an integer >= 1, got 0"),
    ("dropout", 1.0, "train.dropout must be a number in [0, 1), got 1.0"),
    ("dropout", -0.1, "train.dropout must be a number in [0, 1), got -0.1"),
    ("epochs", 0, "train.epochs must be an integer >= 1, got 0"),
])
def test_bad_params_fail_before_reading_data(tmp_path, monkeypatch, key, value, message):
    # no prepared file: had the stage read data first, it would fail with a DataError
    write_project(tmp_path, {**FFN, key: value}, data=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError) as err:
        train_torch.main(["train", "42"])
    assert message in str(err.value)


def test_cuda_device_without_cuda_fails_naming_the_key(tmp_path, monkeypatch):
    write_project(tmp_path, {**FFN, "device": "cuda"}, data=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParamsError, match=r"q2\.tiny\.device: .*CUDA is not available"):
        train_torch.main(["q2.tiny", "42"])


@pytest.mark.parametrize("argv, message", [
    ([], "usage: python -m stages.train_torch train|q2.<name> <seed>"),
    (["train"], "usage: python -m stages.train_torch train|q2.<name> <seed>"),
    (["q1.tiny", "42"], "unknown run 'q1.tiny'"),
    (["q2.missing", "42"], "params key 'q2.missing' not found in params.yaml"),
    (["train", "-1"], "the seed must be an integer >= 0, got '-1'"),
])
def test_bad_run_names_are_rejected(tmp_path, monkeypatch, argv, message):
    write_project(tmp_path, FFN, data=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("|", r"\|")):
        train_torch.main(argv)


def test_stage_exits_nonzero_with_message_and_writes_nothing(tmp_path):
    write_project(tmp_path, {**FFN, "lr": 0}, data=False)
    proc = run_module("stages.train_torch", "train", "42", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "train_torch failed: train.lr must be a finite number > 0, got 0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_stage_without_prepared_data_says_how_to_make_it(tmp_path, monkeypatch):
    write_project(tmp_path, FFN, data=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="data/prepared/octmnist.npz not found: run `dvc repro "
                                        "prepare` first"):
        train_torch.main(["train", "42"])
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


@pytest.mark.parametrize("l2_decay", [0.0, 1e-4])
def test_sgd_updates_the_weights_as_torch_optim_sgd_to_the_bit(l2_decay):
    torch.manual_seed(0)
    x, y = torch.randn(64, 784), torch.randint(0, 4, (64,))
    cfg = {**FFN, "hidden_size": 200, "layers": 2, "l2_decay": l2_decay}
    init = build_model(cfg, seed=3).state_dict()
    ours, theirs = build_model(cfg, seed=3), build_model(cfg, seed=3)
    optimizers = [make_optimizer(ours, "sgd", 0.1, l2_decay),
                  torch.optim.SGD(theirs.parameters(), lr=0.1, weight_decay=l2_decay)]
    for xb, yb in zip(x.split(16), y.split(16)):
        for model, optimizer in zip((ours, theirs), optimizers):
            optimizer.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            optimizer.step()
    got, want = ours.state_dict(), theirs.state_dict()
    assert all(torch.equal(got[name], want[name]) for name in want)
    assert not any(torch.equal(got[name], init[name]) for name in init)   # every tensor moved


def test_a_training_run_imports_neither_torch_dynamo_nor_scikit_learn(tmp_path):
    """torch.optim imports torch._dynamo on its first call, and medmnist.evaluator imports
    scikit-learn (and torch): seconds of every training stage's start, which it does without."""
    import os
    import subprocess
    import sys

    save_prepared(tmp_path / "prepared", tiny_splits())
    code = ("import json, sys; from hw1.torch_models import build_model; "
            "from hw1.torch_training import fit; from hw1.splits import load_prepared; "
            "cfg = json.loads(sys.argv[1]); "
            "fit(build_model(cfg, 0), load_prepared('prepared'), cfg, 0); "
            "print(sorted(m for m in ('torch._dynamo', 'sklearn', 'medmnist') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(FFN)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
