"""scripts/repro.py across machines: `upstream`, shards at once in separate clones that share
one DVC remote (a directory, and moto's S3 server), then `assemble` in a fresh clone, with the
real `dvc` on the small synthetic project; its outputs compared byte for byte with a serial
`dvc repro`'s (the session's `pipeline_baseline`), and a missing shard named. Then a pull
request's review fanned out: `plan`, shards and the review sharing a directory remote of their
own, the project's remote only read, and a failed shard's stage trained by the review itself."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import GIT_ENV, DvcRepo, copy_repo, project_repo, review, stages_run
from repro_runs import JOBS, assert_same_outputs, command, out_of_date, run_repro, started

from scripts import repro

# --- shards across clones --------------------------------------------------------------------

def clone(origin: Path, dest: Path) -> DvcRepo:
    subprocess.run(["git", "clone", "-q", str(origin), str(dest)], check=True)
    repo = DvcRepo(dest)
    repo.run("git", "config", "user.name", GIT_ENV["GIT_AUTHOR_NAME"])
    repo.run("git", "config", "user.email", GIT_ENV["GIT_AUTHOR_EMAIL"])
    return repo


def upstream_then_shards(origin: DvcRepo, root: Path, shards: Sequence[int], k: int,
                         remote: dict[str, str] | None = None) -> None:
    """`upstream --write-plan` in a clone of ``origin``, then shards ``shards`` of ``k`` at
    once, each in its own clone with the plan's `--stages`, as the Baseline workflow runs
    them; the plan must list every training stage (the remote holds none), and each shard
    must train its own stages and restore the upstream."""
    params = origin.params()
    split, training = repro.shards(params, k), set(repro.training_stages(params))
    outputs = root / "github_output"
    up = run_repro(clone(origin.path, root / "up"), "upstream", "--shards", str(k),
                   "--write-plan", str(outputs), remote=remote)
    assert up.returncode == 0, up.stdout + up.stderr
    assert stages_run(up.stdout) == set(repro.UPSTREAM)
    plan = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert plan["train"] == ",".join(repro.training_stages(params))
    assert plan["shards"] == json.dumps(list(range(1, k + 1)))
    jobs = []
    for i in shards:
        cmd, env = command(clone(origin.path, root / f"shard{i}"), "--shard", f"{i}/{k}",
                           "--stages", plan["train"], remote=remote)
        jobs.append(subprocess.Popen(cmd, cwd=root / f"shard{i}", env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for i, job in zip(shards, jobs):
        out = job.communicate(timeout=900)[0]
        assert job.returncode == 0, out
        ran = stages_run(out)
        assert ran & training == set(split[i - 1])
        assert "prepare" not in ran and "Stage 'prepare' is cached" in out  # upstream restored
        assert f"shard {i}/{k}: {len(split[i - 1])} trained, 0 restored or up to date" in out


def assert_assemble_names_missing(repo: DvcRepo, missing: Sequence[str],
                                  remote: dict[str, str] | None = None) -> None:
    """`assemble` in ``repo`` fails naming ``missing`` (in params.yaml's order), and trains
    nothing."""
    training = repro.training_stages(repo.params())
    failed = run_repro(repo, "assemble", remote=remote)
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1] == (
        f"repro: no shard produced {len(missing)} training stage(s): "
        f"{', '.join(s for s in training if s in missing)}; run their shard jobs again, or pass "
        f"--recompute-missing to train them here")
    assert stages_run(failed.stdout) & set(training) == set()
    assert not (repo.path / "models").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("step", [["upstream"], ["--shard", "1/2"], ["assemble"]])
def test_a_step_of_the_sharded_flow_without_a_remote_says_how_to_give_one(dvc_repo, step):
    result = run_repro(dvc_repo, *step)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "repro: no DVC remote: set DVC_REMOTE_URL (and DVC_REMOTE_ENDPOINT for an S3-compatible "
        "store), or add one with `dvc remote add -d`")
    assert stages_run(result.stdout) == set()


@pytest.mark.e2e
@pytest.mark.slow
def test_shards_in_separate_clones_assemble_into_the_serial_runs_bytes(pipeline_repo,
                                                                        tmp_path):
    origin = project_repo(tmp_path / "origin")
    origin.run("remote", "add", "-d", "storage", str(tmp_path / "remote"))
    origin.commit("a directory remote")
    params = origin.params()
    split = repro.shards(params, 3)
    training = repro.training_stages(params)
    upstream_then_shards(origin, tmp_path, [1, 2], 3)

    # shard 3 never ran: assemble names its stages and trains nothing
    first = clone(origin.path, tmp_path / "assemble1")
    assert_assemble_names_missing(first, split[2])

    recomputed = run_repro(first, "assemble", "--recompute-missing", "--jobs", JOBS)
    assert recomputed.returncode == 0, recomputed.stdout + recomputed.stderr
    assert set(started(recomputed.stdout)) == set(split[2])
    assert_same_outputs(first, pipeline_repo)

    # a fresh clone now restores every training stage and runs the final stages only
    last = clone(origin.path, tmp_path / "assemble2")
    done = run_repro(last, "assemble")
    assert done.returncode == 0, done.stdout + done.stderr
    ran = stages_run(done.stdout)
    assert ran & set(training) == set()
    assert set(repro.FINAL) <= ran
    assert set(re.findall(r"^Stage '([^']+)' is cached", done.stdout, flags=re.M)) >= \
        set(training)
    assert "final dvc repro ran" in done.stdout
    assert_same_outputs(last, pipeline_repo)
    assert out_of_date(last) == set()


@pytest.mark.e2e
@pytest.mark.slow
def test_two_shards_at_once_push_to_one_s3_store_and_assemble_names_the_rest(tmp_path):
    pytest.importorskip("dvc_s3", reason="the S3 remote: pip install -r requirements-test.txt")
    pytest.importorskip("moto.server", reason="the S3 server: pip install -r requirements-test.txt")
    from s3_server import REGION, S3Store

    store = S3Store()
    store.start()
    try:
        key_id, secret = store.create_bucket_and_user()
        no_aws_config = tmp_path / "aws-config"
        no_aws_config.write_text("")
        remote = {"DVC_REMOTE_URL": "s3://results/hw1", "DVC_REMOTE_ENDPOINT": store.endpoint,
                  "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
                  "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(no_aws_config),
                  "AWS_SHARED_CREDENTIALS_FILE": str(no_aws_config)}
        origin = project_repo(tmp_path / "origin")
        split = repro.shards(origin.params(), 15)          # one training stage a shard
        upstream_then_shards(origin, tmp_path, [1, 2], 15, remote)
        assert store.objects("hw1/runs/")                  # the run-cache, in the store
        last = clone(origin.path, tmp_path / "assemble")
        assert_assemble_names_missing(last, [s for shard in split[2:] for s in shard], remote)
        assert not (last.path / ".dvc/config.local").exists()   # the remote added, then gone
    finally:
        store.stop()


# --- a pull request's review fanned out --------------------------------------------------------

@pytest.fixture(scope="module")
def main_pushed(built_baseline, tmp_path_factory) -> tuple[DvcRepo, Path]:
    """Main, a copy of the session's pipeline, pushed with its run-cache to a directory remote
    by `review main`, as the Baseline workflow leaves the project's remote."""
    root = tmp_path_factory.mktemp("fanout")
    main = copy_repo(built_baseline, root / "main")
    remote = root / "remote"
    pushed = review(main, "main", "--create-remote", DVC_REMOTE_URL=str(remote))
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    return main, remote


def branch(main: DvcRepo, dest: Path, *overrides: str) -> DvcRepo:
    """A clone of ``main`` whose branch `pr` commits ``overrides`` to params.yaml."""
    repo = clone(main.path, dest)
    repo.run("git", "checkout", "-q", "-b", "pr")
    repo.set_params(*overrides)
    repo.commit("the change under review")
    return repo


def plan_in(origin: DvcRepo, dest: Path, scratch: Path,
            remote: dict[str, str] | None) -> tuple[subprocess.CompletedProcess, str]:
    """`plan SCRATCH --shards 4 --write-plan FILE` in a fresh clone of ``origin``: its result
    and what it appended to FILE."""
    out = dest.parent / f"{dest.name}.github_output"
    result = run_repro(clone(origin.path, dest), "plan", str(scratch), "--shards", "4",
                       "--write-plan", str(out), remote=remote)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, out.read_text()


@pytest.mark.e2e
def test_a_review_fans_out_over_shards_through_a_directory_remote_of_its_own(main_pushed,
                                                                           tmp_path):
    main, remote = main_pushed
    remote_files = sorted(p.relative_to(remote) for p in remote.rglob("*"))
    pr = branch(main, tmp_path / "pr", "train.lr=0.05", "q2.ffn_lr1.lr=0.5")
    training = set(repro.training_stages(pr.params()))
    scratch = tmp_path / "pr-remote"
    planned, plan = plan_in(pr, tmp_path / "plan", scratch, {"DVC_REMOTE_URL": str(remote)})
    assert plan == "train=train@42,q2@ffn_lr1-42\nshards=[1, 2]\n"
    assert stages_run(planned.stdout) & training == set()       # the plan trains nothing
    assert any(scratch.rglob("*")) and (scratch / "runs").is_dir()   # results and run-cache

    merged = tmp_path / "merged"
    shutil.copytree(scratch, merged)
    split = repro.shards(pr.params(), 2, ["train@42", "q2@ffn_lr1-42"])
    for i in (1, 2):    # each job with its own copy of the plan's directory (an artifact)
        own = shutil.copytree(scratch, tmp_path / f"remote{i}")
        done = run_repro(clone(pr.path, tmp_path / f"shard{i}"), "--shard", f"{i}/2",
                         "--stages", "train@42,q2@ffn_lr1-42",
                         remote={"DVC_REMOTE_URL": str(own)})
        assert done.returncode == 0, done.stdout + done.stderr
        assert stages_run(done.stdout) & training == set(split[i - 1])
        shutil.copytree(own, merged, dirs_exist_ok=True)

    final = clone(pr.path, tmp_path / "review")
    reviewed = review(final, "pr", "origin/main", DVC_REMOTE_URL=str(merged))
    assert reviewed.returncode == 0, reviewed.stdout + reviewed.stderr
    ran = stages_run(reviewed.stdout)
    assert ran & training == set() and {"figures", "tables"} <= ran
    text = (final.path / "review.md").read_text()
    # check_params, the two runs (from the shards' run-cache), figures and tables
    assert "**Stages:** 5 reproduced, 16 restored from the remote, 0 unchanged." in text
    assert "ffn_lr1" in text and "train" in text

    # a shard that failed uploads nothing: the review trains its stage itself
    partial = shutil.copytree(tmp_path / "remote1", tmp_path / "partial")   # plan's + shard 1's
    again = review(clone(pr.path, tmp_path / "review2"), "pr", "origin/main",
                   DVC_REMOTE_URL=str(partial))
    assert again.returncode == 0, again.stdout + again.stderr
    assert stages_run(again.stdout) & training == set(split[1])
    # the project's remote is as main's baseline left it
    assert sorted(p.relative_to(remote) for p in remote.rglob("*")) == remote_files


@pytest.mark.e2e
def test_a_review_of_one_training_stage_plans_no_shard(main_pushed, tmp_path):
    main, remote = main_pushed
    pr = branch(main, tmp_path / "pr", "q2.ffn_lr1.lr=0.5")
    scratch = tmp_path / "pr-remote"
    planned, plan = plan_in(pr, tmp_path / "plan", scratch, {"DVC_REMOTE_URL": str(remote)})
    assert plan == "train=q2@ffn_lr1-42\nshards=[]\n"
    assert "1 training stage(s) to train (q2@ffn_lr1-42); 0 shard job(s)" in planned.stdout
    assert not scratch.exists()


@pytest.mark.e2e
def test_a_review_without_a_remote_plans_every_training_stage(dvc_repo, tmp_path):
    scratch = tmp_path / "pr-remote"
    planned, plan = plan_in(dvc_repo, tmp_path / "plan", scratch, None)
    training = repro.training_stages(dvc_repo.params())
    assert plan == f"train={','.join(training)}\nshards=[1, 2, 3, 4]\n"
    assert "planning without the remote: no DVC remote" in planned.stdout
    assert stages_run(planned.stdout) == set(repro.UPSTREAM)
    assert (scratch / "files").is_dir()                          # the upstream stages' outputs
