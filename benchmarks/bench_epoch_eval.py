"""Cost of Question 2's training-accuracy point: one epoch of ``fit`` as it was (the whole
training set evaluated again after the epoch) and as it is (the accuracy counted in the epoch's
own forward passes), side by side in the same run.

On full-size synthetic OctMNIST written by hw1.data.prepare (97,477 training images), for each
(model, batch size) that the PyTorch runs of params.yaml use, times the second epoch of a
two-epoch ``fit`` (the first pays one-time costs, see bench_torch.steady_epoch) both ways, best
of ``--repeats`` interleaved tries. Each (model, batch size) is timed with the section of its
first run in params.yaml. The old path lives here only: ``fit`` is given, as its progress, an
object that at the end of each epoch evaluates the whole training set on all cores, as ``fit``
did, before noting the time. The two paths must train alike: their histories must agree in
everything but ``train_acc``, or the script fails.

Then it estimates the PyTorch training time of one seed of the pipeline, before and after: the
sum over the runs of epochs x the measured seconds per epoch of the run's (model, batch size).
An estimate from per-epoch measurements: it leaves out each run's first-epoch costs, loading
the data and the final test evaluation, and times runs with dropout or weight decay as the run
timed for their (model, batch size).

    python -m benchmarks.bench_epoch_eval [--repeats 3] [--scale 1.0]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from hw1.data import prepare, write_synthetic
from hw1.params import load_params
from hw1.splits import Splits, load_prepared
from hw1.torch_models import build_model
from hw1.torch_training import available_cores, cpu_threads, evaluate, fit, threads_for

PATHS = ("old", "new")


def synthetic_splits(scale: float) -> Splits:
    """The synthetic stand-in through the pipeline's own fetch (synthetic) and prepare code."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, prepared = Path(tmp, "raw.npz"), Path(tmp, "prepared.npz")
        write_synthetic(raw, seed=0, scale=scale)
        prepare(raw, prepared, source="synthetic")
        return load_prepared(prepared)


def pytorch_runs(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every PyTorch run of params.yaml by name: ``train`` and the ``q2`` runs."""
    return {"train": params["train"], **params.get("q2", {})}


class EpochEnds:
    """Given to ``fit`` as its progress, which ``fit`` updates at the end of each epoch: notes
    the time, after evaluating the whole training set first when ``old`` (the old loop)."""

    def __init__(self, model: torch.nn.Module, splits: Splits, old: bool):
        self.model, self.old = model, old
        self.x, self.y = torch.from_numpy(splits.x_train), torch.from_numpy(splits.y_train)
        self.times: list[float] = []
        self.train_acc: list[float] = []  # the old measure: end-of-epoch model, eval mode

    def update(self, epoch: int, **figures: float) -> None:
        if self.old:
            with cpu_threads(available_cores()):
                self.train_acc.append(evaluate(self.model, self.x, self.y)[1])
        self.times.append(time.perf_counter())


def second_epoch(run: dict[str, Any], splits: Splits,
                 old: bool) -> tuple[float, EpochEnds, list[dict[str, float]]]:
    """Seconds of the second epoch of a two-epoch ``fit`` of ``run``, the clock, the history."""
    cfg = {**run, "epochs": 2, "device": "cpu"}
    model = build_model(cfg, seed=0)
    clock = EpochEnds(model, splits, old)
    result = fit(model, splits, cfg, seed=0, progress=clock)  # type: ignore[arg-type]
    if len(clock.times) != 2:
        raise RuntimeError(f"{run} stopped after {len(clock.times)} epoch(s): {result.diverged}")
    return clock.times[1] - clock.times[0], clock, result.history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="tries per timing (best kept)")
    parser.add_argument("--scale", type=float, default=1.0, help="synthetic data size")
    parser.add_argument("--params", default="params.yaml", help="the runs to estimate")
    args = parser.parse_args(argv)

    print(f"load average at start: {os.getloadavg()}; cores: {available_cores()}; "
          f"torch {torch.__version__}")
    splits = synthetic_splits(args.scale)
    print(f"training set: {len(splits.y_train)} images, validation {len(splits.y_val)}")
    runs = pytorch_runs(load_params(args.params))
    groups: dict[tuple[str, int], list[str]] = {}
    for name, run in runs.items():
        groups.setdefault((run["model"], run["batch_size"]), []).append(name)

    tries: dict[tuple[str, int], dict[str, list[float]]] = {
        group: {path: [] for path in PATHS} for group in groups}
    train_acc: dict[tuple[str, int], dict[str, float]] = {}  # epoch 2's, by either measure
    for _ in range(args.repeats):  # interleaved, so a burst of load hits both paths
        for group, names in groups.items():
            histories, clocks = {}, {}
            for path in PATHS:
                seconds, clocks[path], histories[path] = second_epoch(
                    runs[names[0]], splits, old=path == "old")
                tries[group][path].append(seconds)
            if [{**row, "train_acc": 0} for row in histories["old"]] != \
                    [{**row, "train_acc": 0} for row in histories["new"]]:
                raise AssertionError(f"{names[0]}: the two paths trained differently")
            train_acc[group] = {"old": clocks["old"].train_acc[-1],
                                "new": histories["new"][-1]["train_acc"]}

    best = {group: {path: min(times) for path, times in by_path.items()}
            for group, by_path in tries.items()}
    print("seconds per epoch (second epoch of two), best of "
          f"{args.repeats}; old: the training set evaluated after the epoch, new: counted in "
          "the epoch's forward passes")
    for (model, batch_size), names in groups.items():
        old, new = best[model, batch_size]["old"], best[model, batch_size]["new"]
        print(f"  {model} batch {batch_size} ({threads_for(batch_size)} thread(s); timed as "
              f"{names[0]}): old {old:.2f}, new {new:.2f}, saves {old - new:.2f} s "
              f"({(old - new) / old:.0%})")
        print("    [tries: " + "; ".join(
            f"{path} {', '.join(f'{t:.2f}' for t in tries[model, batch_size][path])}"
            for path in PATHS) + "]")
        acc = train_acc[model, batch_size]
        print(f"    train_acc at epoch 2: old {acc['old']:.4f} (end-of-epoch model, eval "
              f"mode), new {acc['new']:.4f} (running, train mode)")
    print("  the two paths' histories agree in everything but train_acc, in every try")

    print(f"estimate, one seed of the {len(runs)} PyTorch runs in {args.params} "
          "(epochs x seconds per epoch above):")
    total = dict.fromkeys(PATHS, 0.0)
    for (model, batch_size), names in groups.items():
        epochs = sum(runs[name]["epochs"] for name in names)
        seconds = {path: epochs * best[model, batch_size][path] for path in PATHS}
        for path in PATHS:
            total[path] += seconds[path]
        print(f"  {model} batch {batch_size}: {len(names)} run(s), {epochs} epochs: "
              f"old {seconds['old'] / 60:.1f} min, new {seconds['new'] / 60:.1f} min")
    print(f"  total: old {total['old'] / 60:.1f} min, new {total['new'] / 60:.1f} min, "
          f"saves {(total['old'] - total['new']) / 60:.1f} min "
          f"({(total['old'] - total['new']) / total['old']:.0%})")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
