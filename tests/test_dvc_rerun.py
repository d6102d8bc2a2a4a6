"""A code change re-runs only the stages that import it: editing a table's wording re-runs
`tables` alone, editing a figure's style `figures` alone, and no model retrains.

The tests share one reproduced pipeline (conftest's `pipeline_repo`), each starting from its
committed baseline.
"""
from __future__ import annotations

import json

import pytest
from conftest import DvcRepo, stages_run

pytestmark = pytest.mark.e2e


def edit(repo: DvcRepo, path: str, old: str, new: str) -> None:
    file = repo.path / path
    text = file.read_text()
    assert text.count(old) == 1, f"{path} no longer holds {old!r} once"
    file.write_text(text.replace(old, new))


@pytest.mark.parametrize("path, old, new, stage, output", [
    ("hw1/tables.py", '"# The report\'s tables, reproduced"',
     '"# The report\'s tables beside the reproduced numbers"', "tables", "reports/tables.md"),
    ("hw1/figures.py", "ax.grid(alpha=0.3)", "ax.grid(alpha=0.5)", "figures",
     "reports/figures/fig01_perceptron.png"),
])
def test_editing_a_reporting_module_reruns_its_stage_only(pipeline_repo, path, old, new, stage,
                                                          output):
    before = (pipeline_repo.path / output).read_bytes()
    edit(pipeline_repo, path, old, new)
    status = json.loads(pipeline_repo.run("status", "--json").stdout)
    assert status == {stage: [{"changed deps": {path: "modified"}}]}
    assert stages_run(pipeline_repo.run("repro").stdout) == {stage}
    assert (pipeline_repo.path / output).read_bytes() != before
    assert stages_run(pipeline_repo.run("repro").stdout) == set()
