"""The pull-request review and main's baseline on the DVC remote: the steps both GitHub workflows
run, and the same on any clone.

    python -m scripts.review pr [BASE]   restore from the remote, reproduce (only what the change
                                         touches runs) and write review.md: params and metrics
                                         diffs against BASE (default main), the sweep overlays
                                         and the table rows that changed
    python -m scripts.review main [--create-remote]
                                         restore, reproduce, re-hash the cache
                                         (scripts/verify.py) and push the results and the
                                         run-cache

The remote comes from the environment only: DVC_REMOTE_URL, DVC_REMOTE_ENDPOINT for an
S3-compatible store, and the store's keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), which DVC
reads from the environment: they are never written to a file. While the review runs, the remote
is the default remote 'ci' of .dvc/config.local; when it ends, however it ends, that file is put
back as it was (removed if there was none), so .dvc/config stays as committed and a default
remote of the user's own stays the default.

`pr` without a usable remote runs the pipeline without it, and review.md's first line says so
and why: no DVC_REMOTE_URL; an s3:// remote without keys (a pull request from a fork); a
directory remote (a path or a file:// URL) that does not exist; a remote `dvc pull` fails on
(DVC's cause, the remote named); a remote that holds none of the results missing here. The
reason is also printed as one line on stderr; the review exits 0 when review.md is written.

`main` refuses (exit 1, one line) without a usable remote, and refuses a directory remote that
does not exist unless `--create-remote` says to create it. A remote that holds none of the
results missing here is said so in one line, and the pipeline is then reproduced and pushed.

Any other `dvc` failure ends the review with one line on stderr (exit 1): the command, the
remote in use and DVC's own cause (its last ERROR line). Stage counts come from DVC's own data,
`dvc status --json` before and after restoring and dvc.lock before and after the run: a stage is
*reproduced* when DVC found it changed after the restore or its dvc.lock entry changed (DVC ran
it, or restored it from the run-cache), *restored* when `dvc pull` brought back the outputs it
lacked, *unchanged* otherwise. The changed table rows are the rows of
reports/tables/table<N>.csv whose `run` is a run (``RunId``) whose headline metrics `dvc metrics
diff BASE --json` lists, under the heading reports/tables.md gives the table; the changed
overlays are the top-level plots of dvc.yaml that draw a plot file that differs from BASE.

Another reproducer (e.g. a parallel one) plugs in through ``reproduce(restored, repro)``;
``write_review(base, how)`` writes review.md of whatever the workspace holds.
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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from hw1.outputs import write_bytes, write_text
from hw1.params import load_params, read_yaml
from hw1.runs import RunId, pipeline_runs
from scripts import verify

PROG = "review"
USAGE = ("usage: python -m scripts.review pr [BASE] | "
         "python -m scripts.review main [--create-remote]")
REMOTE = "ci"                                   # the name under which DVC_REMOTE_URL is added
LOCAL_CONFIG = Path(".dvc/config.local")
SUMMARY = "metrics/summary.json"
TABLES_CSV = Path("reports/tables")
TABLES_MD = Path("reports/tables.md")
REVIEW = Path("review.md")
PLOTS_OUT = Path("dvc_plots")


class ReviewError(Exception):
    """Ends the review: its message is printed as one line on stderr, exit status 1."""


class DvcFailed(ReviewError):
    """A `dvc` command failed; the message names the command, the remote and DVC's cause."""


# --- the remote -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Remote:
    """The DVC remote of the environment, added to .dvc/config.local as ``name``."""
    url: str
    endpoint: str | None = None
    name: str = REMOTE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Remote:
        return cls(env["DVC_REMOTE_URL"], env.get("DVC_REMOTE_ENDPOINT") or None)

    def __str__(self) -> str:
        return f"remote '{self.name}': {self.url}"

    @property
    def directory(self) -> Path | None:
        """The directory of a directory remote (a path, or a file:// URL); None for any other."""
        if self.url.startswith("file://"):
            return Path(unquote(urlparse(self.url).path))
        return None if "://" in self.url else Path(self.url)

    def missing_directory(self) -> str | None:
        """Why the remote cannot be used as it stands: a directory remote that does not exist."""
        directory = self.directory
        if directory is not None and not directory.exists():
            return f"the directory remote '{self.name}' ({self.url}) does not exist"
        return None


