"""scripts/review.sh as CI runs it, with the real `dvc` and a local directory as the DVC remote:
main's baseline is computed and pushed once per module, then fresh clones review branches
against it. Stage lists come from DVC's own "Running stage" lines."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import GIT_ENV, DvcRepo, project_repo, stages_run

pytestmark = pytest.mark.e2e

ALL_STAGES = {"check_params", "fetch", "prepare", "train@42", "boolean", "figures", "tables",
              *(f"q1@{run}-42" for run in ["perceptron", "logreg_lr1e-2", "logreg_lr1e-3", "mlp"]),
              *(f"q2@{run}-42" for run in ["logreg_lr1e-1", "logreg_lr1e-2", "logreg_lr1e-3",
                                        "ffn_bs1024", "ffn_lr1", "ffn_lr1e-2", "ffn_lr1e-3",
                                        "ffn_bs256_e150", "ffn_bs256_e150_l2",
                                        "ffn_bs256_e150_dropout"])}


def review(repo: DvcRepo, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`scripts/review.sh ARGS` in ``repo``, with the remote settings in ``env`` alone (none of
    the caller's), and the `dvc` and `python` of the interpreter running the tests."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DVC_REMOTE_", "AWS_"))}
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(["bash", "scripts/review.sh", *args], cwd=repo.path,
                          env={**clean, **GIT_ENV, **env, "PATH": path,
                               "PYTHONPATH": str(repo.path)},
                          capture_output=True, text=True)


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


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of each body row of the Markdown tables in ``markdown`` (each table's header
    and rule left out)."""
    rows: list[list[str]] = []
    block: list[str] = []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
        else:
            rows += [[cell.strip() for cell in row.strip("|").split("|")] for row in block[2:]]
            block = []
    return rows


@dataclass
class Baseline:
    main: DvcRepo
    remote: Path
    full_run: subprocess.CompletedProcess   # `review.sh pr` with no remote: the whole pipeline
    full_review: str
    push: subprocess.CompletedProcess       # `review.sh main` with the remote


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Baseline:
    """Main's baseline: the pipeline run once (through the script's no-remote fallback),
    committed with dvc.lock and the outputs git tracks, and pushed by `review.sh main`."""
    root = tmp_path_factory.mktemp("review")
    main = project_repo(root / "main")
    full_run = review(main, "pr")
    assert full_run.returncode == 0, full_run.stderr
    full_review = (main.path / "review.md").read_text()
    (main.path / "review.md").unlink()
    main.commit("baseline")
    remote = root / "remote"
    remote.mkdir()
    push = review(main, "main", DVC_REMOTE_URL=str(remote))
    return Baseline(main, remote, full_run, full_review, push)


def test_without_a_remote_the_review_runs_every_stage_and_says_so(baseline):
    assert stages_run(baseline.full_run.stdout) == ALL_STAGES
    assert ("**Full run:** no DVC remote is configured (set DVC_REMOTE_URL), so the pipeline "
            f"ran without it ({len(ALL_STAGES)} ran, 0 restored or unchanged)."
            in baseline.full_review)


def test_main_pushes_the_results_with_the_remote_kept_out_of_dvc_config(baseline):
    assert baseline.push.returncode == 0, baseline.push.stderr
    assert stages_run(baseline.push.stdout) == set()
    assert any((baseline.remote / "files" / "md5").rglob("*"))
    # the remote lives in the untracked .dvc/config.local; .dvc/config stays as committed
    assert baseline.main.run("git", "status", "--porcelain").stdout == ""
    assert str(baseline.remote) in (baseline.main.path / ".dvc/config.local").read_text()


def test_one_value_branch_reruns_that_stage_and_restores_the_rest(baseline, tmp_path):
    branch = clone(baseline.main, tmp_path / "branch", "one-value")
    params = branch.params()
    params["q1"]["logreg_lr1e-3"]["lr"] = 0.1
    branch.write_params(params)
    branch.commit("q1.logreg_lr1e-3.lr = 0.1")

    result = review(branch, "pr", DVC_REMOTE_URL=str(baseline.remote))
    assert result.returncode == 0, result.stderr
    assert stages_run(result.stdout) == {"check_params", "q1@logreg_lr1e-3-42", "figures", "tables"}
    assert (branch.path / "models/q2/ffn_lr1/42.pt").exists()   # restored from the remote

    review_md = (branch.path / "review.md").read_text()
    assert f"**Stages:** 4 ran, {len(ALL_STAGES) - 4} restored or unchanged" in review_md
    found = sections(review_md)
    assert table_rows(found["Params"]) == [["params.yaml", "q1.logreg_lr1e-3.lr", "0.001", "0.1"]]
    metrics = table_rows(found["Metrics"])
    assert metrics and {row[1].split(".")[0] for row in metrics} == {"q1_logreg_lr1e-3"}
    assert "`q1_logreg_lr_val_acc`" in found["Sweep overlays"]
    assert "network_lr" not in found["Sweep overlays"]
    changed_rows = table_rows(found["Changed table rows"])
    assert changed_rows and {row[1] for row in changed_rows} == {"`q1/logreg_lr1e-3`"}


def test_up_to_date_branch_runs_no_stage(baseline, tmp_path):
    branch = clone(baseline.main, tmp_path / "branch", "docs-only")
    result = review(branch, "pr", DVC_REMOTE_URL=str(baseline.remote))
    assert result.returncode == 0, result.stderr
    assert stages_run(result.stdout) == set()
    found = sections((branch.path / "review.md").read_text())
    assert found["Params"] == found["Metrics"] == found["Changed table rows"] == "No change."


def test_main_without_a_usable_remote_fails_with_one_line(baseline, tmp_path):
    branch = clone(baseline.main, tmp_path / "branch", "main-ci")
    no_remote = review(branch, "main")
    assert no_remote.returncode == 1
    assert no_remote.stderr == ("review.sh: cannot push the baseline: no DVC remote is "
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
    last = broken.stderr.strip().splitlines()[-1]
    assert last.startswith(f"review.sh: dvc pull --allow-missing failed (remote 'ci': "
                           f"{unreadable}): "), last
    assert "Not a directory" in last
    assert broken.stderr.count("\n") == 1
    assert "Traceback" not in broken.stdout + broken.stderr
