"""dvc.yaml's deps are exactly the project files each stage's command imports, transitively.

DVC re-runs a stage when a listed dep changes, so a missing file means an edit that silently
re-runs nothing, and an extra one re-runs a stage for nothing (a table's title retraining runs).
For the same reason no training stage imports a module that only draws the report: editing a
table's wording or a figure's style must never retrain a model.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("hw1", "stages")
TRAINING_STAGES = ("train", "q1", "q2")
# What only the tables, claims, figures and Question 3's report read.
REPORTING = ("hw1/report_inputs.py", "hw1/tables.py", "hw1/claims.py", "hw1/figures.py",
             "hw1/boolean_report.py")


def module_file(module: str, root: Path = REPO) -> Path | None:
    """The project file of a dotted module name, or None for anything outside the project."""
    if module.split(".")[0] not in PACKAGES:
        return None
    path = root / Path(*module.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return path / "__init__.py" if (path / "__init__.py").is_file() else None


def imported_files(path: Path, root: Path = REPO) -> set[Path]:
    """Project files ``path`` imports when it runs, anywhere in it (also inside functions);
    imports for type checkers only (``if TYPE_CHECKING:``) never run, so they do not count."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree)
                   if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
                   for n in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from hw1 import data` imports the module hw1.data; `from hw1.data import x` hw1.data
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {f for f in map(lambda n: module_file(n, root), names) if f is not None}
    return found


def closure(entry: Path, root: Path = REPO) -> set[str]:
    """Every project file ``entry`` needs, itself included; package ``__init__``s left out."""
    seen, todo = set(), [entry]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += imported_files(path, root)
    return {p.relative_to(root).as_posix() for p in seen if p.name != "__init__.py"}


def stage_code_deps(dvc_yaml: Path) -> dict[str, tuple[set[str], set[str]]]:
    """stage -> (the .py files dvc.yaml lists, the files its command imports)."""
    root = dvc_yaml.parent
    result = {}
    for name, stage in yaml.safe_load(dvc_yaml.read_text())["stages"].items():
        stage = stage.get("do", stage)  # a foreach stage: every instance runs the same command
        match = re.search(r"python -m ([\w.]+)", stage["cmd"])
        assert match, f"stage {name}: command {stage['cmd']!r} runs no project module"
        listed = {d for d in stage.get("deps", []) if d.endswith(".py")}
        result[name] = (listed, closure(module_file(match.group(1), root), root))
    return result


def mismatches(dvc_yaml: Path) -> list[str]:
    problems = []
    for name, (listed, imported) in stage_code_deps(dvc_yaml).items():
        problems += [f"stage {name}: imports {f} but dvc.yaml does not list it"
                     for f in sorted(imported - listed)]
        problems += [f"stage {name}: dvc.yaml lists {f} but the stage does not import it"
                     for f in sorted(listed - imported)]
    return problems


def reporting_in_training(dvc_yaml: Path) -> list[str]:
    """Each reporting module a training stage imports, directly or through another module."""
    deps = stage_code_deps(dvc_yaml)
    return [f"stage {name}: a training stage imports the reporting module {f}"
            for name in TRAINING_STAGES for f in sorted(deps[name][1] & set(REPORTING))]


def test_every_stage_lists_exactly_the_project_files_it_imports():
    assert mismatches(REPO / "dvc.yaml") == []


@pytest.mark.parametrize("edit, message", [
    (lambda deps: deps.remove("hw1/runs.py"),
     "stage tables: imports hw1/runs.py but dvc.yaml does not list it"),
    (lambda deps: deps.append("hw1/torch_training.py"),
     "stage tables: dvc.yaml lists hw1/torch_training.py but the stage does not import it"),
])
def test_a_missing_or_extra_dep_is_named(tmp_path, edit, message):
    for package in PACKAGES:
        (tmp_path / package).symlink_to(REPO / package)
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    edit(dvc["stages"]["tables"]["deps"])
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc))
    assert mismatches(tmp_path / "dvc.yaml") == [message]


def test_imports_inside_functions_and_from_package_imports_count(tmp_path):
    (tmp_path / "hw1").mkdir()
    (tmp_path / "hw1/__init__.py").write_text("")
    (tmp_path / "hw1/a.py").write_text("def f():\n    import hw1.b\n"
                                        "if TYPE_CHECKING:\n    import hw1.d\n")
    (tmp_path / "hw1/b.py").write_text("from hw1 import c\nimport numpy\n")
    (tmp_path / "hw1/c.py").write_text("")
    (tmp_path / "hw1/d.py").write_text("")
    assert closure(tmp_path / "hw1/a.py", tmp_path) == {"hw1/a.py", "hw1/b.py", "hw1/c.py"}


def test_no_training_stage_imports_a_reporting_module():
    assert reporting_in_training(REPO / "dvc.yaml") == []


def _project(root: Path, modules: dict[str, str]) -> Path:
    """A project of ``modules`` (path -> source) with the three training stages of dvc.yaml."""
    for package in PACKAGES:
        (root / package).mkdir()
        (root / package / "__init__.py").write_text("")
    for path, source in modules.items():
        (root / path).write_text(source)
    stages = {"train": "python -m stages.train_torch train 1",
              "q1": "python -m stages.train_numpy q1.mlp 1",
              "q2": "python -m stages.train_torch q2.ffn 1"}
    (root / "dvc.yaml").write_text(yaml.safe_dump(
        {"stages": {name: {"cmd": cmd} for name, cmd in stages.items()}}))
    return root / "dvc.yaml"


def test_a_training_stage_importing_a_reporting_module_is_named(tmp_path):
    dvc_yaml = _project(tmp_path, {
        "stages/train_torch.py": "from hw1.runs import RunId\n",
        "stages/train_numpy.py": "import hw1.outputs\n",
        "hw1/runs.py": "def f():\n    from hw1.report_inputs import format_params\n",
        "hw1/outputs.py": "from hw1 import tables\n",
        "hw1/report_inputs.py": "", "hw1/tables.py": "from hw1.report_inputs import x\n"})
    assert reporting_in_training(dvc_yaml) == [
        "stage train: a training stage imports the reporting module hw1/report_inputs.py",
        "stage q1: a training stage imports the reporting module hw1/report_inputs.py",
        "stage q1: a training stage imports the reporting module hw1/tables.py",
        "stage q2: a training stage imports the reporting module hw1/report_inputs.py"]


def test_a_training_stage_importing_only_training_modules_passes(tmp_path):
    dvc_yaml = _project(tmp_path, {
        "stages/train_torch.py": "from hw1.runs import RunId\n",
        "stages/train_numpy.py": "import hw1.runs\n",
        "hw1/runs.py": "import numpy\n",
        "hw1/report_inputs.py": "from hw1.runs import RunId\n"})
    assert reporting_in_training(dvc_yaml) == []
