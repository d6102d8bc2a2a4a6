"""End to end over S3, the way teams share results: the real `dvc` with the `dvc-s3` plugin
against moto's S3 server on 127.0.0.1 (tests/s3_server.py), the endpoint in each clone's
`.dvc/config.local`, the keys in the environment only.

One pipeline run per module: clone A, a copy of the session's reproduced pipeline, commits it to
a bare git repository (standing in for GitHub) and pushes the data to the store; every test
starts from there.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

pytest.importorskip("dvc_s3", reason="the S3 remote: pip install -r requirements-test.txt")
pytest.importorskip("moto.server", reason="the S3 server: pip install -r requirements-test.txt")

from conftest import DvcRepo, copy_repo, review, stages_run  # noqa: E402
from moto.core.authorization import enable_iam_authentication  # noqa: E402
from s3_server import REGION, S3Store  # noqa: E402

REMOTE_URL = "s3://results/hw1"
# What DVC caches and pushes (git holds the rest: dvc.lock, metrics, plots, reports).
CACHED_DIRS = ["data", "models", "metrics/seeds", "plots/seeds", "reports"]


@dataclass
class Baseline:
    origin: Path                            # the bare git repository every clone comes from
    repo: DvcRepo                           # clone A, which ran the pipeline and pushed it
    push: subprocess.CompletedProcess       # its `dvc push --run-cache`


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[S3Store]:
    """The store, up for the whole module, and its user's keys in the environment."""
    no_aws_config = tmp_path_factory.mktemp("aws") / "config"
    no_aws_config.write_text("")
    store = S3Store()
    store.start()
    key_id, secret = store.create_bucket_and_user()
    with pytest.MonkeyPatch.context() as env:
        # as from CI secrets: keys in the environment, nothing from this machine's AWS setup
        env.setenv("AWS_ACCESS_KEY_ID", key_id)
        env.setenv("AWS_SECRET_ACCESS_KEY", secret)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_CONFIG_FILE", str(no_aws_config))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(no_aws_config))
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_S3"):
            env.delenv(name, raising=False)
        yield store
    store.stop()


@pytest.fixture(scope="module")
def baseline(built_baseline: DvcRepo, store: S3Store, tmp_path_factory) -> Baseline:
    """Clone A: the pipeline reproduced (a copy of the session's), committed to `origin`, its
    data and run-cache pushed to the store."""
    a = copy_repo(built_baseline, tmp_path_factory.mktemp("a") / "repo")
    a.run("remote", "add", "-d", "storage", REMOTE_URL)
    a.run("remote", "modify", "--local", "storage", "endpointurl", store.endpoint)
    a.commit("the store as the default remote")
    origin = tmp_path_factory.mktemp("origin") / "hw1.git"
    a.run("git", "init", "-q", "--bare", "-b", "main", str(origin))
    a.run("git", "push", "-q", str(origin), "main")
    return Baseline(origin, a, a.run("push", "--run-cache"))


def clone(baseline: Baseline, store: S3Store, dest: Path) -> DvcRepo:
    """A fresh clone as another machine makes it: the remote from git, its own endpoint."""
    baseline.repo.run("git", "clone", "-q", str(baseline.origin), str(dest))
    repo = DvcRepo(dest)
    repo.run("remote", "modify", "--local", "storage", "endpointurl", store.endpoint)
    return repo


def cached_outputs(repo: DvcRepo) -> dict[str, bytes]:
    """The files DVC caches in ``repo``, by path."""
    return {str(path.relative_to(repo.path)): path.read_bytes()
            for name in CACHED_DIRS for path in sorted((repo.path / name).rglob("*"))
            if path.is_file()}


