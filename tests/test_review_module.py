"""scripts/review.py piece by piece, without `dvc`: its parsers fed the JSON, CSV and YAML that
DVC and the stages write, and both modes with `dvc` replaced by a stand-in that answers as DVC
does. tests/test_review_script.py runs the whole flow with the real `dvc`."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hw1.runs import RunId
from scripts import review
from scripts.review import DvcFailed, Remote, Restored

REPO = Path(__file__).resolve().parents[1]
URL_ENV = {"DVC_REMOTE_URL": "s3://bucket/path"}
KEYS = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}

# `dvc status --json` of a fresh clone (outputs in neither workspace nor cache) and of one
# changed param, as DVC 3.67 writes them
FRESH = {"prepare": [{"changed deps": {"data/raw/octmnist.npz": "deleted"}},
                     {"changed outs": {"data/prepared/octmnist.npz": "not in cache",
                                       "metrics/data.json": "not in cache"}}],
         "q1@mlp-42": [{"changed deps": {"data/prepared/octmnist.npz": "deleted"}},
                       {"changed outs": {"models/q1/mlp/42.npz": "not in cache"}}],
         "tables": [{"changed outs": {"reports/tables.md": "deleted"}}]}
ONE_PARAM = {"q1@mlp-42": [{"changed deps": {"params.yaml": {"q1.mlp.lr": 0.1}}}],
             "tables": [{"changed deps": {"params.yaml": {"q1.mlp.lr": 0.1}}}]}
LOCK = {"prepare": {"cmd": "python -m stages.prepare", "outs": [{"md5": "a"}]},
        "q1@mlp-42": {"cmd": "python -m stages.train_numpy q1.mlp 42", "outs": [{"md5": "b"}]},
        "tables": {"cmd": "python -m stages.tables", "outs": [{"md5": "c"}]},
        "figures": {"cmd": "python -m stages.figures", "outs": [{"md5": "d"}]}}
# dvc.lock after ONE_PARAM's run: the changed run's model differs, its table does not
AFTER = {**LOCK, "q1@mlp-42": {**LOCK["q1@mlp-42"], "outs": [{"md5": "new"}]}}


# --- the remote -------------------------------------------------------------------------------

def test_no_remote_reason_names_what_the_environment_lacks():
    assert review.no_remote_reason({}) == "no DVC remote is configured (set DVC_REMOTE_URL)"
    assert "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not" in \
        review.no_remote_reason({**URL_ENV, "AWS_ACCESS_KEY_ID": "id"})
    assert review.no_remote_reason({**URL_ENV, **KEYS}) is None
    assert review.no_remote_reason({"DVC_REMOTE_URL": "/some/dir"}) is None   # no keys needed


def test_directory_remotes_are_paths_and_file_urls(tmp_path):
    assert Remote("/srv/dvc").directory == Path("/srv/dvc")
    assert Remote("../store").directory == Path("../store")
    assert Remote("file:///srv/my%20dvc").directory == Path("/srv/my dvc")
    assert Remote("s3://bucket/path").directory is None
    assert Remote("s3://bucket/path").missing_directory() is None
    assert Remote(str(tmp_path)).missing_directory() is None
    gone = tmp_path / "gone"
    assert Remote(f"file://{gone}").missing_directory() == \
        f"the directory remote 'ci' (file://{gone}) does not exist"


@pytest.mark.parametrize("before", [None, b"['remote \"mine\"']\n    url = /srv/mine\n"])
def test_file_kept_puts_the_file_back_however_the_block_ends(tmp_path, before):
    path = tmp_path / "config.local"
    if before is not None:
        path.write_bytes(before)
    with pytest.raises(DvcFailed), review.file_kept(path):
        path.write_text("[core]\n    remote = ci\n")
        raise DvcFailed("dvc pull failed")
    assert (path.read_bytes() if path.exists() else None) == before
    with review.file_kept(path):
        path.unlink(missing_ok=True)
    assert (path.read_bytes() if path.exists() else None) == before


# --- dvc's answers ----------------------------------------------------------------------------

def test_a_failure_names_the_command_the_remote_and_dvcs_last_error():
    output = ("Collecting\nERROR: failed to connect to s3 (b/files/md5) - Forbidden\n"
              "ERROR: failed to pull data from the cloud - 3 files failed to download\n"
              "\nHaving any troubles? Hit us up at https://dvc.org/support\n")
    assert review.failure(["pull", "--allow-missing"], output, Remote("s3://b")) == \
        ("dvc pull --allow-missing failed (remote 'ci': s3://b): failed to pull data from the "
         "cloud - 3 files failed to download")
    assert review.failure(["repro"], "Running stage 'x'\nKilled\n", None) == \
        "dvc repro failed: see the output above"


def test_missing_outputs_are_those_neither_workspace_nor_cache_hold():
    assert review.missing_outputs(FRESH) == {"prepare", "q1@mlp-42", "tables"}
    assert review.missing_outputs(ONE_PARAM) == set()
    assert review.missing_outputs({"x": ["always changed"]}) == set()


def test_restored_stages_and_a_remote_that_holds_nothing():
    remote = Remote("/srv/dvc")
    pulled = Restored(FRESH, ONE_PARAM, remote)
    assert pulled.stages == {"prepare", "q1@mlp-42", "tables"}
    assert pulled.holds_nothing() is None
    empty = Restored(FRESH, FRESH, remote)
    assert empty.stages == set()
    assert empty.holds_nothing() == ("the remote 'ci' (/srv/dvc) holds none of the results of "
                                     "the 3 stages whose outputs are missing here")
    # nothing was missing here: nothing to tell of the remote
    assert Restored(ONE_PARAM, ONE_PARAM, remote).holds_nothing() is None
    assert Restored(FRESH, FRESH).holds_nothing() is None   # no remote


def test_stage_counts_from_status_and_the_lock():
    # restored from the remote, two of them then changed by the param
    counts = review.stage_counts(Restored(FRESH, ONE_PARAM, Remote("/r")), LOCK, AFTER)
    assert counts.reproduced == {"q1@mlp-42", "tables"}
    assert counts.restored == {"prepare"}
    assert str(counts) == "2 reproduced, 1 restored from the remote, 1 unchanged"
    # without a remote, a fresh run: every stage new in dvc.lock, downstream ones too
    fresh = review.stage_counts(Restored({"prepare": FRESH["prepare"]},
                                         {"prepare": FRESH["prepare"]}), {}, LOCK)
    assert fresh.reproduced == set(LOCK)
    assert str(fresh) == "4 reproduced, 0 unchanged"
    # a stage re-run because an upstream output changed, though DVC's status before did not
    # list it: its dvc.lock entry says so
    upstream = {**LOCK, "figures": {**LOCK["figures"], "deps": [{"md5": "e"}]}}
    assert review.stage_counts(Restored(ONE_PARAM, ONE_PARAM), LOCK, upstream).reproduced == \
        {"q1@mlp-42", "tables", "figures"}


def test_read_lock(tmp_path):
    assert review.read_lock(tmp_path / "dvc.lock") == {}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": LOCK}))
    assert review.read_lock(tmp_path / "dvc.lock") == LOCK


# --- the review's sections --------------------------------------------------------------------

def test_or_no_change():
    header = "| Path   | Param   | main   | workspace   |\n|--------|---------|--------|----|\n"
    assert review.or_no_change(header) == "No change."
    assert review.or_no_change("") == "No change."
    row = header + "| params.yaml | q1.mlp.lr | 0.001 | 0.1 |\n"
    assert review.or_no_change(row) == row.strip()


def test_changed_runs_are_the_runs_of_the_summary_keys():
    diff = {"metrics/summary.json": {"q1_logreg_lr1e-3.test": {"old": 0.5, "new": 0.4},
                                     "q1_logreg_lr1e-3.val": {"old": 0.5, "new": 0.4},
                                     "train.best_val": {"old": 0.8, "new": 0.7}},
            "metrics/claims.json": {"q1_order.holds": {"old": 1, "new": 0}}}
    runs = [RunId.parse(text) for text in ("train", "q1/logreg_lr1e-2", "q1/logreg_lr1e-3",
                                           "q2/logreg_lr1e-3")]
    assert review.changed_runs(diff, runs) == [RunId(None, "train"),
                                               RunId("q1", "logreg_lr1e-3")]
    assert review.changed_runs({}, runs) == []


def test_overlays_are_the_top_level_plots_drawing_a_changed_file():
    dvc_yaml = yaml.safe_load("""
