"""scripts/repro.py on one machine: the plan (stages, their order, shards, the command line),
then the pipeline in parallel workers with the real `dvc` on the small synthetic project, its
outputs compared byte for byte with a serial `dvc repro`'s (the session's `pipeline_baseline`);
a failing stage, SIGINT and SIGTERM. The sharded flow is in tests/test_shards.py.

The parallel run here has 2 workers of cores / 2 threads each, the serial run all cores, so on a
machine with 2 cores or more the comparison also shows that a run's bytes do not depend on its
thread count (the batch-256 and batch-1024 runs train on every core they are given).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter

import pytest
import yaml
from conftest import REPO, DvcRepo, at_baseline, stages_run, tag_baseline
from repro_runs import (
    JOBS,
    assert_no_lock,
    assert_no_temporary_files,
    assert_same_outputs,
    command,
    out_of_date,
    run_repro,
    started,
    unrecorded_outputs,
)

from scripts import repro

# --- the plan (no dvc) -----------------------------------------------------------------------

def test_every_stage_of_dvc_yaml_is_upstream_training_or_final():
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert stages == {*repro.UPSTREAM, *repro.FINAL, "train", "q1", "q2"}
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    names = repro.training_stages(params)
    assert len(names) == len(set(names)) == 15 * len(params["seeds"])
    assert {repro.run_of(name).stage for name in names} == \
        {"train", *(f"q1@{r}" for r in params["q1"]), *(f"q2@{r}" for r in params["q2"])}


def test_the_stages_beside_training_need_only_check_params_and_feed_only_the_final_ones():
    """What lets `boolean` run in the workers beside the training stages, before or after any
    of them."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]

    def paths(name: str, *keys: str) -> set[str]:
        entries = [e for key in keys for e in stages[name].get(key) or []]
        return {e if isinstance(e, str) else next(iter(e)) for e in entries}

    def outs(name: str) -> set[str]:
        return paths(name, "outs", "metrics", "plots")

    assert repro.UPSTREAM == (*repro.BEFORE, *repro.BESIDE)
    for name in repro.BESIDE:
        assert {other for other in stages if outs(other) & paths(name, "deps")} == \
            {"check_params"}
        assert {other for other in stages if paths(other, "deps") & outs(name)} <= \
            set(repro.FINAL)


def test_the_stages_beside_training_come_last_in_a_pool_with_the_training_stages():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    training = repro.training_stages(params)
    assert repro.longest_first(params, [*repro.BESIDE, *training]) == \
        [*repro.longest_first(params, training), *repro.BESIDE]


@pytest.mark.parametrize("cores, jobs, n_training, already, starts", [
    (2, 2, 15, 0, True),     # one thread each: the first starts beside boolean
    (2, 2, 15, 1, False),    # two workers busy
    (2, 2, 1, 0, False),     # the one run, planned for both cores, waits for boolean
    (16, 16, 15, 14, True),  # the last of 15 one-thread runs, beside boolean
    (16, 8, 3, 2, True),     # 5 threads each: 3 x 5 + 1 = 16
    (16, 8, 4, 3, False),    # 4 threads each: the fourth waits for boolean (17 > 16)
])
def test_a_training_stage_starts_beside_boolean_only_within_the_jobs_and_cores(
        monkeypatch, cores, jobs, n_training, already, starts):
    monkeypatch.setattr(repro, "available_cores", lambda: cores)
    threads = repro.threads_each(jobs, n_training)
    running = [1, *[threads] * already]       # boolean, and the training stages started
    assert repro.fits(running, threads, jobs, cores) == starts
    assert repro.fits(running[1:], threads, jobs, cores)   # without boolean, each one starts
    assert repro.fits([], cores, jobs, cores)              # alone, a stage may use every core


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


