"""End to end with the real `dvc`: faults leave nothing behind and lose nothing.

A stage killed at any write point leaves `git status` and `dvc status` as they were; a run name
that is not letters, digits, '_' and '-' never reaches a shell; a device or a memory need the
machine cannot meet stops `check_params` before DVC deletes an output; a read-only directory or
a full disk is one line, and the stage's outputs are all written or none; a corrupt cache object
is found by `scripts.verify`, removed, and recomputed by `dvc repro`.

The tests share one reproduced pipeline (conftest's `pipeline_repo`), each starting from its
committed baseline.
"""
from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml
from conftest import GIT_ENV, DvcRepo, stages_run

pytestmark = pytest.mark.e2e

# One stage of each kind (and what DVC runs for it, from dvc.lock).
STAGES = ["check_params", "fetch", "prepare", "train@42", "q1@perceptron-42", "boolean",
          "figures", "tables"]
CHECKED = "data/params_checked.txt"  # check_params' output
TABLES_OUTS = ["reports/tables.md", "metrics/summary.json", "reports/claims.md",
               "metrics/claims.json"]


@pytest.fixture
def repo(pipeline_repo: DvcRepo) -> DvcRepo:
    return pipeline_repo


def workspace(root: Path) -> dict[str, str]:
    """Every file outside .git and .dvc, with its MD5."""
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] not in (".git", ".dvc")}


def state(repo: DvcRepo) -> tuple[str, str, dict[str, str]]:
    return (repo.run("git", "status", "--porcelain").stdout, repo.run("status").stdout,
            workspace(repo.path))


def run_in(repo: DvcRepo, cmd: list[str], env: dict | None = None,
           file_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
    return subprocess.run(cmd, cwd=repo.path, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV, "PYTHONPATH": str(repo.path),
                               **(env or {})},
                          preexec_fn=limit if file_limit is not None else None)