stages: {}
plots:
  - plots/q1/mlp.csv:
      y: val_acc
  - lr_val_acc:
      x: epoch
      y: {plots/a.csv: val_acc, plots/b.csv: val_acc}
  - batch_loss:
      y: {plots/b.csv: [train_loss, val_loss], plots/c.csv: [train_loss, val_loss]}
  - reports/figures/fig01.png
""")
    assert review.overlays_of(dvc_yaml, ["plots/b.csv"]) == ["lr_val_acc", "batch_loss"]
    assert review.overlays_of(dvc_yaml, ["plots/c.csv", "plots/q1/mlp.csv"]) == ["batch_loss"]
    assert review.overlays_of(dvc_yaml, []) == []
    # the project's own: each overlay drawing q1/logreg_lr1e-3, and none other
    project = yaml.safe_load((REPO / "dvc.yaml").read_text())
    found = review.overlays_of(project, ["plots/q1/logreg_lr1e-3.csv"])
    assert found and all("plots/q1/logreg_lr1e-3.csv" in spec["y"]
                         for entry in project["plots"] for plot_id, spec in entry.items()
                         if plot_id in found)


TABLES_MD = """# The report's tables, reproduced

## Table 1: Test accuracy of every Question 1 classifier (NumPy)

| Classifier (report) | Run | ... |

