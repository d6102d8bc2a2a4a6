"""DVC stage `q1@<run>-<seed>`: one Question 1 NumPy run with one seed
(`python -m stages.train_numpy q1.mlp 42`).

Writes models/q1/<run>/<seed>.npz (the learned weights), plots/seeds/q1/<run>/<seed>.csv (per
epoch) and metrics/seeds/q1/<run>/<seed>.json. Params are checked before the data is loaded,
and nothing is written unless training finishes. A run that diverges stops there, says so,
and is written flagged.
"""
from __future__ import annotations

import os
import sys
import time

# Per-example SGD makes thousands of tiny BLAS calls a second: threads only add synchronisation,
# and on a busy machine they made the MLP up to 8x slower. Read by numpy's BLAS on import.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from hw1.errors import run_stage  # noqa: E402
from hw1.numpy_models import from_params, validate  # noqa: E402
from hw1.outputs import save_npz, transaction, write_run  # noqa: E402
from hw1.params import ParamsError, load_params, parse_seed, section  # noqa: E402
from hw1.progress import EpochProgress  # noqa: E402
from hw1.runs import RunId  # noqa: E402
from hw1.scoring import score_test_sets, scores_line  # noqa: E402
from hw1.splits import load_prepared  # noqa: E402

USAGE = "usage: python -m stages.train_numpy q1.<run> <seed>  (<run>: a key of params.yaml's q1)"


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise ParamsError(USAGE)
    key = argv[0]
    if not key.startswith("q1."):
        raise ParamsError(f"unknown run {key!r}; {USAGE}")
    seed = parse_seed(argv[1], USAGE)
    params = load_params()
    model = from_params(validate(section(params, key), key))
    run = RunId.parse(key)

    data = load_prepared(bias=model.bias_feature)
    started = time.perf_counter()
    with EpochProgress(f"{key} seed {seed}", model.epochs) as progress:
        model.fit(data.x_train, data.y_train, np.random.default_rng(seed),
                  validation=(data.x_val, data.y_val),
                  on_epoch=lambda row: progress.update(
                      int(row["epoch"]), **{k: v for k, v in row.items() if k != "epoch"}))
    seconds = time.perf_counter() - started
    history = model.history_
    if model.diverged_:  # a result all the same, flagged in its metrics: exit 0
        progress.stopped(history[-1]["epoch"], model.diverged_)
    test = score_test_sets(model.class_scores(data.x_test), data, model.probabilistic)

    model_path = run.seed_model(seed, ".npz")
    with transaction():  # the model, its metrics and its curve: all three or none
        save_npz(model_path, **model.weights())
        metrics = write_run(run, seed, history, test, seconds, data.dataset,
                            outputs=[model_path], diverged=model.diverged_)
    print(f"{key} seed {seed} on {data.dataset}: train {metrics['train_acc']:.4f}, "
          f"val {metrics['val_acc']:.4f}, {scores_line(metrics)} "
          f"({metrics['train_seconds']:.1f} s)")


if __name__ == "__main__":
    run_stage(main, "train_numpy", sys.argv[1:])