def assert_clear_failure(result: subprocess.CompletedProcess, *phrases: str | tuple) -> None:
    """Failed, said why in DVC's own words, and showed no traceback. A tuple of phrases: any one
    of them (which request fails first, and so DVC's wording, depends on the transfer order)."""
    assert result.returncode != 0
    for phrase in phrases:
        options = phrase if isinstance(phrase, tuple) else (phrase,)
        assert any(option in result.stderr for option in options), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_fresh_clone_restores_the_baseline_and_a_branch_reruns_only_its_change(
        baseline, store, tmp_path):
    assert f"{len(store.objects('hw1/'))} files pushed" in baseline.push.stdout
    committed = baseline.repo.run("git", "show", "HEAD:.dvc/config").stdout
    assert f"url = {REMOTE_URL}" in committed
    for secret in ("endpointurl", "access_key", "secret", os.environ["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in committed
    assert ".dvc/config.local" not in baseline.repo.run("git", "ls-files", ".dvc").stdout

    b = clone(baseline, store, tmp_path / "b")
    b.run("pull")
    assert cached_outputs(b) == cached_outputs(baseline.repo)
    assert "Running stage" not in b.run("repro").stdout
    assert b.run("git", "status", "--porcelain").stdout == ""

    # a CI runner on a pull request: only the changed run trains, the rest is not fetched
    c = clone(baseline, store, tmp_path / "c")
    c.run("git", "checkout", "-q", "-b", "ffn-lr")
    params = c.params()
    params["q2"]["ffn_lr1"]["lr"] = 0.5
    c.write_params(params)
    c.commit("q2.ffn_lr1.lr: 0.5")
    # the review as CI runs it, the remote from the environment: it restores what the remote
    # holds, then reproduces (the figures and tables read every run's per-seed curves and
    # metrics, so those come from the remote too), and leaves .dvc/config.local as it was
    config = (c.path / ".dvc/config.local").read_text()
    keys = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    changed = review(c, "pr", DVC_REMOTE_URL=REMOTE_URL, DVC_REMOTE_ENDPOINT=store.endpoint,
                     **keys)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    ran = {"check_params", "q2@ffn_lr1-42", "figures", "tables"}
    assert stages_run(changed.stdout) == ran, changed.stdout
    assert f"**Stages:** {len(ran)} reproduced, " in (c.path / "review.md").read_text()
    assert (c.path / ".dvc/config.local").read_text() == config
    # every other run restored, not retrained: its files are the baseline's, byte for byte
    def other_runs(repo: DvcRepo) -> dict[str, bytes]:
        return {k: v for k, v in cached_outputs(repo).items()
                if "ffn_lr1/" not in k and not k.startswith("reports/")}
    assert other_runs(c) == other_runs(baseline.repo)


def test_wrong_or_missing_keys_fail_naming_the_cause(baseline, store, tmp_path, monkeypatch):
    b = clone(baseline, store, tmp_path / "b")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")   # botocore's retries only add seconds here
    # another account's keys (AWS's documentation example); a wrong secret alone is not tested:
    # moto rejects some correctly signed listings as well (getmoto/moto#5948), so its
    # SignatureDoesNotMatch would prove nothing
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    with enable_iam_authentication():   # moto checks keys only inside this block
        push = baseline.repo.run("push", check=False)
        pull = b.run("pull", check=False)
    # push: the cause, but neither the remote nor its URL (DVC's message)
    assert_clear_failure(push, ("The AWS Access Key Id you provided does not exist in our records",
                                "(403) when calling the HeadObject operation: Forbidden"))
    # pull: the bucket and path; the cause as S3 gives it for a HEAD request, a bare 403
    assert_clear_failure(pull, "failed to connect to s3 (results/hw1/", "(403)", "Forbidden",
                         "failed to pull data from the cloud")

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    missing = b.run("pull", check=False)
    assert_clear_failure(missing, "failed to connect to s3 (results/hw1/",
                         "Unable to locate credentials")


def test_store_down_fails_naming_the_endpoint(baseline, store, tmp_path, monkeypatch):
    b = clone(baseline, store, tmp_path / "b")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store.stop()
    try:
        push = baseline.repo.run("push", check=False)
        pull = b.run("pull", check=False)
    finally:
        store.start()
    # the URL DVC could not reach: the endpoint, the bucket and the remote's path
    unreachable = f'Could not connect to the endpoint URL: "{store.endpoint}/results'
    assert_clear_failure(push, unreachable, ("prefix=hw1", f"{store.endpoint}/results/hw1/"))
    assert_clear_failure(pull, f"{unreachable}/hw1/", "failed to connect to s3 (results/hw1/",
                         "failed to pull data from the cloud")


def test_a_push_cut_off_by_the_store_going_down_completes_when_rerun(
        baseline, store, tmp_path, monkeypatch):
    a = baseline.repo
    a.run("remote", "add", "--local", "resumed", "s3://results/resumed")
    a.run("remote", "modify", "--local", "resumed", "endpointurl", store.endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store.fail_after_uploads(5)
    cut = a.run("push", "--run-cache", "-r", "resumed", check=False)
    assert not store.running
    assert_clear_failure(cut, "Could not connect to the endpoint URL",
                         ("files failed to upload", "failed to transfer"))

    store.start()
    partial = store.objects("resumed/")
    resumed = a.run("push", "--run-cache", "-r", "resumed")
    full = store.objects("resumed/")
    # the objects that made it stay, the rest follow (DVC's count includes the run-cache entries,
    # which it sends again whether or not they are there, so it does not show what was skipped)
    assert partial and partial < full
    assert "files pushed" in resumed.stdout, resumed.stdout
    assert {key.replace("resumed/", "hw1/", 1) for key in full} == store.objects("hw1/")

    d = clone(baseline, store, tmp_path / "d")
    d.run("remote", "modify", "--local", "storage", "url", "s3://results/resumed")
    d.run("pull")
    assert cached_outputs(d) == cached_outputs(a)
    assert "Data and pipelines are up to date" in d.run("status").stdout
