"""What the tables and figures both read: run identifiers, a run's params, the report's values
and the data summary.

A run of the report has four spellings, all owned by ``RunId``: its params.yaml key
(``q2.ffn_lr1``), the relative path of its outputs (``q2/ffn_lr1``: ``plots/q2/ffn_lr1.csv``),
its DVC stage group (``q2@ffn_lr1``) and its key in ``metrics/summary.json`` (``q2_ffn_lr1``).
The Table 3 network is the run ``train`` in every spelling. A run trains once per seed of
params.yaml's ``seeds``, each (run, seed) its own stage (``q2@ffn_lr1-42``, ``train@42``) with
its own files: ``models/q2/ffn_lr1/42.pt``, ``metrics/seeds/q2/ffn_lr1/42.json`` and
``plots/seeds/q2/ffn_lr1/42.csv``.
"""
from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hw1.params import section

REPORT_VALUES = Path("reports/report_values.yaml")
GROUPS = ("q1", "q2")  # params sections holding one run per key
# Keys that say where a run ran, not what it computed: never compared nor shown as params.
NOT_HYPERPARAMS = {"device"}
# A run's name becomes part of a DVC stage name, of file paths and of its stage's shell command.
RUN_NAME = re.compile(r"[A-Za-z0-9_-]+")
RUN_NAME_RULE = "letters, digits, '_' and '-' only"
_TEST_DISTRIBUTIONS = {"train": "529 test images, class mix of the training set",
                       "balanced": "all 1,000 test images"}


class ReportInputError(RuntimeError):
    """An input of the tables or figures is missing or malformed; the message says which and
    what to run."""


@dataclass(frozen=True)
class RunId:
    """One training run: ``RunId("q2", "ffn_lr1")``, or ``RunId(None, "train")``."""
    group: str | None
    name: str

    @classmethod
    def parse(cls, text: str) -> RunId:
        """Read a params key (``q2.ffn_lr1``), output path (``q2/ffn_lr1``) or stage name
        (``q2@ffn_lr1``); ``train`` is the Table 3 network. A name holds ``RUN_NAME_RULE``."""
        if text == "train":
            return cls(None, "train")
        for sep in ".", "/", "@":
            group, found, name = text.partition(sep)
            if found and group in GROUPS and RUN_NAME.fullmatch(name):
                return cls(group, name)
        raise ValueError(f"{text!r} names no run: expected train or <group>.<name> with group "
                         f"one of {', '.join(GROUPS)} (or the same with / or @) and a name of "
                         f"{RUN_NAME_RULE}")

    def _join(self, sep: str) -> str:
        return self.name if self.group is None else f"{self.group}{sep}{self.name}"

    @property
    def key(self) -> str:
        return self._join(".")

    @property
    def path(self) -> str:
        return self._join("/")

    @property
    def stage(self) -> str:
        return self._join("@")

    @property
    def metric(self) -> str:
        return self._join("_")

    def __str__(self) -> str:
        return self.path

    def seed_stage(self, seed: int) -> str:
        """The DVC stage training this run with ``seed``: ``q2@ffn_lr1-42``, ``train@42``."""
        return f"{self.stage}{'-' if self.group else '@'}{seed}"

    def seed_model(self, seed: int, suffix: str) -> str:
        """``models/q2/ffn_lr1/42.pt`` (``suffix`` ".pt" or ".npz")."""
        return f"models/{self.path}/{seed}{suffix}"

    def seed_metrics(self, seed: int) -> str:
        """The run's per-seed metrics, relative to ``metrics/``: ``seeds/q2/ffn_lr1/42``."""
        return f"seeds/{self.path}/{seed}"

    def seed_curve(self, seed: int) -> str:
        """The run's per-seed curve, relative to ``plots/``: ``seeds/q2/ffn_lr1/42``."""
        return f"seeds/{self.path}/{seed}"


def pipeline_runs(params: Mapping[str, Any]) -> list[RunId]:
    """Every training run in params.yaml: ``train``, then each key of q1 and of q2."""
    return [RunId(None, "train")] + [RunId(group, name) for group in GROUPS
                                     for name in params.get(group) or {}]


def run_params(params: Mapping[str, Any], run: RunId) -> dict[str, Any]:
    """The params.yaml section ``run`` trained with."""
    return dict(section(dict(params), run.key))


# --- the report's values and the data summary ------------------------------------------------

def load_report_values(path: str | Path = REPORT_VALUES) -> dict[str, Any]:
    """The report's numbers and its runs' params (``reports/report_values.yaml``)."""
    path = Path(path)
    if not path.is_file():
        raise ReportInputError(f"{path} not found: it holds the report's numbers the tables "
                               f"compare against")
    values = yaml.safe_load(path.read_text())
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


def data_note(data: Mapping[str, Any], report_data: Mapping[str, Any]) -> str:
    """One line naming the data and test distribution, and whether they match the report's."""
    dist = data.get("test_distribution", "?")
    dist_text = f"test distribution '{dist}' ({_TEST_DISTRIBUTIONS.get(dist, 'unknown')})"
    if data.get("dataset") != report_data["dataset"]:
        return (f"Data: {data.get('source', '?')} stand-in, not comparable to the report "
                f"(MD5 {data.get('md5', '?')}); {dist_text}.")
    line = f"Data: {data['dataset']} (MD5 {data.get('md5', '?')}); {dist_text}"
    if dist != report_data["test_distribution"]:
        line += (f"; the report tested on '{report_data['test_distribution']}', so test "
                 f"accuracies are not comparable")
    return line + "."


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
