"""`python -m scripts.review` as CI runs it, with the real `dvc` and a local directory as the DVC
remote: the session's pipeline (``pipeline_baseline``) is main's baseline, pushed once per module
by `review main`, then fresh clones review branches against it. Stage lists come from DVC's own
"Running stage" lines. tests/test_review_module.py tests the pieces without `dvc`."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DvcRepo, at_baseline, review, stages_run

pytestmark = pytest.mark.e2e

ALL_STAGES = {"check_params", "fetch", "prepare", "train@42", "boolean", "figures", "tables",
              *(f"q1@{run}-42" for run in ["perceptron", "logreg_lr1e-2", "logreg_lr1e-3", "mlp"]),
              *(f"q2@{run}-42" for run in ["logreg_lr1e-1", "logreg_lr1e-2", "logreg_lr1e-3",
                                        "ffn_bs1024", "ffn_lr1", "ffn_lr1e-2", "ffn_lr1e-3",
                                        "ffn_bs256_e150", "ffn_bs256_e150_l2",
                                        "ffn_bs256_e150_dropout"])}
USER_CONFIG = "['remote \"mine\"']\n    url = /srv/mine\n"   # a .dvc/config.local of one's own


def local_config(repo: DvcRepo) -> str | None:
    path = repo.path / ".dvc/config.local"
    return path.read_text() if path.exists() else None


def clone(origin: DvcRepo, dest: Path, branch: str) -> DvcRepo:
    """A fresh `git clone` of ``origin`` on a new branch, as a CI runner checks one out."""
    origin.run("git", "clone", "-q", str(origin.path), str(dest))
    repo = DvcRepo(dest)
    repo.run("git", "checkout", "-q", "-b", branch)
    return repo


def sections(review_md: str) -> dict[str, str]:
    """review.md's sections by their `###` title."""
    parts = re.split(r"^### (.+)$", review_md, flags=re.M)
    return {title: body.strip() for title, body in zip(parts[1::2], parts[2::2])}


def table_rows(markdown: str) -> list[dict[str, str]]:
    """Each body row of the Markdown tables in ``markdown``, by its table's header."""
    rows: list[dict[str, str]] = []
    block: list[list[str]] = []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip("|"))])
        else:
            rows += [dict(zip(block[0], row)) for row in block[2:]]
            block = []
    return rows


@dataclass
class Baseline:
    main: DvcRepo
    remote: Path
    config: str | None                      # main's .dvc/config.local before the review
    refused: subprocess.CompletedProcess    # `review main` to a remote directory not there
    refused_config: str | None              # .dvc/config.local after it
    refused_created: bool                   # whether the directory was there after it
    push: subprocess.CompletedProcess       # `review main --create-remote`


@pytest.fixture(scope="module")
def baseline(pipeline_baseline, tmp_path_factory) -> Baseline:
    """Main's baseline, the session's pipeline, pushed by `review main` to a directory remote
    that is only created when the review is asked to (`--create-remote`)."""
    main = at_baseline(pipeline_baseline)
    config = local_config(main)
    remote = tmp_path_factory.mktemp("review") / "remote"
    refused = review(main, "main", DVC_REMOTE_URL=str(remote))
    refused_config, refused_created = local_config(main), remote.exists()
    push = review(main, "main", "--create-remote", DVC_REMOTE_URL=str(remote))
    return Baseline(main, remote, config, refused, refused_config, refused_created, push)


def test_main_refuses_a_directory_remote_that_does_not_exist(baseline):
    assert baseline.refused.returncode == 1
    assert baseline.refused.stderr == (
        f"review: cannot push the baseline: the directory remote 'ci' ({baseline.remote}) does "
        f"not exist (check DVC_REMOTE_URL, or pass --create-remote to create it)\n")
    assert baseline.refused.stdout == ""
    assert not baseline.refused_created
    assert baseline.refused_config == baseline.config


def test_main_pushes_the_results_with_the_config_as_it_was(baseline):
    assert baseline.push.returncode == 0, baseline.push.stderr
    assert stages_run(baseline.push.stdout) == set()
    assert (f"Stages: 0 reproduced, 0 restored from the remote, {len(ALL_STAGES)} unchanged"
            in baseline.push.stdout)
    assert baseline.push.stderr == \
        f"review: created the directory remote 'ci' ({baseline.remote})\n"
    assert any((baseline.remote / "files" / "md5").rglob("*"))
    assert any((baseline.remote / "runs").rglob("*"))     # the run-cache
    # the remote was in .dvc/config.local for the review alone; .dvc/config stays as committed
    assert local_config(baseline.main) == baseline.config
    assert baseline.main.run("git", "status", "--porcelain").stdout == ""


