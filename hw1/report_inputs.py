"""What the tables, claims and figures read besides the curves: the report's values, the data
summary, each run's metrics over the seeds, and params as the report shows them.

No training stage imports this module, so editing how the report reads or words its inputs
re-runs only the stages that draw the report (tables, figures), never a model.
"""
from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hw1.errors import UserError
from hw1.params import read_yaml
from hw1.runs import RunId

REPORT_VALUES = Path("reports/report_values.yaml")
# Keys that say where a run ran, not what it computed: never compared nor shown as params.
NOT_HYPERPARAMS = {"device"}


class ReportInputError(UserError):
    """An input of the tables or figures is missing or malformed; the message says which and
    what to run."""


# --- the report's values and the data summary ------------------------------------------------

def load_report_values(path: str | Path = REPORT_VALUES) -> dict[str, Any]:
    """The report's numbers and its runs' params (``reports/report_values.yaml``)."""
    path = Path(path)
    if not path.is_file():
        raise ReportInputError(f"{path} not found: it holds the report's numbers the tables "
                               f"compare against")
    values = read_yaml(path.read_text())
    if not isinstance(values, dict) or not isinstance(values.get("runs"), dict) \
            or not isinstance(values.get("data"), dict):
        raise ReportInputError(f"{path} must hold the mappings 'data' and 'runs'")
    return values


def _load_json(path: Path, what: str, fix: str) -> dict[str, Any]:
    if not path.is_file():
        raise ReportInputError(f"{path} not found: {what}; run `{fix}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReportInputError(f"{path} is not valid JSON ({err}); run `{fix}` again") from err


def load_run_metrics(run: RunId, seed: int,
                     metrics_dir: str | Path = "metrics") -> dict[str, Any]:
    """``metrics/seeds/<run>/<seed>.json``, or a ReportInputError naming the stage to run."""
    return _load_json(Path(metrics_dir) / f"{run.seed_metrics(seed)}.json",
                      f"the tables need run '{run}' with seed {seed}",
                      f"dvc repro {run.seed_stage(seed)}")


def load_data_summary(metrics_dir: str | Path = "metrics") -> dict[str, Any]:
    """``metrics/data.json`` from the prepare stage: which data, its MD5, the test split."""
    return _load_json(Path(metrics_dir) / "data.json", "the tables name the data they came from",
                      "dvc repro prepare")


def load_seeds(run: RunId, seeds: Sequence[int],
               metrics_dir: str | Path = "metrics") -> list[dict[str, Any]]:
    """The metrics of ``run`` for each seed, in the order of ``seeds``."""
    return [load_run_metrics(run, seed, metrics_dir) for seed in seeds]


def seed_column(run: RunId, seeds: Sequence[int], measured: Sequence[Mapping[str, Any]],
                key: str, context: str) -> tuple[float | None, ...]:
    """``key`` of each seed's metrics of ``run`` (``measured``, as ``load_seeds`` reads them), in
    seed order, None where a file holds null (a value the run could not measure); ``context``
    names what needs it in the message for a file without it."""
    for seed, metrics in zip(seeds, measured):
        if key not in metrics:
            raise ReportInputError(f"metrics/{run.seed_metrics(seed)}.json has no '{key}' "
                                   f"({context}); run `dvc repro {run.seed_stage(seed)}` again")
    return tuple(None if m[key] is None else float(m[key]) for m in measured)


def missing_reason(seeds: Sequence[int], measured: Sequence[Mapping[str, Any]],
                   key: str) -> str:
    """Why ``key`` is null in a run's metrics: the reason its file gives beside it (the
    ``<set>_missing`` of the test set ``key`` belongs to, e.g. ``test_missing`` for
    ``test_acc``), per seed among several where they differ."""
    reason_key = key.rsplit("_", 1)[0] + "_missing"
    reasons = {seed: m.get(reason_key) or "not measured" for seed, m in zip(seeds, measured)
               if m.get(key) is None}
    if len(set(reasons.values())) == 1:
        return next(iter(reasons.values()))
    return "; ".join(f"seed {seed}: {why}" for seed, why in reasons.items())


def scored_sets_note(data: Mapping[str, Any]) -> str:
    """The two test sets every run is scored on, from the data summary (metrics/data.json)."""
    official = data.get("sizes", {}).get("test", "?")
    report_test = data.get("report_test") or {}
    official_text = f"the official split ({official:,} images: ACC, AUC)" \
        if isinstance(official, int) else "the official split (ACC, AUC)"
    if report_test.get("missing"):
        return (f"test sets: {official_text}; the report's subset is missing "
                f"({report_test['missing']}), so its test accuracies are not measured")
    return (f"test sets: the report's subset ({report_test.get('size', '?')} images, class mix "
            f"of the training set: test acc.) and {official_text}")


def data_note(data: Mapping[str, Any], report_data: Mapping[str, Any]) -> str:
    """One line naming the data and its test sets, and whether they match the report's."""
    tests = scored_sets_note(data)
    if data.get("dataset") != report_data["dataset"]:
        return (f"Data: {data.get('source', '?')} stand-in, not comparable to the report "
                f"(MD5 {data.get('md5', '?')}); {tests}.")
    return f"Data: {data['dataset']} (MD5 {data.get('md5', '?')}); {tests}."


# --- params as the tables and figures show them ----------------------------------------------

def same_value(a: Any, b: Any) -> bool:
    """Equal, with numbers compared by value: params.yaml may say 1 where the report file says
    1.0 (and ``dvc exp run -S`` writes 1.0)."""
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def format_params(params: Mapping[str, Any]) -> str:
    """``{"lr": 0.1, "epochs": 20, "device": "auto"}`` -> ``"lr=0.1, epochs=20"``."""
    return ", ".join(f"{k}={v}" for k, v in params.items() if k not in NOT_HYPERPARAMS)


def split_params(runs: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[dict]]:
    """(params every run shares, each run's other params), so a row shows what sets it apart."""
    keys = [k for k in dict.fromkeys(k for p in runs for k in p) if k not in NOT_HYPERPARAMS]
    common = {k: runs[0][k] for k in keys
              if all(k in p and same_value(p[k], runs[0][k]) for p in runs)}
    distinct = [{k: p[k] for k in keys if k in p and k not in common} for p in runs]
    return common, distinct