def test_stale_lock_entries_of_dead_dvc_processes_are_released_and_live_ones_kept(
        tmp_path, monkeypatch):
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = {"pid": os.getpid(), "cmd": "dvc repro -s b"}
    gone = {"pid": dead.pid, "cmd": "dvc repro -s a"}
    rwlock = tmp_path / ".dvc/tmp/rwlock"
    rwlock.parent.mkdir(exist_ok=True)
    rwlock.write_text(json.dumps({
        "write": {"/w/models/a": gone, "/w/models/b": live},
        "read": {"/w/data/prepared": [gone, live], "/w/params.yaml": [gone]}}))
    monkeypatch.chdir(tmp_path)
    assert repro.release_stale_locks() == 3
    assert json.loads(rwlock.read_text()) == {
        "write": {"/w/models/b": live}, "read": {"/w/data/prepared": [live]}}
    assert repro.release_stale_locks() == 0


# --- one machine -----------------------------------------------------------------------------

def test_a_dvc_command_failing_beside_a_worker_raises_once_the_worker_has_finished(
        tmp_path, monkeypatch, capsys):
    """As `fetch` and `prepare` run beside `boolean`: a failure of theirs lets it finish."""
    monkeypatch.chdir(tmp_path)
    subprocess.run(repro.dvc_command("init", "--no-scm", "-q"), check=True)
    slow = "import pathlib, time; time.sleep(5); pathlib.Path('slow.txt').write_text('done')"
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "slow": {"cmd": f'python -c "{slow}"', "outs": ["slow.txt"]},
        "bad": {"cmd": 'python -c "raise SystemExit(3)"'}}}))
    session = repro.Session()
    pool = repro.Pool(session, jobs=2)
    pool.add(["slow"], 1)
    pool.step()
    with pytest.raises(repro.ReproError, match=r"^dvc --wait-for-lock repro -s bad failed: "):
        session.dvc("--wait-for-lock", "repro", "-s", "bad", beside=pool)
    assert (pool.done, pool.running, pool.failed, repro.LIVE) == (1, [], [], {})
    assert (tmp_path / "slow.txt").read_text() == "done"
    out = capsys.readouterr().out
    assert out.index("Running stage 'bad'") < out.index("finished slow in")
    assert session.touched == {"slow", "bad"}


@pytest.fixture(scope="module")
def parallel_run(module_dvc_repo) -> tuple[DvcRepo, subprocess.CompletedProcess]:
    """The whole pipeline in 2 workers in a fresh project, committed and tagged `baseline`."""
    repo = module_dvc_repo
    result = run_repro(repo, "--jobs", JOBS)
    assert result.returncode == 0, result.stdout + result.stderr
    tag_baseline(repo, "parallel")
    return repo, result


@pytest.fixture
def parallel_repo(parallel_run) -> DvcRepo:
    """The parallel run's project, its workspace back at its baseline."""
    return at_baseline(parallel_run[0])


@pytest.mark.e2e
def test_parallel_run_trains_each_stage_once_and_the_final_repro_none(parallel_run):
    repo, result = parallel_run
    training = repro.training_stages(repo.params())
    pool = [*training, *repro.BESIDE]
    upstream_out, _, rest = result.stdout.partition(
        f"{len(training)} training stage(s) to run in")
    training_out, _, final_out = rest.partition(f"{len(pool)} of {len(pool)} stage(s)")
    assert stages_run(upstream_out) == set(repro.BEFORE)
    # boolean starts once check_params is done, beside fetch and prepare
    assert "repro: boolean to run beside fetch and prepare, 1 thread" in upstream_out
    assert started(upstream_out) == ["boolean"]
    assert upstream_out.index("started  boolean") < upstream_out.index("Running stage 'fetch'")
    assert Counter(started(training_out)) == Counter(training)
    finished = re.findall(r"\] finished (\S+) in [\d.]+ s \(ran\)", upstream_out + training_out)
    assert Counter(finished) == Counter(pool)
    assert re.search(r"\] finished \S+ in [\d.]+ s \(ran\); 0 remaining", training_out)
    assert stages_run(final_out) == set(repro.FINAL)
    assert "final dvc repro ran figures, tables (no training stage)" in final_out
    for stage in pool:       # each worker's own output, in its log
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
        f"repro: 1 stage(s) failed: {failing} (log {log}); the others are recorded in "
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


