"""Reproduce the pipeline with every core of this machine, or one shard of it per CI runner or
cluster node, leaving the bytes a serial `dvc repro` leaves (measured training times aside).

    python -m scripts.repro [--jobs N] [-S key=value ...] [-n NAME]
        On this machine: `dvc repro check_params`; then `boolean`, which needs only that,
        in a worker of one thread beside `fetch` and `prepare`; then the training stages that
        are not up to date in N workers, longest first (each `dvc --wait-for-lock repro -s
        <stage>` with cores / N threads, started once its threads are free); then `dvc repro`,
        which runs `figures` and `tables` and no training stage. `-S` edits
        params.yaml as `dvc exp run -S` does, and the result is saved as an experiment
        (`dvc exp save`).

    python -m scripts.repro upstream [--write-plan FILE] [--shards K]
    python -m scripts.repro --shard I/K [--stages LIST]
    python -m scripts.repro assemble [--recompute-missing] [--jobs N]
        Across machines that share a DVC remote, in three steps: `upstream` runs the stages
        before training once and pushes them with the run-cache (--write-plan: and appends to
        FILE the training stages the remote cannot restore, `train=a,b`, and the shard numbers,
        `shards=[1,2]`, as GitHub's $GITHUB_OUTPUT reads them); shard I of K (K jobs at once)
        runs `dvc repro --pull` on its share of the training stages (--stages: of those only),
        balanced by estimated cost, and pushes them with the run-cache; `assemble` restores
        every training stage from the run-cache, runs figures and tables and pushes the
        result. It fails, naming them, when a training stage is in no shard's results, unless
        --recompute-missing trains them here. The remote is DVC_REMOTE_URL (with
        DVC_REMOTE_ENDPOINT for an S3-compatible store), added to .dvc/config.local as the
        default remote 'ci', or else the default remote.

    python -m scripts.repro plan DIR [--write-plan FILE] [--shards K]
        A pull request's review fanned out over shards without writing to the project's
        remote: restores what the remote holds (if there is one to use), reproduces the
        upstream stages and every training stage the run-cache restores, and plans the rest
        (as `upstream` does; shards only when two or more are to train). With shards it pushes
        every result here and the run-cache to the directory DIR: the shard jobs and then the
        review (`python -m scripts.review pr`) use DIR as their remote (DVC_REMOTE_URL=DIR).

Each worker's output goes to .dvc/tmp/repro/<stage>.log, shown when its stage fails. A failing
stage lets the others finish; SIGINT or SIGTERM stops every worker within seconds. Either way
the exit status is non-zero (130 / 143 for the signals), no output dvc.lock does not record is
left behind, and running the command again runs only what is missing. docs/parallel.md has the
sharded flow as a CI matrix, a Slurm job array and a Kubernetes indexed Job.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hw1.data import REAL_SIZES
from hw1.errors import UserError
from hw1.params import load_params, validate_seeds
from hw1.runs import RunId, pipeline_runs, run_params
from hw1.splits import N_CLASSES
from scripts import verify
from scripts.review import Remote, ReviewError, dvc_cause, no_remote_reason, remote_added

PROG = "repro"
# The stages every training stage needs (run first); those that need only the first of them,
# which run here in a worker beside the others (in the sharded flow, in the upstream job); and
# those that read every training stage's results (run last). Every other stage trains.
BEFORE = ("check_params", "fetch", "prepare")
BESIDE = ("boolean",)
UPSTREAM = (*BEFORE, *BESIDE)
FINAL = ("figures", "tables")
LOGS = Path(".dvc/tmp/repro")         # DVC's own scratch directory: ignored by git and DVC
STOP_GRACE_S = 8.0                    # SIGINT, then SIGTERM, then SIGKILL, this far apart
N_INPUTS = 28 * 28 + 1                # pixels and the bias feature
# The cost model of `estimated_cost`, fitted to the per-epoch times of benchmarks/ on full-size
# data, one thread (README, "Speed"): a PyTorch step costs a fixed 160 us, plus per example a
# time per weight that shrinks as the batch grows (a batch-16 matmul uses each weight less
# efficiently than a batch-256 one); a NumPy example a fixed 4 us plus 0.096 ns per weight.
TORCH_STEP_S, TORCH_WEIGHT_S = 160e-6, 0.336e-9
NUMPY_EXAMPLE_S, NUMPY_WEIGHT_S = 4e-6, 0.096e-9


class ReproError(UserError):
    """Ends the command: its message is printed as one line on stderr, exit status 1."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: every worker is stopped, the exit status 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def say(message: str, stream: TextIO | None = None) -> None:
    print(f"{PROG}: {message}", file=stream or sys.stdout, flush=True)