## Table 3: Default hyperparameters (params.yaml `train`)

## Table 5: Best and last validation accuracy per learning rate
"""
TABLE1 = ("row,run,params,test_acc_report,test_acc_reproduced,note\n"
          "perceptron,q1/perceptron,\"model=perceptron, epochs=2\",0.3422,0.499,\n"
          "\"logistic regression, lr 0.001\",q1/logreg_lr1e-3,lr=0.1,0.5936,0.359,"
          "params differ: lr=0.1 | report 0.001\n")
TABLE3 = "hyperparameter,key,report,params,difference\nLearning rate,train.lr,0.1,0.1,same\n"
TABLE5 = ("row,run,params,val_acc_report,val_acc_reproduced,note\n"
          "1,q2/ffn_lr1,lr=1,0.1,0.1,\n0.1,train,lr=0.1,0.8,0.79,\n")


def test_table_titles_are_the_headings_of_tables_md():
    titles = review.table_titles(TABLES_MD)
    assert titles == {1: "Table 1: Test accuracy of every Question 1 classifier (NumPy)",
                      3: "Table 3: Default hyperparameters (params.yaml `train`)",
                      5: "Table 5: Best and last validation accuracy per learning rate"}


def test_table_rows_are_the_csv_rows_of_the_changed_runs():
    csvs = {1: TABLE1, 3: TABLE3, 5: TABLE5}
    titles = review.table_titles(TABLES_MD)
    text = review.table_rows([RunId("q1", "logreg_lr1e-3"), RunId(None, "train")], csvs, titles)
    assert text.split("\n\n") == [
        "#### Table 1: Test accuracy of every Question 1 classifier (NumPy)",
        "| row | run | params | test_acc_report | test_acc_reproduced | note |\n"
        "|---|---|---|---|---|---|\n"
        "| logistic regression, lr 0.001 | `q1/logreg_lr1e-3` | lr=0.1 | 0.5936 | 0.359 | "
        "params differ: lr=0.1 \\| report 0.001 |",
        "#### Table 5: Best and last validation accuracy per learning rate",
        "| row | run | params | val_acc_report | val_acc_reproduced | note |\n"
        "|---|---|---|---|---|---|\n"
        "| 0.1 | `train` | lr=0.1 | 0.8 | 0.79 |  |"]
    assert review.table_rows([RunId("q2", "ffn_bs1024")], csvs, titles) == "No change."
    assert review.table_rows([], csvs, titles) == "No change."
    # a table whose heading is not in tables.md is named by its number
    assert review.table_rows([RunId(None, "train")], {5: TABLE5}, {}).startswith("#### Table 5\n")


def test_read_tables(tmp_path):
    (tmp_path / "table1.csv").write_text(TABLE1)
    (tmp_path / "table5.csv").write_text(TABLE5)
    (tmp_path / "tables.md").write_text(TABLES_MD)
    (tmp_path / "tableX.csv").write_text("")
    assert review.read_tables(tmp_path) == {1: TABLE1, 5: TABLE5}


# --- the two modes, with a stand-in for `dvc` --------------------------------------------------

class FakeDvc:
    """Answers `dvc` as DVC does: `status --json` from ``statuses`` in turn, `pull` failing with
    ``pull_error`` (DVC's ERROR line) if given; `remote add` writes .dvc/config.local."""

    def __init__(self, *statuses: dict, pull_error: str | None = None):
        self.statuses = list(statuses)
        self.pull_error = pull_error
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str, remote: Remote | None = None, show: bool = False) -> str:
        self.calls.append(args)
        if args[:2] == ("remote", "add"):
            review.LOCAL_CONFIG.write_text(f"[core]\n    remote = {args[-2]}\n")
        elif args[:2] == ("status", "--json"):
            return json.dumps(self.statuses.pop(0))
        elif args[0] == "pull" and self.pull_error:
            raise DvcFailed(review.failure(args, f"ERROR: {self.pull_error}\n", remote))
        return ""