def stage_cmd(repo: DvcRepo, stage: str) -> tuple[list[str], int]:
    """What DVC runs for ``stage``, and how many files it writes."""
    entry = yaml.safe_load((repo.path / "dvc.lock").read_text())["stages"][stage]
    n_files = sum(out.get("nfiles", 1) for out in entry["outs"])
    return [sys.executable if word == "python" else word for word in entry["cmd"].split()], \
        n_files


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` unwritable, for root too (an immutable directory), until the block ends."""
    root = os.geteuid() == 0
    subprocess.run(["chattr", "+i", str(path)] if root else ["chmod", "a-w", str(path)],
                   check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)] if root else ["chmod", "u+w", str(path)],
                       check=True)


@pytest.mark.slow
def test_a_stage_killed_at_each_write_point_leaves_git_and_dvc_as_before(repo):
    before = state(repo)
    assert before[:2] == ("", "Data and pipelines are up to date.\n")
    for stage in STAGES:
        cmd, n_files = stage_cmd(repo, stage)
        # a temporary file made and empty; every one written, none renamed; all but the last
        # renamed into place
        points = ["create:1", f"written:{n_files}"] + ([f"rename:{n_files}"] if n_files > 1
                                                       else [])
        for point in points:
            killed = run_in(repo, cmd, env={"HW1_KILL_AT": point})
            assert killed.returncode == -9, f"{stage} at {point}: {killed.stderr}"
            # every file byte for byte as before, and no other file: git and DVC see no change
            assert workspace(repo.path) == before[2], f"{stage} killed at {point}"
    assert state(repo) == before


def test_a_stage_killed_under_dvc_repro_leaves_no_stray_file_and_repro_recovers(repo):
    before = workspace(repo.path)
    killed = run_in(repo, [sys.executable, "-m", "dvc", "repro", "-f", "-s", "train@42"],
                    env={"HW1_KILL_AT": "written:2"})
    assert killed.returncode != 0
    left = workspace(repo.path)
    assert set(left) <= set(before)  # DVC removed the stage's outputs; nothing else appeared
    assert {p for p in before if p not in left} == {"models/train/42.pt",
                                                    "metrics/seeds/train/42.json",
                                                    "plots/seeds/train/42.csv"}
    recovered = repo.run("repro")  # train@42 from the run-cache, or run again
    assert stages_run(recovered.stdout) <= {"train@42"}  # figures, tables: deps unchanged
    assert repo.run("git", "status", "--porcelain").stdout == ""
    assert workspace(repo.path) == before


@pytest.mark.parametrize("name", ["x;touch PWNED;", "my run"])
def test_a_run_name_that_is_not_letters_digits_underscore_dash_stops_repro(repo, name):
    before = workspace(repo.path)
    params = repo.params()
    params["q2"][name] = dict(params["q2"]["ffn_lr1"])
    repo.write_params(params)
    failed = repo.run("repro", check=False)
    assert failed.returncode != 0
    assert (f"params.yaml is invalid: q2.{name}: a run name holds letters, digits, '_' and '-' "
            f"only") in failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    assert stages_run(failed.stdout) == {"check_params"}
    assert not list(repo.path.rglob("PWNED"))
    after = workspace(repo.path)
    assert after.pop("params.yaml") != before.pop("params.yaml")
    # every output byte for byte, but check_params' own, which DVC removes before running it
    before.pop(CHECKED)
    assert after == before


@pytest.mark.parametrize("override, message", [
    ("train.device=cuda", "train.device: device 'cuda' was asked for but CUDA is not available"),
    ("train.hidden_size=10000000", "train.hidden_size: run train needs about "),
    ("q1.mlp.hidden_size=10000000", "q1.mlp.hidden_size: run q1.mlp needs about "),
])
def test_a_run_the_machine_cannot_train_stops_repro_with_outputs_unchanged(repo, override,
                                                                         message):
    if override.endswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    before = workspace(repo.path)
    repo.set_params(override)
    failed = repo.run("repro", check=False)
    assert failed.returncode != 0
    assert f"params.yaml is invalid: {message}" in failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    assert stages_run(failed.stdout) == {"check_params"}
    after = workspace(repo.path)
    assert after.pop("params.yaml") != before.pop("params.yaml")
    # every output byte for byte, but check_params' own, which DVC removes before running it
    before.pop(CHECKED)
    assert after == before


def test_a_read_only_metrics_dir_is_one_line_and_the_stage_writes_all_or_nothing(repo):
    cmd, _ = stage_cmd(repo, "tables")
    before = workspace(repo.path)
    with read_only(repo.path / "metrics"):
        failed = run_in(repo, cmd)
    assert failed.returncode == 1
    assert failed.stderr.startswith("tables failed: cannot write metrics/summary.json: metrics "
                                    "is not writable (")
    assert failed.stderr.endswith("); make it writable (chmod u+w metrics) and run the stage "
                                  "again\n")
    assert workspace(repo.path) == before  # every output as it was: all or nothing

    for out in TABLES_OUTS:  # as DVC leaves them before it runs the stage
        (repo.path / out).unlink()
    for table in (repo.path / "reports/tables").iterdir():
        table.unlink()
    removed = workspace(repo.path)
    with read_only(repo.path / "metrics"):
        failed = run_in(repo, cmd)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1
    assert workspace(repo.path) == removed  # none written
    assert stages_run(repo.run("repro").stdout) <= {"tables"}  # run, or from the run-cache
    assert workspace(repo.path) == before


def test_a_full_disk_is_one_line_and_the_stage_writes_nothing(repo):
    cmd, _ = stage_cmd(repo, "tables")
    before = workspace(repo.path)
    size = (repo.path / "reports/tables.md").stat().st_size
    failed = run_in(repo, cmd, file_limit=size - 1)  # every file but tables.md fits
    assert failed.returncode == 1
    assert failed.stderr == ("tables failed: cannot write reports/tables.md: the file size limit "
                             "is reached (ulimit -f) (File too large); free space on its "
                             "filesystem and run the stage again\n")
    assert workspace(repo.path) == before


def flip_byte(path: Path) -> None:
    """One byte of ``path`` inverted, its modification time kept (as bit rot leaves it)."""
    stat = path.stat()
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.chmod(path, stat.st_mode)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_verify_finds_corrupt_cache_objects_removes_them_and_repro_recomputes_them(repo):
    lock = yaml.safe_load((repo.path / "dvc.lock").read_text())["stages"]
    md5 = {stage: next(o["md5"] for o in lock[stage]["outs"] if o["path"] == path)
           for stage, path in (("train@42", "models/train/42.pt"),
                               ("prepare", "data/prepared/octmnist.npz"))}
    objects = {stage: repo.path / ".dvc/cache/files/md5" / h[:2] / h[2:]
               for stage, h in md5.items()}
    before = workspace(repo.path)
    verify = [sys.executable, "-m", "scripts.verify"]
    assert run_in(repo, verify).returncode == 0
    for path in objects.values():
        flip_byte(path)
    # DVC trusts its cache: a checkout copies the corrupt model into the workspace
    (repo.path / "models/train/42.pt").unlink()
    repo.run("checkout")
    assert workspace(repo.path)["models/train/42.pt"] != before["models/train/42.pt"]
    # and so would a checkout of the prepared data: a stage reading it says what to run
    prepared = repo.path / "data/prepared/octmnist.npz"
    prepared.write_bytes(objects["prepare"].read_bytes())
    train = run_in(repo, stage_cmd(repo, "train@42")[0])
    assert train.returncode == 1
    assert train.stderr.startswith("train_torch failed: data/prepared/octmnist.npz is damaged "
                                   "or not the prepare stage's file (BadZipFile: Bad CRC-32")
    assert "run `python -m scripts.verify --remove-corrupt`" in train.stderr
    assert train.stderr.count("\n") == 1

    found = run_in(repo, verify)
    assert found.returncode == 1
    lines = found.stdout.splitlines()
    for stage, path in objects.items():
        assert any(line.startswith(f"cache {path.relative_to(repo.path)}: its bytes have MD5 ")
                   and line.endswith(f"of {stage})") for line in lines), lines
    for path in ("models/train/42.pt", "data/prepared/octmnist.npz"):
        assert any(line.startswith(f"workspace {path}: MD5 ")
                   and line.endswith("it holds a corrupt cache object's bytes")
                   for line in lines), lines
    assert len(lines) == 5  # four mismatches and what to do

    removed = run_in(repo, [*verify, "--remove-corrupt"])
    assert removed.returncode == 1
    assert not any(path.exists() for path in objects.values())
    assert not prepared.exists() and not (repo.path / "models/train/42.pt").exists()
    recomputed = repo.run("repro")
    assert stages_run(recomputed.stdout) == {"prepare", "train@42"}
    assert workspace(repo.path) == before  # the original bytes
    assert {stage: hashlib.md5(path.read_bytes()).hexdigest() for stage, path in
            objects.items()} == md5
    assert repo.run("git", "status", "--porcelain").stdout == ""
    assert run_in(repo, verify).returncode == 0