def no_remote_reason(env: Mapping[str, str]) -> str | None:
    """Why the environment gives no remote to use; None when it gives one."""
    url = env.get("DVC_REMOTE_URL", "")
    if not url:
        return "no DVC remote is configured (set DVC_REMOTE_URL)"
    if url.startswith("s3://") and not (env.get("AWS_ACCESS_KEY_ID")
                                        and env.get("AWS_SECRET_ACCESS_KEY")):
        return ("DVC_REMOTE_URL is set but AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not "
                "(pull requests from forks get no secrets)")
    return None


@contextmanager
def file_kept(path: Path) -> Iterator[None]:
    """Whatever the block does to ``path``, it holds the same bytes afterwards (or is absent,
    if it was), however the block ends."""
    before = path.read_bytes() if path.is_file() else None
    try:
        yield
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        elif not path.is_file() or path.read_bytes() != before:
            write_bytes(path, before)


@contextmanager
def remote_added(remote: Remote) -> Iterator[None]:
    """``remote`` as the default remote of .dvc/config.local while the block runs; the file as
    it was before, afterwards."""
    with file_kept(LOCAL_CONFIG):
        dvc("remote", "add", "--local", "--default", "--force", remote.name, remote.url,
            remote=remote)
        if remote.endpoint:
            dvc("remote", "modify", "--local", remote.name, "endpointurl", remote.endpoint,
                remote=remote)
        yield


# --- running dvc ------------------------------------------------------------------------------

def dvc_cause(output: str) -> str:
    """DVC's own cause of a failure: its last ERROR line."""
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    return re.sub(r"^ERROR:?\s*", "", errors[-1]) if errors else "see the output above"


def failure(args: Sequence[str], output: str, remote: Remote | None) -> str:
    """``dvc pull --allow-missing failed (remote 'ci': URL): <DVC's cause>``."""
    where = f" ({remote})" if remote else ""
    return f"dvc {' '.join(args)} failed{where}: {dvc_cause(output)}"


def dvc(*args: str, remote: Remote | None = None, show: bool = False) -> str:
    """`dvc ARGS` (the interpreter's own DVC) and its standard output; with ``show`` its output,
    standard error too, is also shown as it comes. DvcFailed when it fails."""
    cmd = [sys.executable, "-m", "dvc", *args]
    if show:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as proc:
            lines = []
            try:
                for line in proc.stdout:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    lines.append(line)
            except BaseException:   # interrupted or terminated: so is DVC
                proc.terminate()
                raise
        out = err = "".join(lines)
        code = proc.returncode
    else:
        done = subprocess.run(cmd, capture_output=True, text=True)
        out, err, code = done.stdout, done.stderr, done.returncode
    if code != 0:
        raise DvcFailed(failure(args, err, remote))
    return out


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def dvc_status() -> dict[str, Any]:
    """`dvc status --json`: each stage DVC finds changed, and how."""
    return json.loads(dvc("status", "--json") or "{}")


def read_lock(path: Path = Path("dvc.lock")) -> dict[str, Any]:
    """The stages of dvc.lock (none when there is no dvc.lock yet)."""
    if not path.is_file():
        return {}
    return (read_yaml(path.read_text()) or {}).get("stages") or {}


# --- stages -----------------------------------------------------------------------------------

MISSING = {"deleted", "not in cache"}   # `dvc status` of an output the workspace or cache lacks


def missing_outputs(status: Mapping[str, Any]) -> set[str]:
    """The stages of a `dvc status --json` with an output missing from the workspace or from
    DVC's cache: what `dvc pull` can bring back."""
    return {stage for stage, changes in status.items() for change in changes
            if isinstance(change, dict)
            and MISSING & set((change.get("changed outs") or {}).values())}


