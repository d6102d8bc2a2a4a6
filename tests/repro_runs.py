"""What the tests of scripts/repro.py share (tests/test_parallel.py, tests/test_shards.py): the
command run in a test project, and a run's outputs compared byte for byte with a serial
`dvc repro`'s, measured training times aside."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

from conftest import GIT_ENV, DvcRepo

JOBS = "2"
TIME_CLAIM = "table4_batch16_vs_1024"   # compares training seconds
OUTPUT_DIRS = ("data", "models", "metrics", "plots", "reports")


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
        held = json.loads(rwlock.read_text())
        assert all(not entries for entries in held.values()), held
    assert "Unable to acquire lock" not in repo.run("status").stderr


def assert_no_temporary_files(repo: DvcRepo) -> None:
    leftovers = [p for name in OUTPUT_DIRS for p in (repo.path / name).rglob(".*.tmp")]
    assert leftovers == []
