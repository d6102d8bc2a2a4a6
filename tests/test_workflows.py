"""The GitHub workflows pass zizmor's offline audits (pinned actions, no persisted credentials,
least permissions, no ad-hoc installs), so an edit that reintroduces a finding fails the tests.
zizmor is a test requirement (requirements-test.txt)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

UNPINNED = """\
name: fixture
on: push
permissions: {}
jobs:
  build:
    name: Build
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - uses: actions/checkout@v4
        with:
          persist-credentials: false
"""


def zizmor(path: Path) -> subprocess.CompletedProcess:
    # the zizmor installed beside the interpreter running the tests, whatever the PATH holds
    exe = shutil.which("zizmor", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                      f"{os.environ.get('PATH', '')}")
    assert exe, "zizmor is not installed: pip install -r requirements-test.txt"
    return subprocess.run([exe, "--offline", "--no-progress", str(path)],
                          capture_output=True, text=True)


def test_workflows_have_no_zizmor_findings():
    workflows = sorted((REPO / ".github/workflows").glob("*.yml"))
    assert workflows
    result = zizmor(REPO / ".github/workflows")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout


def test_zizmor_fails_a_workflow_with_an_unpinned_action(tmp_path):
    (tmp_path / "ci.yml").write_text(UNPINNED)
    result = zizmor(tmp_path / "ci.yml")
    assert result.returncode != 0
    assert "unpinned-uses" in result.stdout
    assert "actions/checkout@v4" in result.stdout