# --- the plan: which stages, how long each --------------------------------------------------

def training_stages(params: Mapping[str, Any]) -> list[str]:
    """Every training stage of params.yaml (``train@42``, ``q1@mlp-42``, ``q2@ffn_lr1-42``), by
    run, then seed."""
    seeds = validate_seeds(dict(params))
    return [run.seed_stage(seed) for run in pipeline_runs(params) for seed in seeds]


def run_of(stage: str) -> RunId:
    """``q2@ffn_lr1-42`` -> ``RunId("q2", "ffn_lr1")``."""
    run = stage.rsplit("-", 1)[0] if not stage.startswith("train@") else "train"
    return RunId.parse(run)


def model_weights(cfg: Mapping[str, Any]) -> int:
    """The number of weights of the model ``cfg`` describes."""
    if cfg["model"] in ("perceptron", "logistic_regression"):
        return N_INPUTS * N_CLASSES
    hidden = cfg["hidden_size"]
    layers = cfg.get("layers", 1)  # the NumPy MLP has one hidden layer
    return N_INPUTS * hidden + (layers - 1) * (hidden + 1) * hidden + (hidden + 1) * N_CLASSES


def estimated_cost(params: Mapping[str, Any], stage: str) -> float:
    """Estimated seconds ``stage`` trains on full-size data on one core, from params alone:
    epochs x training examples x the cost of one example at the run's batch size for its model
    (``TORCH_*``, ``NUMPY_*``; the Question 1 runs update per example).

    Deterministic and rough (a run that diverges stops early): it orders the stages longest
    first and balances the shards."""
    run = run_of(stage)
    cfg = run_params(params, run)
    weights = model_weights(cfg)
    if run.group == "q1":
        per_example = NUMPY_EXAMPLE_S + NUMPY_WEIGHT_S * weights
    else:
        batch = cfg["batch_size"]
        per_example = TORCH_STEP_S / batch + TORCH_WEIGHT_S * weights * batch ** (-1 / 3)
    return cfg["epochs"] * REAL_SIZES["train"] * per_example


def longest_first(params: Mapping[str, Any], stages: Iterable[str]) -> list[str]:
    """``stages`` by estimated cost, longest first, ties in params.yaml's order; those of
    ``BESIDE`` (short, training nothing) last."""
    order = {name: i for i, name in enumerate([*training_stages(params), *BESIDE])}
    return sorted(stages, key=lambda s: (s in BESIDE, 0.0 if s in BESIDE
                                         else -estimated_cost(params, s), order[s]))


def shards(params: Mapping[str, Any], k: int,
           stages: Sequence[str] | None = None) -> list[list[str]]:
    """The training ``stages`` (default: every one) in ``k`` shards of about equal estimated
    cost: greedy, longest first, each stage to the shard with the least so far (the
    lowest-numbered of equals)."""
    loads = [0.0] * k
    out: list[list[str]] = [[] for _ in range(k)]
    for stage in longest_first(params, training_stages(params) if stages is None else stages):
        i = loads.index(min(loads))
        out[i].append(stage)
        loads[i] += estimated_cost(params, stage)
    return out


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: shard 2 of 4, numbered from 1."""
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ReproError(f"--shard {text}: expected I/K with 1 <= I <= K, e.g. --shard 1/4")
    return int(match[1]), int(match[2])


def parse_stages(text: str, params: Mapping[str, Any]) -> list[str]:
    """``"train@42,q2@ffn_lr1-42"`` (commas or spaces) -> those training stages, each checked
    against params.yaml's."""
    names = [name for name in re.split(r"[,\s]+", text) if name]
    training = training_stages(params)
    unknown = [name for name in names if name not in training]
    if unknown:
        raise ReproError(f"--stages: {', '.join(unknown)} is no training stage of params.yaml; "
                         f"expected names such as {training[0]} (`dvc stage list`)")
    return names


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1