def changed_in_lock(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """The stages whose dvc.lock entry ``after`` differs from ``before`` (or is new)."""
    return {stage for stage, entry in after.items() if before.get(stage) != entry}


@dataclass(frozen=True)
class Restored:
    """The workspace as DVC sees it before the run: `dvc status --json` before and after
    restoring from ``remote`` (the same twice without one)."""
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    remote: Remote | None = None

    @property
    def stages(self) -> set[str]:
        """The stages whose missing outputs the remote brought back."""
        return missing_outputs(self.before) - missing_outputs(self.after)

    def holds_nothing(self) -> str | None:
        """Why the remote was of no use: it held none of the results missing here."""
        missing = missing_outputs(self.before)
        if self.remote is None or not missing or self.stages:
            return None
        return (f"the remote '{self.remote.name}' ({self.remote.url}) holds none of the results "
                f"of the {len(missing)} stages whose outputs are missing here")


@dataclass(frozen=True)
class StageCounts:
    """How each stage of the pipeline came to be up to date."""
    reproduced: frozenset[str]
    restored: frozenset[str]
    total: int
    remote: bool

    @property
    def unchanged(self) -> int:
        return self.total - len(self.reproduced) - len(self.restored)

    def __str__(self) -> str:
        restored = f", {len(self.restored)} restored from the remote" if self.remote else ""
        return f"{len(self.reproduced)} reproduced{restored}, {self.unchanged} unchanged"


def stage_counts(restored: Restored, lock_before: Mapping[str, Any],
                 lock_after: Mapping[str, Any]) -> StageCounts:
    """The counts of a run that started from ``restored`` and took dvc.lock from
    ``lock_before`` to ``lock_after`` (which names every stage once the run is done)."""
    reproduced = (set(restored.after) | changed_in_lock(lock_before, lock_after)) & set(lock_after)
    return StageCounts(frozenset(reproduced), frozenset(restored.stages - reproduced),
                       len(lock_after), restored.remote is not None)


# --- reproducing ------------------------------------------------------------------------------

Repro = Callable[[Remote | None], None]


def dvc_repro(remote: Remote | None) -> None:
    """`dvc repro`; with a remote `dvc repro --pull`, so a changed stage whose params ran before
    is restored from the remote's run-cache. (`repro --pull --allow-missing` downloads less, but
    fails a changed stage whose inputs the remote lacks; `repro --pull` alone pulls stage by
    stage, 5x slower here: hence `dvc pull --allow-missing` first, in ``restore``.)"""
    dvc("repro", *(["--pull"] if remote else []), remote=remote, show=True)


def restore(remote: Remote | None) -> Restored:
    """Restores what ``remote`` holds for dvc.lock (`dvc pull --allow-missing`), with DVC's
    status before and after; without a remote, the status alone."""
    before = dvc_status()
    if remote is None:
        return Restored(before, before)
    dvc("pull", "--allow-missing", remote=remote, show=True)
    return Restored(before, dvc_status(), remote)


def reproduce(restored: Restored, repro: Repro = dvc_repro) -> StageCounts:
    """Reproduces the pipeline from ``restored`` with ``repro`` (`dvc repro` by default) and
    counts how each stage came to be up to date."""
    lock_before = read_lock()
    repro(restored.remote)
    return stage_counts(restored, lock_before, read_lock())


# --- the review -------------------------------------------------------------------------------

def or_no_change(markdown: str) -> str:
    """A Markdown table from `dvc ... diff --md`, or "No change." when it has no rows (DVC
    prints the header alone)."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    return markdown.strip() if len(rows) > 2 else "No change."


def changed_runs(metrics_diff: Mapping[str, Any], runs: Iterable[RunId]) -> list[RunId]:
    """The runs whose headline metrics a `dvc metrics diff --json` lists: metrics/summary.json
    keys are ``<RunId.metric>.<metric>``."""
    changed = {key.split(".")[0] for key in metrics_diff.get(SUMMARY) or {}}
    return [run for run in runs if run.metric in changed]


def overlays_of(dvc_yaml: Mapping[str, Any], files: Iterable[str]) -> list[str]:
    """The ids of dvc.yaml's top-level plots (overlays: ``y`` maps files to columns) that draw
    one of ``files``."""
    files = set(files)
    ids = []
    for entry in dvc_yaml.get("plots") or []:
        if isinstance(entry, dict):
            for plot_id, spec in entry.items():
                y = (spec or {}).get("y")
                if isinstance(y, dict) and files & set(y):
                    ids.append(plot_id)
    return ids


def table_titles(tables_md: str) -> dict[int, str]:
    """``{1: "Table 1: Test accuracy ..."}``: the tables' headings in reports/tables.md."""
    return {int(m[2]): m[1] for m in re.finditer(r"^## (Table (\d+)\b.*)$", tables_md, re.M)}


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return [line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, rows)]


