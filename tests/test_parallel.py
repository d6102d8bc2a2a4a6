"""scripts/repro.py: the pipeline in parallel workers on one machine and in shards across clones
that share a DVC remote, with the real `dvc` on the small synthetic project, its outputs
compared byte for byte with a serial `dvc repro`'s (the session's `pipeline_baseline`).

The parallel run here has 2 workers of cores / 2 threads each, the serial run all cores, so on a
machine with 2 cores or more the comparison also shows that a run's bytes do not depend on its
thread count (the batch-256 and batch-1024 runs train on every core they are given).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from conftest import GIT_ENV, REPO, DvcRepo, at_baseline, project_repo, stages_run

from scripts import repro

JOBS = "2"
TIME_CLAIM = "table4_batch16_vs_1024"   # compares training seconds
OUTPUT_DIRS = ("data", "models", "metrics", "plots", "reports")


# --- helpers ---------------------------------------------------------------------------------

def without_seconds(value):
    """``value`` (parsed JSON) without any key naming a time in seconds."""
    if isinstance(value, dict):
        return {k: without_seconds(v) for k, v in value.items() if "seconds" not in k}
    return value


def comparable(path: str, data: bytes) -> bytes:
    """An output's bytes with what measures the machine left out: training seconds
    (per-seed metrics, the summary, Table 4) and the claim that compares them."""
    if path.startswith("metrics/seeds/") or path == "metrics/summary.json":
        return json.dumps(without_seconds(json.loads(data))).encode()
    if path == "metrics/claims.json":
        return json.dumps({k: v for k, v in json.loads(data).items() if k != TIME_CLAIM}).encode()
    text = data.decode("utf-8", errors="surrogateescape")
    if path == "reports/claims.md":
        return "\n".join(line for line in text.splitlines() if TIME_CLAIM not in line).encode()
    if path == "reports/tables.md":
        return re.sub(r"^## Table 4:.*?(?=^## )", "", text, flags=re.S | re.M).encode()
    if path == "reports/tables/table4.csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        return json.dumps([{k: v for k, v in row.items()
                            if "seconds" not in k and not k.startswith("best")}
                           for row in rows]).encode()
    return data


def outputs(repo: DvcRepo) -> dict[str, bytes]:
    """Every file the pipeline writes in ``repo``, comparable across runs."""
    files = {}
    for name in OUTPUT_DIRS:
        for path in sorted((repo.path / name).rglob("*")):
            if path.is_file():
                rel = path.relative_to(repo.path).as_posix()
                files[rel] = comparable(rel, path.read_bytes())
    return files


def assert_same_outputs(repo: DvcRepo, serial: DvcRepo) -> None:
    got, want = outputs(repo), outputs(serial)
    assert sorted(got) == sorted(want)
    differ = [path for path in want if got[path] != want[path]]
    assert differ == []
    assert any(path.startswith("models/") for path in want)     # the comparison saw the models


def command(repo: DvcRepo, *args: str, remote: dict[str, str] | None = None) \
        -> tuple[list[str], dict[str, str]]:
    """`python -m scripts.repro ARGS` in ``repo``, and its environment: the caller's without
    any remote settings or keys, then ``remote``'s."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_REMOTE_", "AWS_"))}
    env = {**clean, **GIT_ENV, **(remote or {}), "PYTHONPATH": str(repo.path)}
    return [sys.executable, "-m", "scripts.repro", *args], env


