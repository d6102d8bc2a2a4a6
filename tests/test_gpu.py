"""Question 2's stage code on a GPU: short `train` and `q2` runs (`python -m stages.train_torch`,
2 epochs, synthetic data at scale 0.005) with `device: cuda` and `auto`, a rerun that must give
identical metrics and weights, the saved state_dict loaded on the CPU, and the GPU's accuracies
and losses beside the CPU's, within stated tolerances.

On a machine with CUDA: ``python -m pytest -m gpu tests/test_gpu.py -v`` (add ``-rP`` to see
the values compared). Without CUDA the
`gpu` tests skip; the same checks run with `device: cpu` in every test run, so the code they
go through stays exercised everywhere.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from conftest import run_module

from hw1.data import prepare, write_synthetic
from hw1.splits import load_prepared
from hw1.torch_models import build_model
from hw1.torch_training import evaluate

SEED = 42
FFN = {"model": "feedforward", "epochs": 2, "lr": 0.1, "batch_size": 16, "hidden_size": 200,
       "layers": 2, "dropout": 0.0, "activation": "relu", "l2_decay": 0.0, "optimizer": "sgd"}
LOGREG = {"model": "logistic_regression", "epochs": 2, "lr": 0.01, "batch_size": 16,
          "l2_decay": 0.0, "optimizer": "sgd"}
# The runs, each keyed as the stage takes it: Table 3's network, a q2 run with dropout and a
# larger batch, and a linear q2 run.
RUNS = {"train": FFN, "q2.ffn_dropout": {**FFN, "dropout": 0.2, "batch_size": 64},
        "q2.logreg": LOGREG}
DEVICES = {"cpu": dict.fromkeys(RUNS, "cpu"),
           "cuda": {"train": "cuda", "q2.ffn_dropout": "auto", "q2.logreg": "cuda"}}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
ON_EACH_DEVICE = pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, CUDA])])
# The runs without dropout compute the same thing on both devices but for rounding: the same
# initial weights (drawn on the CPU) and the same batches (shuffled on the CPU), while the GPU
# sums in another order. Their accuracies may differ by ACC_TOLERANCE (a near-tie between two
# logits rounded the other way flips a prediction: 0.02 is one of the 54 validation images, ten
# of the 529 test images), their per-epoch losses by LOSS_TOLERANCE. Both are well inside what
# tells two runs apart: on the CPU, seeds 1-7 and 42 of these runs end with validation losses
# 1.116-1.206 (`train`) and 1.122-1.215 (`q2.logreg`), accuracies 0.33-0.46 (validation) and
# 0.34-0.47 (test). The dropout run is not compared: the GPU draws its masks from its own
# generator, which makes it another run.
ACC_TOLERANCE, LOSS_TOLERANCE = 0.02, 0.005
COMPARED = ("train", "q2.logreg")


@dataclass
class Trained:
    """The runs the stage trained in ``root``, by key: their metrics and per-epoch curves (the
    metrics and plot files), the device the stage said it trained on, and the saved weights as
    loaded on the CPU."""
    root: Path
    metrics: dict[str, dict] = field(default_factory=dict)
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)
    states: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def train_stages(root: Path, devices: dict[str, str]) -> Trained:
    """Every run of RUNS trained by the stage's entry point in ``root`` (data written there
    first, if it has none), each on its device in ``devices``."""
    prepared = root / "data/prepared/octmnist.npz"
    if not prepared.exists():
        write_synthetic(root / "raw.npz", seed=SEED, scale=0.005)
        prepare(root / "raw.npz", prepared, "synthetic")
    params = {"seed": SEED, "seeds": [SEED], "train": {**RUNS["train"], "device": devices["train"]},
              "q2": {key.split(".")[1]: {**cfg, "device": devices[key]}
                     for key, cfg in RUNS.items() if key.startswith("q2.")}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    trained = Trained(root)
    for key in RUNS:
        proc = run_module("stages.train_torch", key, str(SEED), cwd=root)
        assert proc.returncode == 0, proc.stderr
        trained.devices[key] = re.search(r" on (\S+): val_acc ", proc.stdout).group(1)
        run = key.replace(".", "/")
        trained.metrics[key] = json.loads((root / f"metrics/seeds/{run}/{SEED}.json").read_text())
        with open(root / f"plots/seeds/{run}/{SEED}.csv", newline="") as fh:
            trained.curves[key] = [{k: float(v) for k, v in row.items()}
                                   for row in csv.DictReader(fh)]
        # no map_location: the stage saves the weights on the CPU
        trained.states[key] = torch.load(root / f"models/{run}/{SEED}.pt", weights_only=True)
    return trained


def without_time(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "train_seconds"}


def comparisons(a: Trained, b: Trained) -> list[tuple[str, float, float, float]]:
    """(what, value in a, value in b, tolerance) for every value of the COMPARED runs that
    ``a`` and ``b`` must agree on: the accuracies and each epoch's losses."""
    pairs = []
    for key in COMPARED:
        pairs += [(f"{key} {name}", a.metrics[key][name], b.metrics[key][name], ACC_TOLERANCE)
                  for name in ("val_acc", "best_val_acc", "test_acc")]
        pairs += [(f"{key} epoch {x['epoch']:.0f} {name}", x[name], y[name], LOSS_TOLERANCE)
                  for x, y in zip(a.curves[key], b.curves[key], strict=True)
                  for name in ("train_loss", "val_loss")]
    return pairs


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """``trained(device)``: the runs trained on ``device`` (DEVICES), then trained again in
    the same directory; trained on first use, once per module."""
    runs: dict[str, tuple[Trained, Trained]] = {}

    def on(device: str) -> tuple[Trained, Trained]:
        if device not in runs:
            root = tmp_path_factory.mktemp(device)
            runs[device] = (train_stages(root, DEVICES[device]),
                            train_stages(root, DEVICES[device]))
        return runs[device]
    return on