def threads_each(jobs: int, stages: int) -> int:
    """The threads of each worker when ``stages`` run in up to ``jobs`` workers."""
    return max(1, available_cores() // max(1, min(jobs, stages)))


def fits(running: Sequence[int], threads: int, jobs: int, cores: int) -> bool:
    """Whether a stage of ``threads`` threads may start beside workers of ``running`` threads:
    fewer than ``jobs`` run and the threads stay within ``cores`` (one starts when none
    runs). A training stage planned for every core waits for `boolean`, started before it with
    one thread, rather than share the cores with it."""
    return not running or (len(running) < jobs and sum(running) + threads <= cores)


# --- processes: each in its own process group, stopped together -----------------------------

LIVE: dict[int, subprocess.Popen] = {}   # every child still running, by pid


def dvc_command(*args: str) -> list[str]:
    """`dvc ARGS` of the interpreter running this, whatever the PATH holds."""
    return [sys.executable, "-m", "dvc", *args]


@dataclass
class Signals:
    """SIGINT and SIGTERM as ``Interrupted``, except while a child is started and registered:
    one arriving then is raised once the child is in ``LIVE``, so that no child escapes the
    stop (it runs in a session of its own: the signal does not reach it)."""
    deferred: bool = False
    pending: int | None = None

    def handler(self, signum: int, _frame: object) -> None:
        if self.deferred:
            self.pending = signum
        else:
            raise Interrupted(signum)

    @contextmanager
    def deferring(self) -> Iterator[None]:
        self.deferred = True
        try:
            yield
        finally:
            self.deferred = False
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)


SIGNALS = Signals()


def spawn(args: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: Any) \
        -> subprocess.Popen:
    """Starts ``args`` in a process group of its own (so a terminal's Ctrl-C reaches this
    process alone, which stops the groups in order) and registers it as live."""
    with SIGNALS.deferring():
        proc = subprocess.Popen(list(args), env=dict(env) if env else None,
                                start_new_session=True, **kwargs)
        LIVE[proc.pid] = proc
    return proc


def reap(proc: subprocess.Popen) -> None:
    LIVE.pop(proc.pid, None)


