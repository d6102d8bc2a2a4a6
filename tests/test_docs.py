"""The front page and the docs stay true: the README's pipeline graph is DVC's own, every relative
link resolves, and no page is left with a transcript still to be taken."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = sorted([REPO / "README.md", REPO / "benchmarks" / "README.md",
                *(REPO / "docs").glob("*.md"),
                *(REPO / d / "README.md" for d in ("data", "metrics", "plots"))])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DAG = re.compile(r"<!-- dag -->\n(.*?)<!-- /dag -->", re.S)


def relative_links(text: str) -> list[str]:
    """The link targets of ``text`` that point into the project (no URL, no bare anchor)."""
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def broken_links(page: Path) -> list[str]:
    return [target for target in relative_links(page.read_text())
            if not (page.parent / target.split("#")[0]).exists()]


def test_relative_links_finds_only_project_paths():
    text = "[a](docs/x.md) [b](https://dvc.org) [c](#top) [d](../y.md#part) [e](mailto:x@y)"
    assert relative_links(text) == ["docs/x.md", "../y.md#part"]


def test_broken_links_names_a_missing_target(tmp_path: Path):
    (tmp_path / "there.md").write_text("x")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [gone](missing.md#a)")
    assert broken_links(page) == ["missing.md#a"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path):
    assert page.is_file(), f"{page} is linked as a page but missing"
    assert broken_links(page) == [], f"{page.relative_to(REPO)} links to missing files"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_transcript_left_to_take(page: Path):
    assert "<<T:" not in page.read_text()


def test_docs_pages_say_what_they_are_for():
    for page in (REPO / "docs").glob("*.md"):
        lines = page.read_text().splitlines()
        assert lines[0].startswith("# "), f"{page.name} starts with its title"
        assert next(line for line in lines[1:] if line.strip()).startswith(("For ", "How ")), \
            f"{page.name}: the first paragraph says what the page is for"


@pytest.mark.e2e
def test_readme_pipeline_graph_is_dvc_dag():
    dag = subprocess.run([sys.executable, "-m", "dvc", "dag", "--md", "--collapse-foreach-matrix"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    found = DAG.search((REPO / "README.md").read_text())
    assert found, "README.md has no <!-- dag --> ... <!-- /dag --> block"
    assert found.group(1).strip() == dag.strip(), \
        "README.md's graph differs from `dvc dag --md --collapse-foreach-matrix`: paste its output"
