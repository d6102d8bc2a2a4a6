"""One error path: every error a user can cause is a UserError, and every stage runs through
``run_stage``, which turns one into one line and exit 1 and lets anything else show its
traceback."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from hw1.boolean_report import ReportValuesError
from hw1.data import DataError
from hw1.errors import UserError, run_stage
from hw1.figures import FiguresError
from hw1.params import ParamsError
from hw1.report_inputs import ReportInputError

REPO = Path(__file__).resolve().parents[1]
STAGES = sorted(p for p in (REPO / "stages").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("error", [ParamsError, DataError, ReportInputError, FiguresError,
                                   ReportValuesError])
def test_every_error_a_user_can_cause_is_a_user_error(error):
    assert issubclass(error, UserError)


def test_params_error_is_still_a_value_error():
    assert issubclass(ParamsError, ValueError)


def test_a_user_error_is_one_line_and_exit_1(capsys):
    def main(argv):
        raise DataError(f"data/raw/octmnist.npz is not a .npz ({argv[0]})")

    with pytest.raises(SystemExit) as exit_:
        run_stage(main, "prepare", ["x"])
    assert exit_.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "prepare failed: data/raw/octmnist.npz is not a .npz (x)\n"


def test_the_heading_replaces_stage_failed(capsys):
    def main():
        raise ParamsError("train.lr must be a finite number > 0, got 0")

    with pytest.raises(SystemExit):
        run_stage(main, "check_params", heading="params.yaml is invalid")
    assert capsys.readouterr().err == ("params.yaml is invalid: train.lr must be a finite "
                                       "number > 0, got 0\n")


@pytest.mark.parametrize("bug", [RuntimeError("internal"), KeyError("epoch"),
                                 FileNotFoundError("somewhere")])
def test_anything_else_is_a_bug_and_propagates(bug, capsys):
    def main():
        raise bug

    with pytest.raises(type(bug)):
        run_stage(main, "tables")
    assert capsys.readouterr().err == ""


def test_a_bug_in_a_stage_shows_its_traceback(tmp_path):
    script = ("from hw1.errors import run_stage\n"
              "def main():\n    {}['missing']\n"
              "run_stage(main, 'tables')\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "KeyError: 'missing'" in proc.stderr and "tables failed" not in proc.stderr


def _main_block(tree: ast.Module) -> list[ast.stmt]:
    blocks = [node.body for node in tree.body if isinstance(node, ast.If)
              and ast.unparse(node.test) == "__name__ == '__main__'"]
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.parametrize("stage", STAGES, ids=lambda p: p.stem)
def test_every_stage_runs_through_run_stage(stage):
    block = _main_block(ast.parse(stage.read_text()))
    assert len(block) == 1
    call = block[0].value
    assert isinstance(call, ast.Call) and ast.unparse(call.func) == "run_stage"
    assert ast.unparse(call.args[0]) == "main"


@pytest.mark.parametrize("stage", STAGES, ids=lambda p: p.stem)
def test_no_stage_catches_a_broad_exception(stage):
    broad = {"Exception", "BaseException", "RuntimeError", "OSError", "FileNotFoundError"}
    caught = []
    for node in ast.walk(ast.parse(stage.read_text())):
        if isinstance(node, ast.ExceptHandler):
            if node.type is None:
                caught.append("bare except")
                continue
            types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            caught += [ast.unparse(t) for t in types if ast.unparse(t) in broad]
    assert caught == []