def stop_all() -> None:
    """Stops every live child's process group: SIGINT (DVC passes it to the stage, which exits,
    and DVC releases its locks), then SIGTERM, then SIGKILL, ``STOP_GRACE_S`` apart."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        procs = [p for p in LIVE.values() if p.poll() is None]
        if not procs:
            break
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    for proc in list(LIVE.values()):
        if proc.stdout:
            proc.stdout.close()
        reap(proc)


def stage_names(output: str) -> tuple[set[str], set[str]]:
    """(stages run, stages restored from the run-cache) in a `dvc repro` output."""
    ran = set(re.findall(r"^Running stage '([^']+)'", output, flags=re.M))
    restored = set(re.findall(r"^Stage '([^']+)' is cached", output, flags=re.M))
    return ran, restored


@dataclass
class Session:
    """What this command did to the workspace: the stages it started, for the clean-up."""
    touched: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> str:
        return f"[{time.monotonic() - self.started:6.1f} s]"

    def show(self, line: str, lines: list[str]) -> None:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
        self.touched |= set().union(*stage_names(line))

    def dvc(self, *args: str, beside: Pool | None = None) -> str:
        """`dvc ARGS`, its output shown as it comes; returns it. With ``beside``, that pool's
        workers go on meanwhile, their lines between DVC's. A failure raises ReproError naming
        the command and DVC's cause (once ``beside``'s workers have ended)."""
        lines: list[str] = []
        if beside is None:
            proc = spawn(dvc_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, bufsize=1)
            for line in proc.stdout:  # an interruption leaves the pipe open until `stop_all`
                self.show(line, lines)
            proc.wait()
            proc.stdout.close()
        else:
            LOGS.mkdir(parents=True, exist_ok=True)
            log = LOGS / "upstream.log"
            with open(log, "wb") as fh:
                proc = spawn(dvc_command(*args), stdout=fh, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
            with open(log, "rb") as src:
                buffer = b""
                while True:
                    ended = proc.poll() is not None
                    *complete, buffer = (buffer + src.read()).split(b"\n")
                    for raw in complete + ([buffer] if ended and buffer else []):
                        self.show(raw.decode(errors="replace") + "\n", lines)
                    if ended:
                        break
                    beside.step()
                    time.sleep(0.1)
        reap(proc)
        output = "".join(lines)
        if proc.returncode != 0:
            if beside is not None:
                beside.wait()
            raise ReproError(f"dvc {' '.join(args)} failed: {dvc_cause(output)}")
        return output


# --- the training stages in N workers -------------------------------------------------------

@dataclass
class Worker:
    stage: str
    proc: subprocess.Popen
    log: Path
    started: float
    threads: int


@dataclass
class Pool:
    """Stages in worker processes, each `dvc --wait-for-lock repro -s <stage>` with its threads
    in OMP_NUM_THREADS and its output in LOGS/<stage>.log: in the order added, at most ``jobs``
    at once, their threads within the cores (``fits``). A failed stage lets the others go on."""
    session: Session
    jobs: int
    waiting: list[tuple[str, int]] = field(default_factory=list)    # (stage, threads)
    planned: bool = False            # every stage to come is added: say how many remain
    running: list[Worker] = field(default_factory=list)
    failed: list[Worker] = field(default_factory=list)
    done: int = 0
    longest: tuple[str, float] = ("", 0.0)
    began: float = 0.0

    def add(self, stages: Iterable[str], threads: int) -> None:
        self.waiting += [(stage, threads) for stage in stages]

    def step(self) -> None:
        """Starts the waiting stages that fit, then reaps those that ended."""
        cores = available_cores()
        while self.waiting and fits([w.threads for w in self.running], self.waiting[0][1],
                                    self.jobs, cores):
            self.start(*self.waiting.pop(0))
        for worker in [w for w in self.running if w.proc.poll() is not None]:
            self.end(worker)

    def wait(self) -> None:
        """Runs every stage added; returns once all have ended."""
        while self.waiting or self.running:
            self.step()
            time.sleep(0.1)

    def start(self, stage: str, threads: int) -> None:
        if not (self.running or self.done or self.failed):
            self.began = time.monotonic()
        LOGS.mkdir(parents=True, exist_ok=True)
        log = LOGS / f"{stage}.log"
        self.session.touched.add(stage)
        with open(log, "w") as fh:
            proc = spawn(dvc_command("--wait-for-lock", "repro", "-s", stage),
                         env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                         stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.running.append(Worker(stage, proc, log, time.monotonic(), threads))
        say(f"{self.session.elapsed()} started  {stage}")

    def end(self, worker: Worker) -> None:
        self.running.remove(worker)
        reap(worker.proc)
        seconds = time.monotonic() - worker.started
        left = f"; {len(self.waiting) + len(self.running)} remaining" if self.planned else ""
        if worker.proc.returncode == 0:
            self.done += 1
            ran, restored = stage_names(worker.log.read_text())
            how = "restored from the run-cache" if worker.stage in restored else \
                "ran" if worker.stage in ran else "up to date"
            self.longest = max(self.longest, (worker.stage, seconds), key=lambda x: x[1])
            say(f"{self.session.elapsed()} finished {worker.stage} in {seconds:.1f} s ({how})"
                f"{left}")
        else:
            self.failed.append(worker)
            say(f"{self.session.elapsed()} FAILED   {worker.stage} after {seconds:.1f} s "
                f"(exit {worker.proc.returncode}, log {worker.log}){left}")


def out_of_date(stages: Sequence[str]) -> list[str]:
    """The ``stages`` that `dvc status` says are not up to date (dvc.lock does not record their
    outputs for their deps and params as they are)."""
    if not stages:
        return []
    proc = subprocess.run(dvc_command("--wait-for-lock", "status", "--json", *stages),
                          capture_output=True, text=True)   # a worker may hold the lock
    if proc.returncode != 0:
        raise ReproError(f"dvc status failed: {dvc_cause(proc.stdout + proc.stderr)}")
    status = json.loads(proc.stdout or "{}")
    return [s for s in stages if s in status]


def run_training(session: Session, params: Mapping[str, Any], stages: Sequence[str],
                 jobs: int, pool: Pool | None = None) -> None:
    """Runs ``stages`` (training stages, and those of ``BESIDE``) in ``jobs`` workers, longest
    first, beside what ``pool`` runs already; the others go on when one fails. Raises
    ReproError naming the pool's failed stages and their logs once every worker has ended."""
    pool = pool or Pool(session, jobs)
    todo = longest_first(params, stages)
    if todo:
        beside = [stage for stage in todo if stage in BESIDE]
        what = f"{len(todo) - len(beside)} training stage(s)" + \
            "".join(f" and {s}" for s in beside)
        threads = threads_each(jobs, len(todo))
        running = "".join(f", beside {w.stage}" for w in pool.running)
        say(f"{what} to run in {max(1, min(jobs, len(todo)))} worker(s), {threads} thread(s) "
            f"each{running}; each stage's output in {LOGS}/<stage>.log")
        pool.add(todo, threads)
    else:
        say("every training stage is up to date")
    pool.planned = True
    pool.wait()
    total = pool.done + len(pool.failed)
    if total:
        say(f"{pool.done} of {total} stage(s) in {time.monotonic() - pool.began:.1f} s; "
            f"longest {pool.longest[0] or '-'} ({pool.longest[1]:.1f} s)")
    if pool.failed:
        for worker in pool.failed:
            tail = worker.log.read_text().splitlines()[-15:]
            print(f"--- {worker.log} (last {len(tail)} lines)", *tail, sep="\n",
                  file=sys.stderr)
        names = ", ".join(f"{w.stage} (log {w.log})" for w in pool.failed)
        raise ReproError(f"{len(pool.failed)} stage(s) failed: {names}; the others are "
                         f"recorded in dvc.lock, and running this again runs only what is "
                         f"missing")