def table_rows(runs: Iterable[RunId], csv_texts: Mapping[int, str],
               titles: Mapping[int, str]) -> str:
    """The rows of the tables' CSVs (``{number: text}``) whose ``run`` column names one of
    ``runs``, as Markdown under each table's title; "No change." when there are none."""
    wanted = set(runs)
    parts = []
    for number, text in sorted(csv_texts.items()):
        reader = csv.DictReader(io.StringIO(text))
        if "run" not in (reader.fieldnames or []):
            continue                            # Table 3: hyperparameters, no run per row
        rows = [row for row in reader if RunId.parse(row["run"]) in wanted]
        if rows:
            header = list(reader.fieldnames)
            cells = [[f"`{v}`" if k == "run" else v for k, v in row.items()] for row in rows]
            parts.append("\n".join([f"#### {titles.get(number, f'Table {number}')}", "",
                                    *markdown_table(header, cells)]))
    return "\n\n".join(parts) or "No change."


def read_tables(directory: Path = TABLES_CSV) -> dict[int, str]:
    """``{N: text of reports/tables/tableN.csv}``."""
    found = {}
    for path in directory.glob("table*.csv"):
        number = path.stem.removeprefix("table")
        if number.isdigit():
            found[int(number)] = path.read_text()
    return found


def changed_plot_files(base: str) -> list[str]:
    """The files under plots/ that differ from ``base``, untracked ones too."""
    changed = git("diff", "--name-only", base, "--", "plots/").splitlines()
    untracked = git("ls-files", "--others", "--exclude-standard", "--", "plots/").splitlines()
    return sorted(set(changed) | set(untracked))


def overlays_section(base: str, ids: Sequence[str]) -> list[str]:
    """The changed overlays: drawn as SVG where `vl2svg` is installed, named otherwise."""
    if not ids:
        return ["No change."]
    vl2svg = shutil.which("vl2svg")
    if vl2svg is None:
        named = ", ".join(f"`{plot_id}`" for plot_id in ids)
        return [f"Changed (vl2svg is not installed, so not drawn here): {named}.",
                f"See them with `dvc plots diff {base} --targets <id>`."]
    overlays = PLOTS_OUT / "overlays"
    overlays.mkdir(parents=True, exist_ok=True)
    lines = []
    for plot_id in ids:
        spec = overlays / f"{plot_id}.json"
        write_text(spec, dvc("plots", "diff", base, "--show-vega", "--targets", plot_id))
        subprocess.run([vl2svg, str(spec), str(overlays / f"{plot_id}.svg")], check=True)
        lines.append(f"![{plot_id}](./{PLOTS_OUT}/overlays/{plot_id}.svg)")
    return lines


