"""End to end with the real `dvc`: the Question 2 stages and param changes (the queued sweep is
in test_review.py, on top of the whole pipeline).

It starts from the session's reproduced pipeline (conftest's `pipeline_repo`); commands name
their targets (`train q2`) so that it exercises the PyTorch stages alone.
"""
from __future__ import annotations

import json

import pytest
import torch
from conftest import stages_run

from hw1.torch_models import build_model

pytestmark = pytest.mark.e2e

Q2_RUNS = ["logreg_lr1e-1", "logreg_lr1e-2", "logreg_lr1e-3", "ffn_bs1024", "ffn_lr1",
           "ffn_lr1e-2", "ffn_lr1e-3", "ffn_bs256_e150", "ffn_bs256_e150_l2",
           "ffn_bs256_e150_dropout"]


def test_each_run_reruns_only_when_its_own_params_change(pipeline_repo):
    dvc_repo = pipeline_repo
    for name in ["train"] + [f"q2/{run}" for run in Q2_RUNS]:
        metrics = json.loads((dvc_repo.path / f"metrics/seeds/{name}/42.json").read_text())
        assert metrics["epochs"] == 2 and metrics["data_source"] == "synthetic (not OctMNIST)"
        assert (dvc_repo.path / f"plots/seeds/{name}/42.csv").read_text().count("\n") == 3
    params = dvc_repo.params()
    state = torch.load(dvc_repo.path / "models/q2/ffn_bs256_e150_dropout/42.pt", weights_only=True)
    build_model(params["q2"]["ffn_bs256_e150_dropout"], seed=0).load_state_dict(state)
    assert stages_run(dvc_repo.run("repro", "train", "q2").stdout) == set()

    # the run you iterate on: only `train` re-runs, none of the report's other runs
    train_lr = dvc_repo.run("exp", "run", "-S", "train.lr=0.001", "train", "q2")
    assert stages_run(train_lr.stdout) == {"check_params", "train@42"}
    assert dvc_repo.params()["train"]["lr"] == 0.001

    # one report run: only its own stage re-runs
    before = (dvc_repo.path / "plots/seeds/q2/ffn_lr1/42.csv").read_text()
    one_run = dvc_repo.run("exp", "run", "-S", "q2.ffn_lr1.lr=0.5", "train", "q2")
    assert stages_run(one_run.stdout) == {"check_params", "q2@ffn_lr1-42"}
    assert dvc_repo.params()["q2"]["ffn_lr1"]["lr"] == 0.5
    assert (dvc_repo.path / "plots/seeds/q2/ffn_lr1/42.csv").read_text() != before
