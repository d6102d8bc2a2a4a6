"""End to end with the real `dvc`: fetch and prepare on the synthetic stand-in, and offline."""
from __future__ import annotations

import json

import pytest
from medmnist import INFO

pytestmark = pytest.mark.e2e


def test_repro_prepares_synthetic_data_once(dvc_repo):
    first = dvc_repo.run("repro", "prepare")
    assert "Running stage 'fetch'" in first.stdout
    assert "Running stage 'prepare'" in first.stdout
    summary = json.loads((dvc_repo.path / "metrics/data.json").read_text())
    assert summary["source"] == "synthetic"
    assert summary["dataset"] == "synthetic (not OctMNIST)"
    assert summary["sizes"] == {"train": 1950, "val": 217, "test": 1000}   # the official split
    assert summary["class_counts"]["test"] == {"CNV": 250, "DME": 250, "DRUSEN": 250,
                                               "NORMAL": 250}
    assert summary["report_test"] == {"size": 529, "missing": None, "class_counts": {
        "CNV": 182, "DME": 55, "DRUSEN": 42, "NORMAL": 250}}
    assert (dvc_repo.path / "data/prepared/octmnist.npz").is_file()
    # outputs are ignored by git up front (metrics/data.json is DVC-cached): git sees dvc.lock
    status = dvc_repo.run("git", "status", "--porcelain").stdout.split("\n")
    assert sorted(line[3:] for line in status if line) == ["dvc.lock"]

    second = dvc_repo.run("repro", "prepare")
    assert "Running stage" not in second.stdout
    assert "didn't change" in second.stdout


def test_offline_fetch_fails_clearly_and_synthetic_experiment_runs(dvc_repo):
    params = dvc_repo.params()
    params["data"]["source"] = "medmnist"
    dvc_repo.write_params(params)
    dvc_repo.commit("real data source")

    failed = dvc_repo.run("repro", "prepare", check=False)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert INFO["octmnist"]["url"] in output and INFO["octmnist"]["MD5"] in output
    assert "data/raw/octmnist.npz" in output
    assert "dvc exp run -S data.source=synthetic" in output
    raw_dir = dvc_repo.path / "data/raw"
    assert not raw_dir.exists() or list(raw_dir.iterdir()) == []

    ran = dvc_repo.run("exp", "run", "-S", "data.source=synthetic", "prepare")
    assert "Running stage 'prepare'" in ran.stdout
    assert json.loads((dvc_repo.path / "metrics/data.json").read_text())["source"] == "synthetic"