@pytest.mark.e2e
def test_parallel_run_leaves_the_serial_runs_bytes(parallel_run, parallel_repo, pipeline_repo):
    """Last of the module's end-to-end tests: by then another xdist worker has built the
    serial baseline (``pipeline_repo``), which this one would otherwise wait for."""
    result = parallel_run[1]
    threads = max(1, repro.available_cores() // int(JOBS))
    assert f"in {JOBS} worker(s), {threads} thread(s) each" in result.stdout
    assert_same_outputs(parallel_repo, pipeline_repo)


def test_shards_of_given_stages_split_those_alone_balanced():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    some = ["q1@perceptron-42", "q2@ffn_bs256_e150-42", "train@42", "q2@ffn_lr1-42"]
    split = repro.shards(params, 2, some)
    assert sorted(s for shard in split for s in shard) == sorted(some)
    assert split[0][0] == "q2@ffn_bs256_e150-42"        # the longest alone against the rest
    assert set(split[1]) == {"train@42", "q2@ffn_lr1-42", "q1@perceptron-42"}


def test_stages_are_checked_against_params_yaml():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert repro.parse_stages("train@42, q2@ffn_lr1-42", params) == ["train@42", "q2@ffn_lr1-42"]
    assert repro.parse_stages("", params) == []
    with pytest.raises(repro.ReproError, match=r"^--stages: train@7, tables is no training "
                                               r"stage of params.yaml; expected names such as "
                                               r"train@42"):
        repro.parse_stages("train@42,train@7,tables", params)


@pytest.mark.parametrize("train, k, fan_out_from, written", [
    (["a@1", "b@1", "c@1"], 4, 1, "train=a@1,b@1,c@1\nshards=[1, 2, 3]\n"),
    (["a@1", "b@1", "c@1"], 2, 1, "train=a@1,b@1,c@1\nshards=[1, 2]\n"),
    (["a@1"], 4, 1, "train=a@1\nshards=[1]\n"),
    (["a@1"], 4, 2, "train=a@1\nshards=[]\n"),        # a review fans out from two stages
    ([], 4, 1, "train=\nshards=[]\n"),
])
def test_the_plan_is_appended_as_github_step_outputs(tmp_path, capsys, train, k, fan_out_from,
                                                     written):
    path = tmp_path / "github_output"
    path.write_text("earlier=1\n")
    repro.write_plan(path, train, k, fan_out_from)
    assert path.read_text() == "earlier=1\n" + written
    shards = json.loads(written.splitlines()[1].split("=")[1])
    assert capsys.readouterr().out == (f"repro: {len(train)} training stage(s) to train"
                                       + (f" ({', '.join(train)})" if train else "")
                                       + f"; {len(shards)} shard job(s)\n")


@pytest.mark.parametrize("args, message", [
    (["plan"], "plan takes the directory of its scratch remote"),
    (["upstream", "dir"], "plan takes the directory of its scratch remote"),
    (["--stages", "train@42"], "--stages applies to --shard only"),
    (["assemble", "--write-plan", "x"], "--write-plan applies to upstream and plan only"),
    (["upstream", "--shards", "0"], "--shards 0: give at least 1"),
])
def test_a_misused_plan_command_line_says_what_is_wrong(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        repro.parse_args(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_signal_while_a_worker_starts_is_raised_once_it_is_registered():
    signals = repro.Signals()
    with pytest.raises(repro.Interrupted) as stopped:
        with signals.deferring():
            signals.handler(signal.SIGINT, None)     # arrives between start and registration
            registered = True                        # the block still runs to its end
    assert registered and stopped.value.signum == signal.SIGINT
    with pytest.raises(repro.Interrupted):
        signals.handler(signal.SIGTERM, None)        # at any other time: at once
