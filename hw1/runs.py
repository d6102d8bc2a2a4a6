"""Run identifiers and a run's params: what the training stages and the report share.

A run of the report has four spellings, all owned by ``RunId``: its params.yaml key
(``q2.ffn_lr1``), the relative path of its outputs (``q2/ffn_lr1``: ``plots/q2/ffn_lr1.csv``),
its DVC stage group (``q2@ffn_lr1``) and its key in ``metrics/summary.json`` (``q2_ffn_lr1``).
The Table 3 network is the run ``train`` in every spelling. A run trains once per seed of
params.yaml's ``seeds``, each (run, seed) its own stage (``q2@ffn_lr1-42``, ``train@42``) with
its own files: ``models/q2/ffn_lr1/42.pt``, ``metrics/seeds/q2/ffn_lr1/42.json`` and
``plots/seeds/q2/ffn_lr1/42.csv``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hw1.params import section

GROUPS = ("q1", "q2")  # params sections holding one run per key
# A run's name becomes part of a DVC stage name, of file paths and of its stage's shell command.
RUN_NAME = re.compile(r"[A-Za-z0-9_-]+")
RUN_NAME_RULE = "letters, digits, '_' and '-' only"


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