# --- what a stopped or failed run leaves ----------------------------------------------------

def remove_unrecorded(stages: Iterable[str]) -> list[str]:
    """Removes every output of ``stages`` whose file dvc.lock does not record (a stage stopped
    half-way, or one that failed after writing some outputs), as DVC itself removes a stage's
    outputs before running it; persistent outputs stay. Returns the paths removed."""
    from dvc.repo import Repo, lock_repo

    names = sorted(set(stages))
    if not names:
        return []
    removed = []
    with Repo() as repo, lock_repo(repo):
        persist = {str(out) for name in names for stage in repo.stage.collect(name)
                   for out in stage.outs if out.persist}
        for entries in repo.status(targets=names).values():
            for entry in entries:
                for path, state in (entry.get("changed outs") or {}).items():
                    if state in ("modified", "new") and path not in persist:
                        target = Path(repo.root_dir) / path
                        if target.is_dir():
                            shutil.rmtree(target)
                        else:
                            target.unlink(missing_ok=True)
                        removed.append(path)
    return sorted(removed)


def release_stale_locks() -> int:
    """Removes from DVC's stage lock file (.dvc/tmp/rwlock) the entries of dvc processes that
    no longer run: a worker stopped before it released its stages' outputs. DVC drops such
    entries itself, with a warning, the next time it locks them; this leaves none behind.
    Returns how many it removed."""
    import psutil
    from dvc.repo import Repo
    from dvc.rwlock import _edit_rwlock  # how DVC edits the file, under DVC's own guard

    def alive(info: Mapping[str, Any]) -> bool:
        return psutil.pid_exists(int(info["pid"]))

    removed = 0
    with Repo() as repo, _edit_rwlock(repo.tmp_dir, repo.fs,
                                      repo.config["core"].get("hardlink_lock", False)) as lock:
        for path, info in list(lock["write"].items()):
            if not alive(info):
                del lock["write"][path]
                removed += 1
        for path, infos in list(lock["read"].items()):
            kept = [info for info in infos if alive(info)]
            removed += len(infos) - len(kept)
            if kept:
                lock["read"][path] = kept
            else:
                del lock["read"][path]
    return removed


# --- the remote ------------------------------------------------------------------------------

