"""The test harness itself: `run_module` gives what ``python -m`` gives, a test that runs `dvc`
without the `e2e` mark is refused, the longest files are scheduled first, and `at_baseline`
leaves no run-cache entry of an earlier test behind."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import (
    LONGEST_FIRST,
    at_baseline,
    longest_first,
    run_module,
    stages_run,
    unmarked_e2e,
)

MODULE = '''\
import os, sys, warnings


def main(what):
    print("argv", sys.argv[1:], "cwd", os.path.basename(os.getcwd()))
    os.environ["HARNESS_LEFT_BEHIND"] = "1"
    if what == "warn":
        warnings.warn("numbers overflowed", RuntimeWarning)
        warnings.warn("old API", DeprecationWarning)   # shown: __main__'s own
        import harness_pkg.helper
    elif what == "text":
        sys.exit("stage failed: one line")
    elif what == "code":
        sys.exit(3)
    elif what == "bug":
        raise ValueError("a bug, with its traceback")
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
'''


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package `harness_pkg` with a module `main` (``MODULE``) importable from ``tmp_path``,
    and a working directory ``tmp_path/work``."""
    pkg = tmp_path / "harness_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text(MODULE)
    (pkg / "helper.py").write_text(   # hidden: a DeprecationWarning outside __main__
        "import warnings\nwarnings.warn('deprecated helper', DeprecationWarning)\n")
    (tmp_path / "work").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [name for name in sys.modules if name.split(".")[0] == "harness_pkg"]:
        del sys.modules[name]   # the next test's package lives in another directory


def python_m(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run([sys.executable, "-m", "harness_pkg.main", *args], cwd=root / "work",
                          env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True)


@pytest.mark.parametrize("what", ["ok", "warn", "text", "code"])
def test_run_module_gives_the_interpreters_status_and_output(package, what):
    mine = run_module("harness_pkg.main", what, cwd=package / "work")
    real = python_m(package, what)
    assert (mine.returncode, mine.stdout, mine.stderr) == \
        (real.returncode, real.stdout, real.stderr)
    assert mine.returncode == {"ok": 0, "warn": 0, "text": 1, "code": 3}[what]
    if what == "warn":
        assert "RuntimeWarning: numbers overflowed" in mine.stderr
        assert "old API" in mine.stderr and "deprecated helper" not in mine.stderr
    if what == "text":
        assert mine.stderr == "stage failed: one line\n"


def test_run_module_shows_an_uncaught_exception_with_its_traceback(package):
    mine = run_module("harness_pkg.main", "bug", cwd=package / "work")
    real = python_m(package, "bug")
    assert mine.returncode == real.returncode == 1
    for proc in (mine, real):
        lines = proc.stderr.splitlines()
        assert lines[0] == "Traceback (most recent call last):"
        assert lines[-1] == "ValueError: a bug, with its traceback"


def test_run_module_restores_the_directory_argv_environment_and_module(package):
    import harness_pkg.main  # noqa: F401 (in sys.modules, as a test's import puts it)
    before = (os.getcwd(), list(sys.argv), dict(os.environ), sys.modules["harness_pkg.main"])
    run_module("harness_pkg.main", "text", cwd=package / "work")
    assert (os.getcwd(), sys.argv, dict(os.environ), sys.modules["harness_pkg.main"]) == before


def test_a_test_using_a_dvc_fixture_must_be_marked_e2e():
    def item(nodeid: str, fixtures: tuple[str, ...], e2e: bool) -> SimpleNamespace:
        return SimpleNamespace(nodeid=nodeid, fixturenames=fixtures,
                               get_closest_marker=lambda name: object() if e2e else None)

    items = [item("t.py::marked", ("tmp_path", "pipeline_repo", "pipeline_baseline"), True),
             item("t.py::unit", ("tmp_path",), False),
             item("t.py::unmarked", ("pipeline_repo", "pipeline_baseline"), False),
             item("t.py::other", ("dvc_repo", "tmp_path"), False)]
    assert unmarked_e2e(items) == [
        "t.py::unmarked uses the pipeline_baseline fixture, which runs `dvc`: mark it "
        "@pytest.mark.e2e",
        "t.py::other uses the dvc_repo fixture, which runs `dvc`: mark it @pytest.mark.e2e"]


def test_the_longest_files_are_scheduled_first_and_the_rest_as_collected():
    assert all((Path(__file__).parent / name).is_file() for name in LONGEST_FIRST)
    items = [SimpleNamespace(path=Path(f"tests/{name}"), name=name)
             for name in ("test_a.py", LONGEST_FIRST[1], "test_b.py", LONGEST_FIRST[0])]
    assert [item.name for item in longest_first(items)] == \
        [LONGEST_FIRST[0], LONGEST_FIRST[1], "test_a.py", "test_b.py"]


@pytest.mark.e2e
def test_at_baseline_forgets_what_earlier_tests_put_in_the_run_cache(pipeline_baseline):
    repo = at_baseline(pipeline_baseline)
    for _ in range(2):
        repo.set_params("q1.perceptron.epochs=3")
        ran = stages_run(repo.run("repro", "-s", "q1@perceptron-42").stdout)
        assert ran == {"q1@perceptron-42"}      # the second time too: run, not restored
        repo = at_baseline(repo)
