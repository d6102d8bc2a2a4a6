"""Shared fixtures: a copy of the project in a temporary git repository, for end-to-end tests
that run the real `dvc` commands on a small synthetic dataset; and `run_module`, a stage's
``python -m`` run inside the test process."""
from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import runpy
import shutil
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# What a clone holds that the pipeline needs; outputs and caches are left behind.
PROJECT_FILES = ["hw1", "stages", "dvc.yaml", "params.yaml", ".dvc/config", ".dvc/.gitignore",
                 ".dvcignore", ".gitignore", "reports/report_values.yaml",
                 "reports/benchmark_values.yaml", "scripts"]
GIT_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def small_params(params: dict, epochs: int = 2, scale: float = 0.02) -> dict:
    """The project's params shrunk for a test: synthetic data at ``scale``, ``epochs`` epochs."""
    params["data"].update(source="synthetic", synthetic={"scale": scale})
    params["train"]["epochs"] = epochs
    for group in ("q1", "q2"):
        for run in params.get(group, {}).values():
            run["epochs"] = epochs
    if "boolean" in params:
        params["boolean"]["max_d"] = 4
    return params


def small_overrides(params: dict, epochs: int = 2, scale: float = 0.02) -> list[str]:
    """``small_params`` as `dvc exp run -S` overrides, which keep params.yaml's layout."""
    overrides = ["data.source=synthetic", f"data.synthetic.scale={scale}",
                 f"train.epochs={epochs}", "boolean.max_d=4"]
    for group in ("q1", "q2"):
        overrides += [f"{group}.{run}.epochs={epochs}" for run in params.get(group, {})]
    return overrides