@dataclass
class Project:
    path: Path
    written: list[str]       # the first line of each review written


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A working directory with LOCK as dvc.lock and a .dvc/config.local of the user's own;
    `write_review` and the base check stood in for, the review's first line kept in
    ``project.written``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": LOCK}))
    review.LOCAL_CONFIG.write_text("['remote \"mine\"']\n    url = /srv/mine\n")
    written: list[str] = []
    monkeypatch.setattr(review, "check_base", lambda base: None)
    monkeypatch.setattr(review, "write_review", lambda base, how: written.append(how))
    return Project(tmp_path, written)


def repro_to(lock: dict = AFTER):
    """A stand-in for `dvc repro` that leaves ``lock`` as dvc.lock, and records its remote."""
    used: list[Remote | None] = []

    def repro(remote: Remote | None) -> None:
        used.append(remote)
        Path("dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": lock}))
    repro.used = used
    return repro


def test_pr_with_the_remote_counts_what_it_restored(project, monkeypatch):
    fake = FakeDvc(FRESH, ONE_PARAM)
    monkeypatch.setattr(review, "dvc", fake)
    config = review.LOCAL_CONFIG.read_bytes()
    repro = repro_to()
    review.review_pr("main", {"DVC_REMOTE_URL": str(project.path)}, repro)
    assert [call[0] for call in fake.calls] == ["remote", "status", "pull", "status"]
    assert repro.used == [Remote(str(project.path))]
    assert project.written == ["**Stages:** 2 reproduced, 1 restored from the remote, "
                               "1 unchanged."]
    assert review.LOCAL_CONFIG.read_bytes() == config   # after success too


def test_pr_whose_pull_fails_runs_without_the_remote_and_says_why(project, monkeypatch, capsys):
    fake = FakeDvc(FRESH, FRESH, pull_error="failed to pull data from the cloud - Forbidden")
    monkeypatch.setattr(review, "dvc", fake)
    config = review.LOCAL_CONFIG.read_bytes()
    repro = repro_to()
    review.review_pr("main", {"DVC_REMOTE_URL": str(project.path)}, repro)
    cause = (f"dvc pull --allow-missing failed (remote 'ci': {project.path}): failed to pull data "
             f"from the cloud - Forbidden")
    assert repro.used == [None]
    assert project.written == [f"**Without the remote:** {cause}, so the pipeline ran without "
                               f"it (3 reproduced, 1 unchanged)."]
    assert capsys.readouterr().err == f"review: reviewing without the remote: {cause}\n"
    assert review.LOCAL_CONFIG.read_bytes() == config


def test_pr_with_a_remote_holding_nothing_runs_without_it(project, monkeypatch, capsys):
    empty = project.path / "empty"
    empty.mkdir()
    monkeypatch.setattr(review, "dvc", FakeDvc(FRESH, FRESH, FRESH))
    repro = repro_to()
    review.review_pr("main", {"DVC_REMOTE_URL": str(empty)}, repro)
    assert repro.used == [None]
    reason = (f"the remote 'ci' ({empty}) holds none of the results of the 3 stages whose "
              f"outputs are missing here")
    assert project.written == [f"**Without the remote:** {reason}, so the pipeline ran without "
                               f"it (3 reproduced, 1 unchanged)."]
    assert capsys.readouterr().err == f"review: reviewing without the remote: {reason}\n"


