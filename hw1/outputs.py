"""The one writer of stage outputs: atomic files, per-run metrics JSON and per-epoch plot CSV.

Every file is written to a temporary sibling and renamed into place, so a stage that fails
(or is killed) never leaves a half-written output behind. Every writer is byte-deterministic
(DVC hashes bytes): the same values give the same file, whenever and wherever it is written.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hw1.runs import RunId

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual file mode
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write dict rows as CSV; the columns are the first row's keys, in order."""
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Save arrays uncompressed (fast to load); never pickles. NumPy stamps every member with
    the same fixed date, so the file's bytes depend on the arrays alone."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def run_metrics(history: Sequence[Mapping[str, float]], test: Mapping[str, Any],
                train_seconds: float, data_source: str,
                diverged: str | None = None) -> dict[str, Any]:
    """Headline metrics of one training run from its per-epoch history and its scores on both
    test sets (``test``, as ``hw1.scoring.score_test_sets`` gives them: ``test_*`` on the
    report's subset, ``official_*`` on the official split, each ACC and AUC, null where missing
    with the reason beside).

    ``history`` rows hold at least ``epoch``, ``train_acc`` (for the PyTorch runs, the running
    train-mode accuracy of the epoch's own forward passes) and ``val_acc`` of the model as it was
    at the end of that epoch; the last row is the final model. ``diverged`` is why a run
    stopped at its last epoch (``"training loss is nan"``), None for a run that did not
    diverge. Every run says ``diverged`` (true/false), ``diverged_epoch`` and
    ``diverged_reason`` (null if none) and ``last_finite_losses``: its last (up to) 3 finite
    training losses by epoch, ``{"1": 1.39, "2": 1.7e9}``, which `dvc metrics show` lists as
    columns (a list it would leave out); empty for the perceptron (no loss). No value is NaN
    or infinite, which JSON cannot hold.
    """
    if not history:
        raise ValueError("a run needs at least one epoch of history")
    last = history[-1]
    best = max(history, key=lambda row: row["val_acc"])  # first epoch wins ties
    finite = [(int(row["epoch"]), round(float(row["train_loss"]), 6)) for row in history
              if "train_loss" in row and math.isfinite(row["train_loss"])]
    return {
        "train_acc": round(float(last["train_acc"]), 6),
        "val_acc": round(float(last["val_acc"]), 6),
        **{k: round(float(v), 6) if isinstance(v, float) else v for k, v in test.items()},
        "best_val_acc": round(float(best["val_acc"]), 6),
        "best_epoch": int(best["epoch"]),
        "epochs": int(last["epoch"]),
        "diverged": diverged is not None,
        "diverged_epoch": int(last["epoch"]) if diverged is not None else None,
        "diverged_reason": diverged,
        "last_finite_losses": {str(epoch): loss for epoch, loss in finite[-3:]},
        "train_seconds": round(float(train_seconds), 3),
        "data_source": data_source,
    }


def file_md5(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def recorded_seconds(stage: str, metrics_path: str | os.PathLike, metrics: Mapping[str, Any],
                     outputs: Sequence[str | os.PathLike], lock: str | os.PathLike = "dvc.lock",
                     cache: str | os.PathLike = ".dvc/cache/files/md5") -> float | None:
    """The ``train_seconds`` that dvc.lock's last run of ``stage`` recorded, if that run made
    the same ``outputs`` (same bytes) and the same ``metrics`` but for the time; else None.

    A forced re-run (``dvc repro -f``) that reproduces a run keeps the first measurement, so an
    unchanged stage never churns dvc.lock; any change to the result is timed anew.
    """
    import yaml  # only here: the stage modules that import this one mostly never need it

    try:
        with open(lock) as fh:
            outs = {o["path"]: o.get("md5") for o in yaml.safe_load(fh)["stages"][stage]["outs"]}
        if any(outs.get(Path(p).as_posix()) != file_md5(p) for p in outputs):
            return None
        md5 = outs[Path(metrics_path).as_posix()]
        earlier = json.loads((Path(cache) / md5[:2] / md5[2:]).read_text())
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None  # no earlier run of this stage to compare with
    same = {**earlier, "train_seconds": None} == {**metrics, "train_seconds": None}
    return earlier.get("train_seconds") if same else None


def write_run(run: RunId, seed: int, history: Sequence[Mapping[str, float]],
              test: Mapping[str, Any], train_seconds: float, data_source: str,
              outputs: Sequence[str | os.PathLike] = (), diverged: str | None = None,
              metrics_dir: str | os.PathLike = "metrics",
              plots_dir: str | os.PathLike = "plots") -> dict[str, Any]:
    """Write one (run, seed)'s metrics and per-epoch curve (``metrics/seeds/<run>/<seed>.json``,
    ``plots/seeds/<run>/<seed>.csv``); return the metrics.

    ``outputs`` are the run's other files (its model), already written: when they and the
    metrics equal what dvc.lock recorded for the run's stage, its earlier time is kept.
    ``diverged``: why the run stopped at its last epoch, if it did (see ``run_metrics``); a
    non-finite value in the plot data is an empty cell, which pandas and DVC read as missing.
    """
    metrics = run_metrics(history, test, train_seconds, data_source, diverged)
    rows = [{k: (v if not isinstance(v, float) else round(v, 6) if math.isfinite(v) else "")
             for k, v in row.items()} for row in history]
    plots_path = Path(plots_dir) / f"{run.seed_curve(seed)}.csv"
    metrics_path = Path(metrics_dir) / f"{run.seed_metrics(seed)}.json"
    write_csv(plots_path, rows)
    earlier = recorded_seconds(run.seed_stage(seed), metrics_path, metrics,
                               [*outputs, plots_path])
    if earlier is not None:
        metrics["train_seconds"] = earlier
    write_json(metrics_path, metrics)
    return metrics