def write_review(base: str, how: str, path: Path = REVIEW) -> None:
    """review.md of the workspace against ``base``: ``how`` it was reproduced, the params and
    metrics diffs, the changed overlays and table rows; every plot in dvc_plots/."""
    runs = changed_runs(json.loads(dvc("metrics", "diff", base, "--json") or "{}"),
                        pipeline_runs(load_params()))
    ids = overlays_of(read_yaml(Path("dvc.yaml").read_text()), changed_plot_files(base))
    dvc("plots", "diff", base, "--out", str(PLOTS_OUT))
    titles = table_titles(TABLES_MD.read_text()) if TABLES_MD.is_file() else {}
    lines = [f"## Pipeline review: `{git('rev-parse', '--short', 'HEAD').strip()}` against "
             f"`{base}`", "", how, "",
             "### Params", "", or_no_change(dvc("params", "diff", base, "--md")), "",
             "### Metrics", "", or_no_change(dvc("metrics", "diff", base, "--md")), "",
             "### Sweep overlays", "", *overlays_section(base, ids), "",
             f"Every plot, {base} beside this change: `dvc plots diff {base}` (the `dvc-plots` "
             f"artifact in CI).", "",
             "### Changed table rows", "", table_rows(runs, read_tables(), titles)]
    write_text(path, "\n".join(lines) + "\n")
    print(f"Wrote {path}")


# --- the two modes ----------------------------------------------------------------------------

def say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def check_base(base: str) -> None:
    """ReviewError unless git knows the revision ``base``."""
    if subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"],
                      capture_output=True).returncode != 0:
        raise ReviewError(f"base revision '{base}' not found: fetch it (git fetch origin "
                          f"{base}:{base}) or name another as the second argument")


def review_pr(base: str, env: Mapping[str, str], repro: Repro = dvc_repro) -> None:
    """Reproduces with the remote where it can be used, without it otherwise, and writes
    review.md, whose first line says which and, without the remote, why."""
    check_base(base)
    reason = no_remote_reason(env)
    counts = None
    if reason is None:
        remote = Remote.from_env(env)
        reason = remote.missing_directory()
        if reason is None:
            with remote_added(remote):
                try:
                    restored = restore(remote)
                except DvcFailed as err:
                    reason = str(err)
                else:
                    reason = restored.holds_nothing()
                    if reason is None:
                        counts = reproduce(restored, repro)
    if counts is None:
        say(f"reviewing without the remote: {reason}")
        counts = reproduce(restore(None), repro)
        how = f"**Without the remote:** {reason}, so the pipeline ran without it ({counts})."
    else:
        how = f"**Stages:** {counts}."
    write_review(base, how)


def push_baseline(env: Mapping[str, str], create_remote: bool = False,
                  repro: Repro = dvc_repro) -> None:
    """Restores, reproduces and pushes the results with the run-cache to the remote."""
    reason = no_remote_reason(env)
    if reason:
        raise ReviewError(f"cannot push the baseline: {reason}")
    remote = Remote.from_env(env)
    missing = remote.missing_directory()
    if missing and not create_remote:
        raise ReviewError(f"cannot push the baseline: {missing} (check DVC_REMOTE_URL, or "
                          f"pass --create-remote to create it)")
    if missing:
        remote.directory.mkdir(parents=True)
        say(f"created the directory remote '{remote.name}' ({remote.url})")
    with remote_added(remote):
        restored = restore(remote)
        empty = restored.holds_nothing()
        if empty:
            say(f"{empty}: they are reproduced here and pushed")
        counts = reproduce(restored, repro)
        print(f"Stages: {counts}")
        # DVC pushes what its cache holds without re-hashing it: a corrupt object is never sent
        if verify.main([]) != 0:
            raise ReviewError(f"not pushing: the cache holds corrupt objects (above); run "
                              f"`{verify.REMOVE}`, then this again")
        dvc("push", "--run-cache", remote=remote, show=True)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    try:
        if args[:1] == ["pr"] and len(args) <= 2 and not any(a.startswith("-") for a in args):
            review_pr(args[1] if len(args) == 2 else "main", env)
        elif args[:1] == ["main"] and args[1:] in ([], ["--create-remote"]):
            push_baseline(env, create_remote=len(args) == 2)
        else:
            raise ReviewError(USAGE)
    except ReviewError as err:
        say(str(err))
        return 1
    return 0


def _terminated(signum: int, _frame: object) -> None:
    sys.exit(128 + signum)     # a cancelled CI job: the `finally` blocks restore the config


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminated)
    os.chdir(Path(__file__).resolve().parents[1])
    sys.exit(main())