def test_pr_with_a_missing_directory_remote_never_adds_it(project, monkeypatch, capsys):
    fake = FakeDvc(ONE_PARAM)
    monkeypatch.setattr(review, "dvc", fake)
    config = review.LOCAL_CONFIG.read_bytes()
    missing = project.path / "missing"
    review.review_pr("main", {"DVC_REMOTE_URL": str(missing)}, repro_to())
    assert fake.calls == [("status", "--json")]
    reason = f"the directory remote 'ci' ({missing}) does not exist"
    assert project.written == [f"**Without the remote:** {reason}, so the pipeline ran without "
                               f"it (2 reproduced, 2 unchanged)."]
    assert capsys.readouterr().err == f"review: reviewing without the remote: {reason}\n"
    assert review.LOCAL_CONFIG.read_bytes() == config
    assert not missing.exists()


def test_main_refuses_a_missing_directory_remote_unless_asked(project, monkeypatch, capsys):
    fake = FakeDvc(FRESH, FRESH)
    monkeypatch.setattr(review, "dvc", fake)
    config = review.LOCAL_CONFIG.read_bytes()
    missing = project.path / "typo"
    assert review.main(["main"], {"DVC_REMOTE_URL": f"file://{missing}"}) == 1
    assert capsys.readouterr().err == (
        f"review: cannot push the baseline: the directory remote 'ci' (file://{missing}) does "
        f"not exist (check DVC_REMOTE_URL, or pass --create-remote to create it)\n")
    assert fake.calls == [] and not missing.exists()
    assert review.LOCAL_CONFIG.read_bytes() == config

    monkeypatch.setattr(review, "reproduce", lambda restored, repro=None: review.stage_counts(
        restored, {}, LOCK))
    monkeypatch.setattr(review.verify, "main", lambda argv: 0)  # a sound cache
    assert review.main(["main", "--create-remote"], {"DVC_REMOTE_URL": f"file://{missing}"}) == 0
    assert missing.is_dir()
    out = capsys.readouterr()
    assert out.err.splitlines() == [
        f"review: created the directory remote 'ci' (file://{missing})",
        f"review: the remote 'ci' (file://{missing}) holds none of the results of the 3 stages "
        f"whose outputs are missing here: they are reproduced here and pushed"]
    assert "Stages: 4 reproduced, 0 restored from the remote, 0 unchanged" in out.out
    assert fake.calls[-1] == ("push", "--run-cache")
    assert review.LOCAL_CONFIG.read_bytes() == config


def test_main_never_pushes_a_cache_that_fails_verification(project, monkeypatch, capsys):
    fake = FakeDvc(FRESH, FRESH)
    monkeypatch.setattr(review, "dvc", fake)
    monkeypatch.setattr(review, "reproduce", lambda restored, repro=None: review.stage_counts(
        restored, {}, LOCK))
    monkeypatch.setattr(review.verify, "main", lambda argv: 1)  # a corrupt object found
    remote = project.path / "remote"
    remote.mkdir()
    config = review.LOCAL_CONFIG.read_bytes()
    assert review.main(["main"], {"DVC_REMOTE_URL": str(remote)}) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "review: not pushing: the cache holds corrupt objects (above); run "
        "`python -m scripts.verify --remove-corrupt`, then this again")
    assert ("push", "--run-cache") not in fake.calls
    assert review.LOCAL_CONFIG.read_bytes() == config


def test_main_whose_pull_fails_exits_with_one_line_and_the_config_restored(
        project, monkeypatch, capsys):
    monkeypatch.setattr(review, "dvc", FakeDvc(FRESH, pull_error="unexpected error - Not a "
                                                                 "directory"))
    config = review.LOCAL_CONFIG.read_bytes()
    assert review.main(["main"], {"DVC_REMOTE_URL": str(project.path)}) == 1
    assert capsys.readouterr().err == (f"review: dvc pull --allow-missing failed (remote 'ci': "
                                       f"{project.path}): unexpected error - Not a directory\n")
    assert review.LOCAL_CONFIG.read_bytes() == config


@pytest.mark.parametrize("argv", [[], ["push"], ["pr", "main", "extra"], ["pr", "--base"],
                                  ["main", "--create"]])
def test_usage_errors_are_one_line(argv, project, monkeypatch, capsys):
    monkeypatch.setattr(review, "dvc", FakeDvc())
    assert review.main(argv, {}) == 1
    assert capsys.readouterr().err == f"review: {review.USAGE}\n"


def test_main_without_a_remote_fails_with_one_line(project, capsys):
    assert review.main(["main"], {}) == 1
    assert capsys.readouterr().err == ("review: cannot push the baseline: no DVC remote is "
                                       "configured (set DVC_REMOTE_URL)\n")