@ON_EACH_DEVICE
def test_each_run_trains_on_the_device_it_asks_for(trained, device):
    first, _ = trained(device)
    assert first.devices == dict.fromkeys(RUNS, device)   # `auto` too, where CUDA is
    for key, metrics in first.metrics.items():
        assert metrics["epochs"] == 2 and metrics["diverged"] is False, key
        assert 0 <= metrics["test_acc"] <= 1, key
        epoch1, epoch2 = first.curves[key]
        assert epoch2["train_loss"] < epoch1["train_loss"], key   # it trained


@ON_EACH_DEVICE
def test_a_rerun_gives_identical_metrics_and_weights(trained, device):
    first, again = trained(device)
    assert {k: without_time(m) for k, m in again.metrics.items()} == \
        {k: without_time(m) for k, m in first.metrics.items()}
    assert again.curves == first.curves
    for key, state in again.states.items():
        assert state.keys() == first.states[key].keys(), key
        assert all(torch.equal(state[k], first.states[key][k]) for k in state), key


@ON_EACH_DEVICE
def test_the_saved_state_dict_loads_on_the_cpu_and_scores_what_the_stage_said(trained, device):
    first, _ = trained(device)
    splits = load_prepared(first.root / "data/prepared/octmnist.npz")
    subset = splits.report_test   # test_acc is the report's protocol: its test subset
    x, y = torch.from_numpy(splits.x_test[subset]), torch.from_numpy(splits.y_test[subset])
    for key, cfg in RUNS.items():
        state = first.states[key]
        assert {str(t.device) for t in state.values()} == {"cpu"}, key
        model = build_model(cfg, SEED)   # on the CPU
        model.load_state_dict(state)
        _, test_acc = evaluate(model, x, y)
        # the CPU may round a near-tie between two logits the other way from the GPU
        assert abs(test_acc - first.metrics[key]["test_acc"]) <= 2 / len(y), key


@pytest.mark.gpu
@CUDA
def test_gpu_and_cpu_agree_but_for_rounding_within_the_tolerances(trained):
    gpu, cpu = trained("cuda")[0], trained("cpu")[0]
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    beyond = []
    for what, a, b, tolerance in comparisons(gpu, cpu):
        print(f"{what}: gpu {a:.6f}, cpu {b:.6f} (tolerance {tolerance})")
        if abs(a - b) > tolerance:
            beyond.append(what)
    assert beyond == []


def test_the_comparison_takes_every_accuracy_and_loss_and_flags_a_difference(trained):
    first, again = trained("cpu")
    pairs = comparisons(first, again)
    assert [what for what, *_ in pairs] == [
        f"{key} {name}" for key in COMPARED
        for name in ("val_acc", "best_val_acc", "test_acc", "epoch 1 train_loss",
                     "epoch 1 val_loss", "epoch 2 train_loss", "epoch 2 val_loss")]
    assert all(a == b for _, a, b, _ in pairs)   # the CPU reruns: identical
    off = Trained(again.root, {**again.metrics, "train": {**again.metrics["train"]}},
                  again.curves)
    off.metrics["train"]["test_acc"] += 1.5 * ACC_TOLERANCE
    assert [what for what, a, b, tol in comparisons(off, first) if abs(a - b) > tol] == \
        ["train test_acc"]