class DvcRepo:
    """A temporary git + DVC repository holding a copy of the project."""

    def __init__(self, path: Path):
        self.path = path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(self.path)}
        # `dvc` of the interpreter running the tests, whatever the PATH holds
        cmd = [sys.executable, "-m", "dvc", *args] if args[0] != "git" else list(args)
        proc = subprocess.run(cmd, cwd=self.path, env=env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def params(self) -> dict:
        return yaml.safe_load((self.path / "params.yaml").read_text())

    def write_params(self, params: dict) -> None:
        (self.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def set_params(self, *overrides: str) -> None:
        """Change values the way `dvc exp run -S` does, keeping params.yaml's layout."""
        from dvc.utils.hydra import apply_overrides
        apply_overrides(str(self.path / "params.yaml"), list(overrides))

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)


def project_repo(root: Path) -> DvcRepo:
    """The project copied into a new git repository at ``root``, params shrunk by
    ``small_params``, committed on ``main``."""
    root.mkdir()
    for name in PROJECT_FILES:
        src = REPO / name
        if not src.exists():
            continue
        dst = root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    repo = DvcRepo(root)
    repo.run("git", "init", "-q", "-b", "main")
    # an identity of its own: `dvc exp` commits too, with no regard for the variables above
    repo.run("git", "config", "user.name", GIT_ENV["GIT_AUTHOR_NAME"])
    repo.run("git", "config", "user.email", GIT_ENV["GIT_AUTHOR_EMAIL"])
    repo.set_params(*small_overrides(repo.params()))
    repo.commit("project under test")
    return repo


@pytest.fixture
def dvc_repo(tmp_path: Path) -> DvcRepo:
    """The project in a fresh git repository, params shrunk by ``small_params``, committed."""
    return project_repo(tmp_path / "repo")


@pytest.fixture(scope="module")
def module_dvc_repo(tmp_path_factory: pytest.TempPathFactory) -> DvcRepo:
    """`dvc_repo`, built once per test module: for modules whose tests share one baseline run."""
    return project_repo(tmp_path_factory.mktemp("module") / "repo")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """``path`` locked (flock) while the block runs: one process at a time, whichever xdist
    worker it is."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


RUN_CACHE = ".dvc/cache/runs"
BASELINE_RUNS = ".git/baseline-runs"   # the run-cache entries at the baseline (git ignores it)


def run_cache_entries(repo: DvcRepo) -> set[str]:
    runs = repo.path / RUN_CACHE
    return {p.relative_to(runs).as_posix() for p in runs.rglob("*") if p.is_file()}


def tag_baseline(repo: DvcRepo, message: str) -> None:
    """Commits ``repo``'s workspace, tags it `baseline` and notes the run-cache entries it
    holds, to which ``at_baseline`` comes back."""
    repo.commit(message)
    repo.run("git", "tag", "baseline")
    (repo.path / BASELINE_RUNS).write_text("\n".join(sorted(run_cache_entries(repo))))


def copy_repo(src: DvcRepo, dest: Path) -> DvcRepo:
    """A copy of ``src`` at ``dest``: git, the workspace and DVC's cache (run-cache included);
    DVC's scratch directory (.dvc/tmp: locks, its hash database) is left for DVC to rebuild."""
    shutil.copytree(src.path, dest, symlinks=True,
                    ignore=lambda d, _: ["tmp"] if Path(d).name == ".dvc" else [])
    return DvcRepo(dest)


@pytest.fixture(scope="session")
def built_baseline(tmp_path_factory: pytest.TempPathFactory) -> DvcRepo:
    """The whole pipeline reproduced once for the whole test run, committed and tagged
    `baseline`: built by the first xdist worker that asks (the others wait for it) in the
    directory the workers share. Never changed: tests work on copies (``pipeline_baseline``)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if worker else shared
    path, done = shared / "pipeline" / "repo", shared / "pipeline" / "built"
    (shared / "pipeline").mkdir(exist_ok=True)
    with file_lock(shared / "pipeline.lock"):
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)     # a build that failed in another worker
            repo = project_repo(path)
            repo.run("repro")
            tag_baseline(repo, "baseline")
            done.touch()
    return DvcRepo(path)


@pytest.fixture(scope="session")
def pipeline_baseline(built_baseline: DvcRepo,
                      tmp_path_factory: pytest.TempPathFactory) -> DvcRepo:
    """This worker's copy of ``built_baseline``: the whole pipeline reproduced, committed and
    tagged `baseline`."""
    return copy_repo(built_baseline, tmp_path_factory.mktemp("pipeline") / "repo")


def at_baseline(repo: DvcRepo) -> DvcRepo:
    """``repo`` (``pipeline_baseline``) back at the baseline (``tag_baseline``): git's files,
    DVC's outputs as the baseline's dvc.lock has them (files other tests left, e.g. of another
    seed, removed), and its run-cache, so that no test restores what an earlier one ran."""
    repo.run("git", "checkout", "-q", "-f", "main")
    repo.run("git", "reset", "-q", "--hard", "baseline")
    repo.run("git", "clean", "-fdqX", "--", "data", "models", "metrics", "plots", "reports")
    repo.run("checkout", "-f")
    keep = set((repo.path / BASELINE_RUNS).read_text().split())
    for entry in run_cache_entries(repo) - keep:
        path = repo.path / RUN_CACHE / entry
        path.unlink()
        for folder in (path.parent, path.parent.parent):   # the stage's key, its prefix
            if not any(folder.iterdir()):
                folder.rmdir()
    return repo


@pytest.fixture
def pipeline_repo(pipeline_baseline: DvcRepo) -> DvcRepo:
    """``pipeline_baseline`` back at the baseline (``at_baseline``)."""
    return at_baseline(pipeline_baseline)


def review(repo: DvcRepo, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m scripts.review ARGS` in ``repo`` by the interpreter running the tests, with
    the remote settings (DVC_REMOTE_*, AWS_*) in ``env`` alone, none of the caller's."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DVC_REMOTE_", "AWS_"))}
    return subprocess.run([sys.executable, "-m", "scripts.review", *args], cwd=repo.path,
                          env={**clean, **GIT_ENV, **env, "PYTHONPATH": str(repo.path)},
                          capture_output=True, text=True)


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


# The warning filters of a plain `python` (no -W, no PYTHONWARNINGS), most specific first.
PYTHON_WARNING_FILTERS = [("default", DeprecationWarning, "__main__"),
                          ("ignore", DeprecationWarning, ""),
                          ("ignore", PendingDeprecationWarning, ""),
                          ("ignore", ImportWarning, ""),
                          ("ignore", ResourceWarning, "")]


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` in ``cwd``, run inside the test process: a stage's
    ``__main__`` block as the interpreter runs it, without a new interpreter's seconds of
    importing torch. Exit status and output are the interpreter's: ``sys.exit(text)`` prints
    the text and exits 1, ``sys.exit(n)`` exits n, an uncaught exception prints its traceback
    and exits 1; warnings are shown as a plain ``python`` shows them. The working directory,
    ``sys.argv``, environment variables and the module itself are restored afterwards."""
    out, err = io.StringIO(), io.StringIO()
    saved_cwd, saved_argv, saved_env = os.getcwd(), sys.argv, os.environ.copy()
    imported = sys.modules.pop(module, None)  # runpy executes the module afresh either way
    code: object = 0
    try:
        os.chdir(cwd)
        sys.argv = [module, *args]
        with (contextlib.redirect_stdout(out), contextlib.redirect_stderr(err),
              warnings.catch_warnings()):
            warnings.resetwarnings()
            for action, category, where in PYTHON_WARNING_FILTERS:
                warnings.filterwarnings(action, category=category, module=where, append=True)
            warnings.showwarning = _show_warning   # to stderr as it happens, not to pytest
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            except SystemExit as exit_:
                code = exit_.code
            except Exception:
                traceback.print_exc()
                code = 1
        if code is not None and not isinstance(code, int):
            err.write(f"{code}\n")
            code = 1
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        if imported is not None:
            sys.modules[module] = imported
    return subprocess.CompletedProcess(["python", "-m", module, *args], code or 0,
                                       out.getvalue(), err.getvalue())


# Fixtures that run `dvc`: a test using one must be marked `e2e`, or `-m "not e2e"` runs it.
E2E_FIXTURES = ("dvc_repo", "module_dvc_repo", "built_baseline", "pipeline_baseline")


def unmarked_e2e(items: list[pytest.Item]) -> list[str]:
    """One line for each test among ``items`` that uses an `E2E_FIXTURES` fixture without the
    `e2e` mark."""
    problems = []
    for item in items:
        used = [name for name in E2E_FIXTURES if name in getattr(item, "fixturenames", ())]
        if used and item.get_closest_marker("e2e") is None:
            problems.append(f"{item.nodeid} uses the {used[0]} fixture, which runs `dvc`: "
                            "mark it @pytest.mark.e2e")
    return problems


# The test files of the longest end-to-end runs, longest first (`pytest --durations` lists
# them): they start first, one per xdist worker, and the short files fill the end of the run.
LONGEST_FIRST = ["test_shards.py", "test_parallel.py", "test_dvc_restore.py", "test_faults.py",
                 "test_review.py", "test_remote_s3.py", "test_review_script.py"]


def longest_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` with the files of ``LONGEST_FIRST`` first, in its order; the others after them,
    as collected."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    return sorted(items, key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):   # xdist: files in the collection's order,
        config.option.loadscopereorder = False       # not by how many tests each holds


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = unmarked_e2e(items)
    if problems:
        raise pytest.UsageError("\n".join(problems))
    items[:] = longest_first(items)
