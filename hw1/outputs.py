"""The one writer of stage outputs: atomic files, per-run metrics JSON and per-epoch plot CSV.

Every file is first written in full to a temporary file and then renamed into place, so a stage
that fails (or is killed) never leaves a half-written output behind. The temporary files live in
``.dvc/tmp/outputs/`` of the DVC project holding the output (beside the output when there is
none, or when that directory is on another filesystem): git ignores that directory and DVC never
hashes it, so a killed stage's leftover changes neither `git status` nor a directory's hash.
Leftovers of killed processes are swept there before a write. Inside ``transaction()`` every
file a stage writes is renamed into place only once all of them are written: a stage writes all
of its outputs or none (but for a kill during the renames, which can leave some outputs new and
some old; DVC did not record that run, so it sees the stage as changed). A full disk or a
read-only directory is an ``OutputError``: one line naming the path. Every writer is
byte-deterministic (DVC hashes bytes): the same values give the same file, whenever and wherever
it is written.

``HW1_KILL_AT=<point>:<n>`` in the environment (for the tests) makes the process kill itself
with SIGKILL at the n-th ``create`` (a temporary file made, still empty), ``written`` (a
temporary file complete) or ``rename`` (before the n-th output is renamed into place).
"""
from __future__ import annotations

import csv
import errno
import glob
import hashlib
import io
import json
import math
import os
import re
import signal
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hw1.errors import UserError

if TYPE_CHECKING:
    from hw1.runs import RunId

_UMASK = os.umask(0)
os.umask(_UMASK)
TMP_DIR = Path(".dvc/tmp/outputs")  # relative to the DVC project's root
# `.<output name>.<pid>.<random>[.old].tmp`: a temporary file, or an output it replaces
_TEMP = re.compile(r"\.(?P<pid>\d+)\.[a-z0-9_]+(\.old)?\.tmp$")
_FULL = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
         errno.EFBIG: "the file size limit is reached (ulimit -f)"}
_KILL_AT = os.environ.get("HW1_KILL_AT", "")
_points: Counter[str] = Counter()
_swept: set[Path] = set()
_pending: list[tuple[Path, Path]] | None = None  # (temporary file, output) of the transaction


class OutputError(UserError):
    """An output cannot be written (read-only directory, full disk); the message names the path
    and what to do."""


def _point(kind: str) -> None:
    if _KILL_AT:
        _points[kind] += 1
        if _KILL_AT == f"{kind}:{_points[kind]}":
            os.kill(os.getpid(), signal.SIGKILL)


def _shown(path: str | os.PathLike) -> str:
    path = os.path.abspath(path)
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _write_fault(err: OSError, path: Path, where: str | os.PathLike) -> OutputError | None:
    """The OutputError for a full disk or a directory ``where`` that is not writable, else
    None (not a fault of the place written to)."""
    if err.errno in _FULL:
        return OutputError(f"cannot write {_shown(path)}: {_FULL[err.errno]} ({err.strerror}); "
                           f"free space on its filesystem and run the stage again")
    if isinstance(err, PermissionError) or err.errno == errno.EROFS:
        return OutputError(f"cannot write {_shown(path)}: {_shown(where)} is not writable "
                           f"({err.strerror}); make it writable (chmod u+w {_shown(where)}) "
                           f"and run the stage again")
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True


def _sweep(directory: Path, pattern: str) -> None:
    """Remove the temporary files (``pattern``) in ``directory`` of processes that are gone:
    what a stage killed while writing left behind."""
    for leftover in directory.glob(pattern):
        match = _TEMP.search(leftover.name)
        if match and int(match["pid"]) != os.getpid() and not _alive(int(match["pid"])):
            leftover.unlink(missing_ok=True)


def _temp_dir(path: Path) -> Path:
    """Where the temporary file for ``path`` goes: the DVC project's TMP_DIR, if it is on the
    same filesystem as ``path`` (so the rename is atomic), else ``path``'s own directory.
    Leftovers of killed processes there are swept first."""
    parent = path.parent.resolve()
    for root in (parent, *parent.parents):
        if (root / ".dvc").is_dir():
            tmp_dir = root / TMP_DIR
            tmp_dir.mkdir(parents=True, exist_ok=True)
            if tmp_dir.stat().st_dev == parent.stat().st_dev:
                if tmp_dir not in _swept:
                    _sweep(tmp_dir, ".*.tmp")
                    _swept.add(tmp_dir)
                return tmp_dir
            break
    _sweep(path.parent, f".{glob.escape(path.name)}.*.tmp")
    return path.parent


@contextmanager
def transaction() -> Iterator[None]:
    """Every file written inside (by ``atomic_path`` and the writers) is renamed into place
    together at the end, or none is: an error before the end leaves every output as it was.
    Nested transactions join the outermost one."""
    global _pending
    if _pending is not None:
        yield
        return
    _pending = []
    try:
        yield
        _commit(_pending)
    finally:
        for tmp, _ in _pending:
            tmp.unlink(missing_ok=True)
        _pending = None


def _commit(writes: Sequence[tuple[Path, Path]]) -> None:
    """Rename each temporary file over its output, keeping each replaced output until all are
    in place; if one cannot be renamed, put every output back as it was."""
    done: list[tuple[Path, Path, Path | None]] = []
    try:
        for tmp, path in writes:
            _point("rename")
            old = None
            if path.exists():
                old = tmp.with_name(tmp.name.removesuffix(".tmp") + ".old.tmp")
                os.replace(path, old)
            done.append((tmp, path, old))
            os.replace(tmp, path)
    except OSError as err:
        for tmp, done_path, old in reversed(done):
            if old is not None:
                os.replace(old, done_path)
            elif not tmp.exists():
                done_path.unlink(missing_ok=True)
        fault = _write_fault(err, path, path.parent)
        if fault is None:
            raise
        raise fault from err
    for _, _, old in done:
        if old is not None:
            old.unlink(missing_ok=True)


def staged(path: str | os.PathLike) -> Path:
    """The file holding ``path``'s bytes now: its temporary file while a transaction holds it."""
    for tmp, out in _pending or ():
        if out == Path(path):
            return tmp
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path for ``path``; rename it over ``path`` only once written in full
    (at the end of the transaction, if one is open)."""
    path = Path(path)
    with transaction():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                        dir=_temp_dir(path))
        except OSError as err:  # the directory that could not be written to holds err.filename
            fault = _write_fault(err, path, Path(err.filename or path).parent)
            if fault is None:
                raise
            raise fault from err
        os.close(fd)
        tmp = Path(name)
        assert _pending is not None
        _pending.append((tmp, path))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual file mode
        _point("create")
        try:
            yield tmp
        except BaseException as err:
            _pending.remove((tmp, path))
            tmp.unlink(missing_ok=True)
            if isinstance(err, OSError) and err.errno in _FULL:  # the write itself failed
                raise _write_fault(err, path, path.parent) from err
            raise
        _point("written")


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

    from hw1.params import read_yaml

    try:
        with open(lock) as fh:
            outs = {o["path"]: o.get("md5") for o in read_yaml(fh)["stages"][stage]["outs"]}
        if any(outs.get(Path(p).as_posix()) != file_md5(staged(p)) for p in outputs):
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

    ``outputs`` are the run's other files (its model), already written (or staged in the open
    transaction): when they and the metrics equal what dvc.lock recorded for the run's stage,
    its earlier time is kept.
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