def run_repro(repo: DvcRepo, *args: str,
              remote: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd, env = command(repo, *args, remote=remote)
    return subprocess.run(cmd, cwd=repo.path, env=env, capture_output=True, text=True,
                          timeout=900)


def started(output: str) -> list[str]:
    """The training stages the command's progress lines say it started, in order."""
    return re.findall(r"\] started  (\S+)", output)


def out_of_date(repo: DvcRepo) -> set[str]:
    return set(json.loads(repo.run("status", "--json").stdout or "{}"))


def unrecorded_outputs(repo: DvcRepo) -> dict[str, str]:
    """Outputs on disk that dvc.lock does not record: what a stage stopped half-way leaves."""
    status = json.loads(repo.run("status", "--json").stdout or "{}")
    return {path: state for entries in status.values() for entry in entries
            if isinstance(entry, dict)
            for path, state in (entry.get("changed outs") or {}).items()
            if state in ("modified", "new")}


def assert_no_lock(repo: DvcRepo) -> None:
    """No DVC process holds or left a lock: the rwlock file lists nobody, and a `dvc status`
    that does not wait for the lock succeeds at once."""
    rwlock = repo.path / ".dvc/tmp/rwlock"
    if rwlock.exists():
        assert all(not entries for entries in json.loads(rwlock.read_text()).values())
    assert "Unable to acquire lock" not in repo.run("status").stderr


def assert_no_temporary_files(repo: DvcRepo) -> None:
    leftovers = [p for name in OUTPUT_DIRS for p in (repo.path / name).rglob(".*.tmp")]
    assert leftovers == []


# --- the plan (no dvc) -----------------------------------------------------------------------

def test_every_stage_of_dvc_yaml_is_upstream_training_or_final():
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert stages == {*repro.UPSTREAM, *repro.FINAL, "train", "q1", "q2"}
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    names = repro.training_stages(params)
    assert len(names) == len(set(names)) == 15 * len(params["seeds"])
    assert {repro.run_of(name).stage for name in names} == \
        {"train", *(f"q1@{r}" for r in params["q1"]), *(f"q2@{r}" for r in params["q2"])}


def test_the_longest_runs_come_first_by_estimated_cost():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    order = repro.longest_first(params, repro.training_stages(params))
    # the 150-epoch runs, then the batch-16 networks, then the rest; Question 1's perceptron and
    # logistic regressions (per example, 785 x 4 weights) last
    assert order[:3] == [f"q2@{r}-42" for r in ("ffn_bs256_e150", "ffn_bs256_e150_l2",
                                                 "ffn_bs256_e150_dropout")]
    assert set(order[3:7]) == {"train@42", "q2@ffn_lr1-42", "q2@ffn_lr1e-2-42",
                               "q2@ffn_lr1e-3-42"}
    assert order.index("q1@mlp-42") < order.index("q2@logreg_lr1e-1-42")
    assert set(order[-3:]) == {"q1@perceptron-42", "q1@logreg_lr1e-2-42", "q1@logreg_lr1e-3-42"}
    # about the minutes one seed trains on the development machine (README: ~15 minutes)
    total = sum(repro.estimated_cost(params, s) for s in order)
    assert 10 * 60 < total < 20 * 60


@pytest.mark.parametrize("k", [1, 2, 3, 4, 15, 20])
def test_shards_split_every_training_stage_once_balanced_and_deterministic(k):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["seeds"] = [42, 1, 2]
    split = repro.shards(params, k)
    assert len(split) == k
    flat = [s for shard in split for s in shard]
    assert sorted(flat) == sorted(repro.training_stages(params))
    assert split == repro.shards(params, k)
    loads = [sum(repro.estimated_cost(params, s) for s in shard) for shard in split]
    longest = max(repro.estimated_cost(params, s) for s in flat)
    # greedy longest-first: no shard exceeds the ideal share by more than one stage
    assert max(loads) <= sum(loads) / k + longest
    # the seeds of one run go to different shards when there are shards enough
    if k >= 3:
        assert all(len({i for i, shard in enumerate(split) if s in shard}) == 1 for s in flat)
        heavy = [i for i, shard in enumerate(split)
                 for s in shard if s.startswith("q2@ffn_bs256_e150-")]
        assert len(set(heavy)) == 3


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_shard_is_one_line_naming_the_form(text):
    with pytest.raises(repro.ReproError, match=r"^--shard .*: expected I/K with 1 <= I <= K"):
        repro.parse_shard(text)


@pytest.mark.parametrize("args, message", [
    (["--jobs", "0"], "--jobs 0: give at least 1"),
    (["upstream", "--shard", "1/2"], "--shard runs a shard of its own"),
    (["assemble", "-S", "train.lr=0.01"], "-S and --name apply to a run on this machine"),
    (["--recompute-missing"], "--recompute-missing applies to assemble only"),
    (["collect"], "invalid choice: 'collect'"),
])
def test_a_misused_command_line_says_what_is_wrong(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        repro.parse_args(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_override_names_it_and_leaves_params_yaml_alone(tmp_path, monkeypatch):
    params = tmp_path / "params.yaml"
    shutil.copy2(REPO / "params.yaml", params)
    before = params.read_bytes()
    monkeypatch.chdir(tmp_path)
    for bad, cause in [("train.lr==", "Error parsing override 'train.lr=='"),
                       ("train.lrr=0.1", "Could not override 'train.lrr'.")]:
        with pytest.raises(repro.ReproError) as err:
            repro.apply_overrides(["train.epochs=3", bad])
        assert str(err.value) == (f"-S {bad}: {cause}; expected key=value with a key of "
                                  f"params.yaml, e.g. -S train.lr=0.01")
        assert params.read_bytes() == before
    repro.apply_overrides(["train.epochs=3", "q2.ffn_lr1.lr=0.5"])
    changed = [(a, b) for a, b in zip(before.decode().splitlines(),
                                      params.read_text().splitlines()) if a != b]
    assert changed == [("  epochs: 20", "  epochs: 3"), ("    lr: 1.0", "    lr: 0.5")]


# --- one machine -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parallel_run(module_dvc_repo) -> tuple[DvcRepo, subprocess.CompletedProcess]:
    """The whole pipeline in 2 workers in a fresh project, committed and tagged `baseline`."""
    repo = module_dvc_repo
    result = run_repro(repo, "--jobs", JOBS)
    assert result.returncode == 0, result.stdout + result.stderr
    repo.commit("parallel")
    repo.run("git", "tag", "baseline")
    return repo, result


@pytest.fixture
def parallel_repo(parallel_run) -> DvcRepo:
    """The parallel run's project, its workspace back at its baseline."""
    return at_baseline(parallel_run[0])


@pytest.mark.e2e
def test_parallel_run_leaves_the_serial_runs_bytes(parallel_run, pipeline_repo):
    repo, result = parallel_run
    threads = max(1, repro.available_cores() // int(JOBS))
    assert f"in {JOBS} worker(s), {threads} thread(s) each" in result.stdout
    assert_same_outputs(repo, pipeline_repo)


@pytest.mark.e2e
def test_parallel_run_trains_each_stage_once_and_the_final_repro_none(parallel_run):
    repo, result = parallel_run
    training = repro.training_stages(repo.params())
    upstream_out, _, rest = result.stdout.partition("training stage(s) to run in")
    training_out, _, final_out = rest.partition(f"{len(training)} of {len(training)} training")
    assert stages_run(upstream_out) == set(repro.UPSTREAM)
    assert Counter(started(training_out)) == Counter(training)
    assert len(re.findall(r"\] finished \S+ in [\d.]+ s \(ran\); \d+ remaining",
                          training_out)) == len(training)
    assert re.search(r"\] finished \S+ in [\d.]+ s \(ran\); 0 remaining", training_out)
    assert stages_run(final_out) == set(repro.FINAL)
    assert "final dvc repro ran figures, tables (no training stage)" in final_out
    for stage in training:   # each worker's own output, in its log
        log = (repo.path / repro.LOGS / f"{stage}.log").read_text()
        assert stages_run(log) == {stage}
    assert out_of_date(repo) == set()
    assert repo.run("git", "status", "--porcelain").stdout == ""
    assert "Data and pipelines are up to date" in repo.run("repro").stdout


@pytest.mark.e2e
@pytest.mark.slow
def test_a_failing_stage_lets_the_others_finish_and_a_rerun_completes_only_it(parallel_repo):
    repo = parallel_repo
    failing = "q2@ffn_lr1e-3-42"
    in_the_way = repo.path / "models/q2/ffn_lr1e-3"     # a file where its model's folder goes
    shutil.rmtree(in_the_way)
    in_the_way.write_text("")
    result = run_repro(repo, "--jobs", JOBS, "-S", "q2.ffn_lr1e-3.epochs=3",
                       "-S", "train.epochs=3", "-S", "q1.mlp.epochs=3")
    assert result.returncode == 1
    log = f"{repro.LOGS}/{failing}.log"
    assert result.stderr.splitlines()[-1] == (
        f"repro: 1 training stage(s) failed: {failing} (log {log}); the others are recorded in "
        f"dvc.lock, and running this again runs only what is missing")
    assert "Not a directory" in result.stderr             # the log's tail, shown
    assert sorted(started(result.stdout)) == sorted([failing, "train@42", "q1@mlp-42"])
    assert re.search(rf"FAILED   {failing} after .* \(exit \d+, log {re.escape(log)}\)",
                     result.stdout)
    assert re.search(r"finished train@42 in .* \(ran\)", result.stdout)
    assert re.search(r"finished q1@mlp-42 in .* \(ran\)", result.stdout)
    assert "final dvc repro" not in result.stdout        # figures and tables wait for every run
    assert out_of_date(repo) == {failing, *repro.FINAL}
    assert unrecorded_outputs(repo) == {}   # what is left of it is its run dvc.lock records
    assert_no_lock(repo)
    assert repo.run("exp", "list", "--name-only").stdout.strip() == ""   # nothing saved

    in_the_way.unlink()
    again = run_repro(repo, "-n", "three-epochs")
    assert again.returncode == 0, again.stdout + again.stderr
    assert started(again.stdout) == [failing]
    assert re.search(rf"finished {failing} in .* \(ran\)", again.stdout)
    assert stages_run(again.stdout) & {"train@42", "q1@mlp-42"} == set()
    assert "final dvc repro ran figures, tables (no training stage)" in again.stdout
    assert out_of_date(repo) == set()
    # -S changed one line per value, and the result is an experiment `dvc exp show` lists
    assert repo.run("git", "diff", "--numstat", "--", "params.yaml").stdout.split()[:2] == \
        ["3", "3"]
    shown = json.loads(repo.run("exp", "show", "--json").stdout)
    experiments = {rev["name"]: rev for entry in shown for group in entry.get("experiments") or []
                   for rev in group["revs"]}
    params = experiments["three-epochs"]["data"]["params"]["params.yaml"]["data"]
    assert params["train"]["epochs"] == params["q1"]["mlp"]["epochs"] == 3
    assert params["q2"]["ffn_lr1e-3"]["epochs"] == 3


def start_repro(repo: DvcRepo, *args: str) -> subprocess.Popen:
    cmd, env = command(repo, *args)
    return subprocess.Popen(cmd, cwd=repo.path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def read_until(proc: subprocess.Popen, pattern: str) -> str:
    """``proc``'s output up to and including the first line matching ``pattern``."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if re.search(pattern, line):
            return "".join(lines)
    raise AssertionError(f"no line matched {pattern!r}:\n{''.join(lines)}")


def stop(proc: subprocess.Popen, signum: int) -> tuple[str, str]:
    """Sends ``signum`` to ``proc`` alone, as a terminal's Ctrl-C or a CI runner's cancel
    would; returns the rest of its output once it exited, in seconds."""
    sent = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum
    assert time.monotonic() - sent < 30
    name = signal.Signals(signum).name
    assert re.search(rf"^repro: stopped by {name} after [\d.]+ s", err, flags=re.M), err
    assert err.rstrip().endswith("running this again runs only what is missing")
    return out, err


@pytest.mark.e2e
@pytest.mark.slow
def test_sigint_stops_every_worker_and_a_rerun_completes_only_what_is_missing(parallel_repo):
    repo = parallel_repo
    runs = ["train", "q2.ffn_lr1", "q2.ffn_lr1e-2", "q1.mlp"]   # epochs no run-cache holds
    targets = {"train@42", "q2@ffn_lr1-42", "q2@ffn_lr1e-2-42", "q1@mlp-42"}
    proc = start_repro(repo, "--jobs", JOBS,
                       *[arg for run in runs for arg in ("-S", f"{run}.epochs=4")])
    before = read_until(proc, r"\] finished ")      # a stage done, the next ones running
    out, err = stop(proc, signal.SIGINT)
    assert re.search(r"stopped by SIGINT after [\d.]+ s \(stopped [12] worker\(s\)\)", err)
    assert_no_lock(repo)
    assert unrecorded_outputs(repo) == {}
    assert_no_temporary_files(repo)
    finished = set(re.findall(r"\] finished (\S+)", before + out))
    missing = out_of_date(repo) - set(repro.FINAL)
    assert finished and missing and missing <= targets
    assert finished.isdisjoint(missing)

    again = run_repro(repo)
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(started(again.stdout)) == missing
    assert "final dvc repro ran figures, tables (no training stage)" in again.stdout
    assert out_of_date(repo) == set()


@pytest.mark.e2e
def test_sigterm_stops_the_upstream_repro_and_leaves_no_lock(parallel_repo):
    repo = parallel_repo
    proc = start_repro(repo, "-S", "train.epochs=5")    # check_params re-runs: params changed
    read_until(proc, r"^Running stage 'check_params'")
    stop(proc, signal.SIGTERM)
    assert_no_lock(repo)
    assert unrecorded_outputs(repo) == {}
    assert repo.params()["train"]["epochs"] == 5        # the edit stays, as `dvc exp run -S`'s


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
