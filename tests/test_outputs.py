"""The writers of hw1.outputs: temporary files where neither git nor DVC looks, leftovers of killed
processes swept, a transaction that renames all of a stage's outputs or none, and a full disk or
a read-only directory reported in one line naming the path."""
from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from hw1 import outputs
from hw1.outputs import OutputError, atomic_path, staged, transaction, write_bytes, write_text

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty DVC project (a `.dvc` directory) as the working directory."""
    (tmp_path / ".dvc").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def python(code: str, cwd: Path, env: dict | None = None,
           file_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          preexec_fn=limit if file_limit is not None else None)


def test_temporary_file_is_in_the_projects_dvc_tmp_and_gone_after_the_rename(project):
    with atomic_path("plots/seeds/train/42.csv") as tmp:
        assert tmp.parent == project / ".dvc/tmp/outputs"
        assert tmp.name.startswith(f".42.csv.{os.getpid()}.") and tmp.name.endswith(".tmp")
        tmp.write_text("epoch\n1\n")
    assert (project / "plots/seeds/train/42.csv").read_text() == "epoch\n1\n"
    assert files_under(project) == {"plots/seeds/train/42.csv"}


def test_outside_a_dvc_project_the_temporary_file_is_a_hidden_sibling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with atomic_path("out/x.txt") as tmp:
        assert tmp.parent == tmp_path / "out" and tmp.name.startswith(".x.txt.")
        tmp.write_text("x")
    assert files_under(tmp_path) == {"out/x.txt"}


def test_transaction_renames_every_output_only_at_its_end(project):
    write_text("a.txt", "old a")
    with transaction():
        write_text("a.txt", "new a")
        write_text("sub/b.txt", "new b")
        assert (project / "a.txt").read_text() == "old a"
        assert not (project / "sub/b.txt").exists()
        assert staged("sub/b.txt").read_text() == "new b"
    assert (project / "a.txt").read_text() == "new a"
    assert (project / "sub/b.txt").read_text() == "new b"
    assert files_under(project) == {"a.txt", "sub/b.txt"}


def test_transaction_that_fails_writes_nothing_and_leaves_no_temporary_file(project):
    write_text("a.txt", "old a")
    with pytest.raises(RuntimeError, match="training failed"), transaction():
        write_text("a.txt", "new a")
        write_text("b.txt", "new b")
        raise RuntimeError("training failed")
    assert (project / "a.txt").read_text() == "old a"
    assert files_under(project) == {"a.txt"}


@pytest.mark.parametrize("refused", [
    lambda src, dst: "c.txt" in (src.name, dst.name),  # c.txt cannot be moved at all
    lambda src, dst: dst.name == "c.txt" and not src.name.endswith(".old.tmp"),  # nor replaced
])
def test_a_rename_that_fails_puts_every_output_back(project, monkeypatch, refused):
    for name in ("a.txt", "b.txt", "c.txt"):
        write_text(name, f"old {name}")
    real_replace = os.replace

    def replace(src, dst):
        if refused(Path(src), Path(dst)):
            raise PermissionError(errno.EACCES, "Permission denied", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace)
    with pytest.raises(OutputError) as err, transaction():
        for name in ("a.txt", "b.txt", "c.txt"):
            write_text(name, f"new {name}")
    assert str(err.value) == ("cannot write c.txt: . is not writable (Permission denied); make it "
                              "writable (chmod u+w .) and run the stage again")
    assert {n: (project / n).read_text() for n in ("a.txt", "b.txt", "c.txt")} == \
        {"a.txt": "old a.txt", "b.txt": "old b.txt", "c.txt": "old c.txt"}
    assert files_under(project) == {"a.txt", "b.txt", "c.txt"}


def test_a_full_disk_is_one_line_naming_the_output(project, monkeypatch):
    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OutputError) as err, transaction():
        write_text("metrics/a.json", "{}")
    assert str(err.value) == ("cannot write metrics/a.json: the disk is full (No space left on "
                              "device); free space on its filesystem and run the stage again")
    monkeypatch.undo()
    assert files_under(project) == set()


def test_the_file_size_limit_is_one_line_and_leaves_nothing(project):
    proc = python("from hw1.outputs import *\n"
                  "try:\n    write_bytes('models/m.bin', b'x' * 100_000)\n"
                  "except OutputError as err:\n    print(err)", project, file_limit=50_000)
    assert proc.stdout == ("cannot write models/m.bin: the file size limit is reached (ulimit -f) "
                           "(File too large); free space on its filesystem and run the stage "
                           "again\n"), proc.stderr
    assert files_under(project) == set()


def test_an_unwritable_directory_is_named(project, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(OutputError) as err:
        write_bytes("metrics/seeds/x.json", b"{}")
    assert str(err.value) == ("cannot write metrics/seeds/x.json: metrics is not writable "
                              "(Permission denied); make it writable (chmod u+w metrics) and "
                              "run the stage again")


def test_a_killed_writer_leaves_its_file_only_in_dvc_tmp_and_the_next_write_sweeps_it(project):
    code = "from hw1.outputs import write_bytes; write_bytes('models/m.bin', b'model')"
    for point in ("create:1", "written:1", "rename:1"):
        killed = python(code, project, env={"HW1_KILL_AT": point})
        assert killed.returncode == -9, killed.stderr
        leftovers = list((project / ".dvc/tmp/outputs").iterdir())
        assert [p.name.startswith(".m.bin.") for p in leftovers] == [True]
        assert not (project / "models/m.bin").exists()
        assert python(code, project).returncode == 0
        assert list((project / ".dvc/tmp/outputs").iterdir()) == []
        assert (project / "models/m.bin").read_bytes() == b"model"
        (project / "models/m.bin").unlink()


def test_sweep_spares_the_files_of_live_processes(project):
    tmp_dir = project / ".dvc/tmp/outputs"
    tmp_dir.mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    alive = str(os.getppid())
    for pid in (gone, alive):
        (tmp_dir / f".42.pt.{pid}.abc123_x.tmp").write_bytes(b"partial")
    (tmp_dir / f".42.pt.{gone}.abc123_x.old.tmp").write_bytes(b"replaced")
    assert python("from hw1.outputs import write_bytes; write_bytes('x.bin', b'x')",
                  project).returncode == 0
    assert sorted(p.name for p in tmp_dir.iterdir()) == [f".42.pt.{alive}.abc123_x.tmp"]


def test_an_unwritable_temporary_directory_is_named(project, monkeypatch):
    def refuse(prefix, suffix, dir):
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}x{suffix}")

    monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError) as err:
        write_bytes("models/m.bin", b"model")
    assert str(err.value).startswith("cannot write models/m.bin: .dvc/tmp/outputs is not "
                                     "writable (Permission denied)")