@contextmanager
def remote_from(env: Mapping[str, str]) -> Iterator[None]:
    """DVC_REMOTE_URL (and DVC_REMOTE_ENDPOINT) as the default remote of .dvc/config.local while
    the block runs, as the review adds it; or else the project's default remote. ReproError if
    there is neither, or an s3:// remote without keys."""
    if env.get("DVC_REMOTE_URL"):
        reason = no_remote_reason(env)
        if reason:
            raise ReproError(f"cannot use the remote: {reason}")
        with remote_added(Remote.from_env(env)):
            yield
        return
    proc = subprocess.run(dvc_command("remote", "default"), capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ReproError("no DVC remote: set DVC_REMOTE_URL (and DVC_REMOTE_ENDPOINT for an "
                         "S3-compatible store), or add one with `dvc remote add -d`")
    yield


def push(session: Session) -> None:
    """Re-hashes the cache (scripts/verify.py: DVC pushes what it holds without re-hashing it),
    then `dvc push --run-cache`."""
    if verify.main([]) != 0:
        raise ReproError(f"not pushing: the cache holds corrupt objects (above); run "
                         f"`{verify.REMOVE}`, then this again")
    session.dvc("push", "--run-cache")


def not_in_run_cache(stages: Sequence[str], pullable: bool = True) -> list[str]:
    """The ``stages`` that `dvc repro` could neither pull by dvc.lock (``pullable``: there is a
    remote to pull from) nor restore from the local run-cache, with their deps and params as
    they are in the workspace.

    This is the look-up DVC makes before it runs a stage (`StageCache._load`, keyed by the
    stage's command, deps and params), made without running anything: `dvc repro --dry` cannot
    tell, as it does not hash the deps."""
    from dvc.repo import Repo, lock_repo

    missing = []
    with Repo() as repo, lock_repo(repo):
        for name in stages:
            for stage in repo.stage.collect(name):
                if not (stage.changed_deps() or stage.changed_stage()):
                    # dvc.lock records it as it is: its outputs are here, or pulled
                    if not pullable and stage.changed_outs():
                        missing.append(name)
                    continue
                stage.save_deps()
                if repo.stage_cache._load(stage) is None:
                    missing.append(name)
    return missing


# --- the commands ----------------------------------------------------------------------------

def apply_overrides(overrides: Sequence[str]) -> None:
    """``key=value`` edits to params.yaml as `dvc exp run -S` makes them (one line per value),
    each checked before the file is replaced."""
    from dvc.exceptions import DvcException
    from dvc.utils.hydra import apply_overrides as hydra_apply

    from hw1.outputs import write_bytes

    path = Path("params.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        for override in overrides:
            try:
                hydra_apply(str(copy), [override])
            except DvcException as err:
                cause = str(err.__cause__ or err).splitlines()[0]
                raise ReproError(f"-S {override}: {cause}; expected key=value with a key of "
                                 f"params.yaml, e.g. -S train.lr=0.01") from None
        write_bytes(path, copy.read_bytes())


def final_repro(session: Session, training: Sequence[str], *args: str,
                allowed: Iterable[str] = ()) -> None:
    """`dvc repro ARGS` of the whole pipeline; ReproError if it ran a training stage (other
    than ``allowed``): every one must have been recorded or restored before."""
    ran, _ = stage_names(session.dvc("repro", *args))
    trained = sorted((ran & set(training)) - set(allowed))
    if trained:
        raise ReproError(f"the final dvc repro ran training stage(s) {', '.join(trained)}, "
                         f"which should have been up to date")
    say(f"final dvc repro ran {', '.join(sorted(ran)) or 'nothing'} (no training stage)")


def reproduce_here(session: Session, jobs: int, overrides: Sequence[str],
                   name: str | None) -> None:
    if overrides:
        apply_overrides(overrides)
    session.dvc("repro", BEFORE[0])
    params = load_params()
    training = training_stages(params)
    # what needs only check_params starts now, in a worker of one thread beside the rest of
    # the stages before training, where a second core would otherwise wait
    early = out_of_date(BESIDE) if min(jobs, available_cores()) > 1 else []
    pool = Pool(session, jobs)
    if early:
        say(f"{' and '.join(early)} to run beside {' and '.join(BEFORE[1:])}, 1 thread; "
            f"its output in {LOGS}/<stage>.log")
        pool.add(early, 1)
        pool.step()
    session.dvc("--wait-for-lock", "repro", "-s", *BEFORE[1:], beside=pool)
    stale = out_of_date([*(s for s in BESIDE if s not in early), *training])
    run_training(session, params, stale, jobs, pool)
    final_repro(session, training)
    if overrides or name:
        saved = session.dvc("exp", "save", *(["--name", name] if name else []))
        say(f"{saved.strip().splitlines()[-1]} (`dvc exp show` lists it)")


def write_plan(path: Path | None, train: Sequence[str], k: int, fan_out_from: int = 1) -> None:
    """Appends the plan to ``path`` as GitHub Actions reads a step's outputs ($GITHUB_OUTPUT):
    ``train=`` the training stages to train, comma-separated, and ``shards=`` the JSON list of
    shard numbers 1..K for a job matrix: K = min(``k``, stages), none when fewer than
    ``fan_out_from`` stages are to train."""
    n = min(k, len(train)) if len(train) >= fan_out_from else 0
    say(f"{len(train)} training stage(s) to train"
        + (f" ({', '.join(train)})" if train else "") + f"; {n} shard job(s)")
    if path is not None:
        with open(path, "a") as fh:
            fh.write(f"train={','.join(train)}\nshards={json.dumps(list(range(1, n + 1)))}\n")


def to_train(pullable: bool) -> tuple[list[str], list[str]]:
    """(every training stage not up to date here, those of them a `dvc repro` would train:
    neither restorable by dvc.lock, ``pullable`` from a remote, nor from the run-cache)."""
    stale = out_of_date(training_stages(load_params()))
    return stale, not_in_run_cache(stale, pullable)


def upstream(session: Session, plan: Path | None = None, k: int = 1) -> None:
    session.dvc("repro", "--pull", *UPSTREAM)
    if plan is not None:
        write_plan(plan, to_train(pullable=True)[1], k)
    push(session)


def usable_remote(env: Mapping[str, str]) -> str | None:
    """Why there is no remote to use (``remote_from`` would refuse it); None when there is."""
    if env.get("DVC_REMOTE_URL"):
        return no_remote_reason(env) or Remote.from_env(env).missing_directory()
    proc = subprocess.run(dvc_command("remote", "default"), capture_output=True, text=True)
    return None if proc.returncode == 0 and proc.stdout.strip() else "no DVC remote"


def plan(session: Session, scratch: Path, k: int, plan_file: Path | None,
         env: Mapping[str, str]) -> None:
    """A pull request's fan-out: restores what the remote holds (none: say why, and plan as
    without one), reproduces the upstream stages, restores every training stage the run-cache
    has, and writes the plan of the rest (``write_plan``: shards when two or more). When there
    are shards, pushes every result here, with the run-cache, to the directory remote
    ``scratch``, which the shard jobs and the review then use as their only remote: nothing is
    written to the project's remote."""
    reason = usable_remote(env)
    with remote_from(env) if reason is None else nullcontext():
        if reason is None:
            try:
                session.dvc("pull", "--allow-missing")
            except ReproError as err:   # unreachable, refused: as the review, without it
                reason = str(err)
        if reason:
            say(f"planning without the remote: {reason}")
        pull = [] if reason else ["--pull"]
        session.dvc("repro", *pull, *UPSTREAM)
        stale, train = to_train(pullable=reason is None)
        restorable = [stage for stage in stale if stage not in train]
        if restorable:
            ran, _ = stage_names(session.dvc("repro", *pull, *restorable))
            if ran & set(restorable):
                say(f"trained here, as the remote lacked their outputs: "
                    f"{', '.join(stage for stage in restorable if stage in ran)}")
        write_plan(plan_file, train, k, fan_out_from=2)
        if len(train) < 2:
            return
        scratch.mkdir(parents=True, exist_ok=True)
        with remote_added(Remote(str(scratch.resolve()), name="scratch")):
            push(session)


def shard(session: Session, index: int, k: int, stages: Sequence[str] | None = None) -> None:
    params = load_params()
    mine = shards(params, k, stages)[index - 1]
    if not mine:
        say(f"shard {index}/{k} has no training stage "
            f"({len(training_stages(params) if stages is None else stages)} in all)")
        return
    say(f"shard {index}/{k}: {', '.join(mine)}")
    ran, _ = stage_names(session.dvc("repro", "--pull", *mine))
    push(session)
    say(f"shard {index}/{k}: {len(ran & set(mine))} trained, "
        f"{len(set(mine) - ran)} restored or up to date")


def unrestorable(session: Session) -> tuple[list[str], list[str]]:
    """Restores the upstream stages from the remote (`dvc repro --pull`, which also fetches the
    remote's run-cache); returns every training stage and those the remote cannot restore,
    which a `dvc repro --pull` would train."""
    session.dvc("repro", "--pull", *UPSTREAM)
    training = training_stages(load_params())
    return training, not_in_run_cache(training)


def assemble(session: Session, recompute: bool, jobs: int) -> None:
    training, missing = unrestorable(session)
    if missing and not recompute:
        raise ReproError(f"no shard produced {len(missing)} training stage(s): "
                         f"{', '.join(missing)}; run their shard jobs again, or pass "
                         f"--recompute-missing to train them here")
    params = load_params()
    present = [s for s in training if s not in missing]
    if present:
        ran, _ = stage_names(session.dvc("repro", "--pull", *present))
        if ran & set(present):
            say(f"trained here, as the remote lacked their outputs: "
                f"{', '.join(s for s in present if s in ran)}")
    if missing:
        say(f"recomputing {len(missing)} training stage(s) no shard produced")
        run_training(session, params, out_of_date(missing), jobs)
    final_repro(session, training, "--pull")
    push(session)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.repro", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", nargs="?", choices=("upstream", "plan", "assemble"),
                        help="a step of the sharded flow (default: everything, here)")
    parser.add_argument("scratch", nargs="?", type=Path,
                        help="plan: the directory remote the fan-out's jobs share")
    parser.add_argument("-j", "--jobs", type=int, default=available_cores(),
                        help="training stages at once (default: the cores, %(default)s)")
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="params.yaml edit, as `dvc exp run -S`")
    parser.add_argument("-n", "--name", help="the experiment's name (`dvc exp save -n`)")
    parser.add_argument("--shard", metavar="I/K", help="run shard I of K of the training "
                                                      "stages and push them")
    parser.add_argument("--stages", metavar="LIST",
                        help="--shard: split these training stages (commas), not every one")
    parser.add_argument("--shards", type=int, default=4, metavar="K",
                        help="upstream, plan: the most shard jobs to plan (default 4)")
    parser.add_argument("--write-plan", type=Path, metavar="FILE",
                        help="upstream, plan: append train=... and shards=[...] to FILE "
                             "(in GitHub Actions: $GITHUB_OUTPUT)")
    parser.add_argument("--recompute-missing", action="store_true",
                        help="assemble: train here what no shard produced")
    args = parser.parse_args(argv)
    if (args.step == "plan") != (args.scratch is not None):
        parser.error("plan takes the directory of its scratch remote, e.g. plan ../pr-remote; "
                     "no other step does")
    if args.stages is not None and not args.shard:
        parser.error("--stages applies to --shard only")
    if args.write_plan is not None and args.step not in ("upstream", "plan"):
        parser.error("--write-plan applies to upstream and plan only")
    if args.shards < 1:
        parser.error(f"--shards {args.shards}: give at least 1")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: give at least 1")
    if args.step and args.shard:
        parser.error(f"--shard runs a shard of its own: use it without '{args.step}'")
    if (args.step or args.shard) and (args.overrides or args.name):
        parser.error("-S and --name apply to a run on this machine: in the sharded flow every "
                     "job reproduces the committed params.yaml")
    if args.recompute_missing and args.step != "assemble":
        parser.error("--recompute-missing applies to assemble only")
    return args


def ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    session = Session()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, SIGNALS.handler)
    try:
        if args.shard or args.step:
            index_k = parse_shard(args.shard) if args.shard else None
            if args.step == "plan":
                plan(session, args.scratch, args.shards, args.write_plan, env)
            else:
                with remote_from(env):
                    if index_k:
                        stages = (None if args.stages is None
                                  else parse_stages(args.stages, load_params()))
                        shard(session, *index_k, stages)
                    elif args.step == "upstream":
                        upstream(session, args.write_plan, args.shards)
                    else:
                        assemble(session, args.recompute_missing, args.jobs)
        else:
            reproduce_here(session, args.jobs, args.overrides, args.name)
        return 0
    except (UserError, ReviewError) as err:
        ignore_signals()                           # the clean-up takes a few seconds
        stop_all()
        release_stale_locks()
        removed = remove_unrecorded(session.touched)
        if removed:
            say(f"removed {len(removed)} output(s) dvc.lock does not record", sys.stderr)
        say(str(err), sys.stderr)
        return 1
    except Interrupted as stop:
        ignore_signals()                           # a second Ctrl-C waits for the clean-up
        running = sorted(p.args[-1] for p in LIVE.values() if p.poll() is None)
        stop_all()
        release_stale_locks()
        removed = remove_unrecorded(session.touched)
        say(f"stopped by {stop} after {time.monotonic() - session.started:.1f} s"
            + (f" (stopped {len(running)} worker(s))" if running else "")
            + (f"; removed {len(removed)} output(s) dvc.lock does not record" if removed
               else "") + "; running this again runs only what is missing", sys.stderr)
        return 128 + stop.signum


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    sys.exit(main())
