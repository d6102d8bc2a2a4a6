"""scripts/repro.py across machines: `upstream`, shards at once in separate clones that share
one DVC remote (a directory, and moto's S3 server), then `assemble` in a fresh clone, with the
real `dvc` on the small synthetic project; its outputs compared byte for byte with a serial
`dvc repro`'s (the session's `pipeline_baseline`), and a missing shard named."""
from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import GIT_ENV, DvcRepo, project_repo, stages_run
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
    """`upstream` in a clone of ``origin``, then shards ``shards`` of ``k`` at once, each in
    its own clone; each must train its own stages and restore the upstream."""
    params = origin.params()
    split, training = repro.shards(params, k), set(repro.training_stages(params))
    up = run_repro(clone(origin.path, root / "up"), "upstream", remote=remote)
    assert up.returncode == 0, up.stdout + up.stderr
    assert stages_run(up.stdout) == set(repro.UPSTREAM)
    jobs = []
    for i in shards:
        cmd, env = command(clone(origin.path, root / f"shard{i}"), "--shard", f"{i}/{k}",
                           remote=remote)
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
