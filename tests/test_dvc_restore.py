"""End to end with the real `dvc`: what DVC can restore and trust. The run-cache brings back an
earlier run instead of retraining it, a forced re-run writes the same bytes, one `-S` changes
one line of params.yaml, and a typo in params.yaml stops the pipeline before it deletes anything.

The tests share one reproduced pipeline (conftest's `pipeline_repo`), each starting from its
committed baseline.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from conftest import DvcRepo, stages_run

pytestmark = pytest.mark.e2e

CHECKED = ["models/train/42.pt", "metrics/seeds/train/42.json", "plots/seeds/train/42.csv",
           "plots/train.csv", "models/q1/perceptron/42.npz", "models/q2/ffn_lr1/42.pt",
           "plots/q2/ffn_lr1.csv",
           "metrics/summary.json", "reports/tables.md", "reports/tables/benchmark.csv",
           "reports/figures/fig09_learning_rate.png"]


def digests(root: Path, paths=CHECKED) -> dict[str, str]:
    return {p: hashlib.md5((root / p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture
def repo(pipeline_repo: DvcRepo) -> DvcRepo:
    return pipeline_repo


def test_forced_rerun_writes_identical_bytes_and_leaves_dvc_lock_clean(repo):
    before = digests(repo.path)
    forced = repo.run("repro", "-f", "-s", "train@42", "q1@perceptron-42", "prepare")
    assert stages_run(forced.stdout) == {"train@42", "q1@perceptron-42", "prepare"}
    assert repo.run("git", "status", "--porcelain").stdout == ""
    assert digests(repo.path) == before
    assert stages_run(repo.run("repro").stdout) == set()  # nothing downstream went stale


def test_switching_back_to_earlier_params_restores_from_the_run_cache(repo):
    before = digests(repo.path)
    changed = repo.run("exp", "run", "-S", "train.lr=0.05")
    assert stages_run(changed.stdout) == {"check_params", "train@42", "figures", "tables"}
    # one value, one line: params.yaml keeps the layout `-S` writes
    diff = repo.run("git", "diff", "-U0", "params.yaml").stdout.splitlines()
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] \
        == ["-  lr: 0.1", "+  lr: 0.05"]

    back = repo.run("exp", "run", "-S", "train.lr=0.1")
    assert stages_run(back.stdout) == set()
    for stage in ("check_params", "train@42", "figures", "tables"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in back.stdout
    assert digests(repo.path) == before
    assert repo.run("git", "status", "--porcelain").stdout == ""


def test_one_report_run_changes_one_line_of_params(repo):
    repo.run("exp", "run", "-S", "q2.ffn_lr1.lr=0.5", "q2@ffn_lr1-42")
    diff = repo.run("git", "diff", "-U0", "params.yaml").stdout.splitlines()
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] \
        == ["-    lr: 1.0", "+    lr: 0.5"]


def test_a_typo_in_params_stops_repro_before_any_output_is_deleted(repo):
    before = digests(repo.path)
    repo.set_params("q2.ffn_lr1.lr=-1")
    failed = repo.run("repro", check=False)
    assert failed.returncode != 0
    assert "params.yaml is invalid: q2.ffn_lr1.lr must be a finite number > 0, got -1" \
        in failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout
    assert stages_run(failed.stdout) == {"check_params"}
    assert digests(repo.path) == before


@pytest.mark.slow
def test_adding_a_seed_trains_only_the_new_seed_and_removing_it_retrains_nothing(repo):
    params = repo.params()
    runs = ["train@7"] + [f"{group}@{name}-7" for group in ("q1", "q2") for name in params[group]]
    added = repo.run("exp", "run", "-S", "seeds=[42,7]")
    assert stages_run(added.stdout) == {"check_params", *runs, "figures", "tables"}
    summary = (repo.path / "metrics/summary.json").read_text()
    assert '"n": 2' in summary and '"test_sd"' in summary

    removed = repo.run("exp", "run", "-S", "seeds=[42]")
    assert stages_run(removed.stdout) == set()   # figures and tables come from the run-cache
    assert repo.run("git", "status", "--porcelain", "--", ":!dvc.lock").stdout == ""
    # DVC never prunes dvc.lock: the removed seed's entries stay, every other entry is as before
    lock = yaml.safe_load((repo.path / "dvc.lock").read_text())["stages"]
    baseline = yaml.safe_load(repo.run("git", "show", "HEAD:dvc.lock").stdout)["stages"]
    assert {name: lock[name] for name in baseline} == baseline
    assert set(lock) - set(baseline) == set(runs)