def test_one_value_branch_reruns_that_stage_and_restores_the_rest(baseline, tmp_path):
    branch = clone(baseline.main, tmp_path / "branch", "one-value")
    params = branch.params()
    # a value no other test of the session runs, so the run-cache restores none of its stages
    params["q1"]["logreg_lr1e-3"]["lr"] = 0.25
    branch.write_params(params)
    branch.commit("q1.logreg_lr1e-3.lr = 0.25")

    result = review(branch, "pr", DVC_REMOTE_URL=str(baseline.remote))
    assert result.returncode == 0, result.stderr
    ran = {"check_params", "q1@logreg_lr1e-3-42", "figures", "tables"}
    assert stages_run(result.stdout) == ran, result.stdout[-3000:]
    assert (branch.path / "models/q2/ffn_lr1/42.pt").exists()   # restored from the remote
    assert local_config(branch) is None

    review_md = (branch.path / "review.md").read_text()
    assert (f"**Stages:** {len(ran)} reproduced, {len(ALL_STAGES - ran)} restored from the "
            f"remote, 0 unchanged." in review_md)
    found = sections(review_md)
    assert table_rows(found["Params"]) == [{"Path": "params.yaml", "Param": "q1.logreg_lr1e-3.lr",
                                            "main": "0.001", "workspace": "0.25"}]
    metrics = table_rows(found["Metrics"])
    assert metrics and {row["Metric"].split(".")[0] for row in metrics} == {"q1_logreg_lr1e-3"}
    assert "`q1_logreg_lr_val_acc`" in found["Sweep overlays"]
    assert "network_lr" not in found["Sweep overlays"]
    changed = found["Changed table rows"]
    assert re.findall(r"^#### (.+)$", changed, re.M) == \
        ["Table 1: Test accuracy of every Question 1 classifier (NumPy)"]
    [row] = table_rows(changed)
    assert row["run"] == "`q1/logreg_lr1e-3`"
    assert "lr=0.25" in row["params"] and "lr=0.25 (report: 0.001)" in row["note"]


def test_up_to_date_branch_runs_no_stage_and_a_missing_remote_is_said(baseline, tmp_path):
    branch = clone(baseline.main, tmp_path / "branch", "docs-only")
    result = review(branch, "pr", DVC_REMOTE_URL=str(baseline.remote))
    assert result.returncode == 0, result.stderr
    assert stages_run(result.stdout) == set()
    review_md = (branch.path / "review.md").read_text()
    counts = re.search(r"\*\*Stages:\*\* 0 reproduced, (\d+) restored from the remote, (\d+) "
                       r"unchanged\.", review_md)
    assert counts and int(counts[1]) > 0 and int(counts[1]) + int(counts[2]) == len(ALL_STAGES)
    found = sections(review_md)
    assert found["Params"] == found["Metrics"] == found["Changed table rows"] == "No change."

    # the workspace now holds everything: against a mistyped directory remote the review says
    # why it went without, adds nothing to the config and creates no directory
    (branch.path / ".dvc/config.local").write_text(USER_CONFIG)
    typo = tmp_path / "remote-typo"
    result = review(branch, "pr", DVC_REMOTE_URL=str(typo))
    assert result.returncode == 0, result.stderr
    reason = f"the directory remote 'ci' ({typo}) does not exist"
    assert result.stderr == f"review: reviewing without the remote: {reason}\n"
    assert (f"**Without the remote:** {reason}, so the pipeline ran without it (0 reproduced, "
            f"{len(ALL_STAGES)} unchanged)." in (branch.path / "review.md").read_text())
    assert local_config(branch) == USER_CONFIG
    assert not typo.exists()


def test_main_without_a_usable_remote_fails_with_one_line(baseline, tmp_path):
    branch = clone(baseline.main, tmp_path / "branch", "main-ci")
    (branch.path / ".dvc/config.local").write_text(USER_CONFIG)
    no_remote = review(branch, "main")
    assert no_remote.returncode == 1
    assert no_remote.stderr == ("review: cannot push the baseline: no DVC remote is "
                                "configured (set DVC_REMOTE_URL)\n")
    no_keys = review(branch, "main", DVC_REMOTE_URL="s3://bucket/path")
    assert no_keys.returncode == 1
    assert "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not" in no_keys.stderr
    assert no_keys.stderr.count("\n") == 1

    # a remote DVC cannot read: DVC's cause, with the remote named, on the last line
    unreadable = tmp_path / "not-a-directory"
    unreadable.write_text("")
    broken = review(branch, "main", DVC_REMOTE_URL=str(unreadable))
    assert broken.returncode == 1
    assert broken.stderr.startswith(f"review: dvc pull --allow-missing failed (remote 'ci': "
                                    f"{unreadable}): "), broken.stderr
    assert "Not a directory" in broken.stderr
    assert broken.stderr.count("\n") == 1
    assert "Traceback" not in broken.stdout + broken.stderr
    assert local_config(branch) == USER_CONFIG
