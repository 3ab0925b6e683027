"""README.md and docs/ link to each other by relative paths: every link must reach a file that
exists and, with an anchor, a heading of that file; README links every page of docs/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(path: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchor(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(line.lstrip("#")) for line in prose(path) if re.match(r"#{1,6} ", line)}


def relative_links(path: Path) -> list[str]:
    return [target for line in prose(path) for target in LINK.findall(line)
            if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        file, _, fragment = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and fragment not in anchors(dest):
            broken.append(f"{target}: no heading #{fragment}")
    assert not broken, f"{page.relative_to(REPO)}: {broken}"


def test_the_readme_links_every_page_of_docs():
    linked = {(REPO / target.partition("#")[0]).resolve() for target in relative_links(REPO / "README.md")}
    pages = set((REPO / "docs").glob("*.md"))
    assert sorted(str(p.relative_to(REPO)) for p in pages - linked) == []


def test_the_readme_names_both_set_up_commands_and_ci_runs_the_same_tests():
    readme = (REPO / "README.md").read_text()
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme
    assert "exec bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_the_readme_stays_a_short_guide_for_users():
    """Reference, measurements and manuals belong on their own pages of docs/."""
    assert len((REPO / "README.md").read_text().splitlines()) < 400


PATH_IN_TICKS = re.compile(r"`((?:ayna_fab|tests|scripts|benchmarks|examples|docs)/[\w./-]*?)[`*:]")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_repository_path_a_page_names_exists(page):
    """A page that names `ayna_fab/x.py` after the code moved sends a maintainer nowhere."""
    named = {m.group(1).rstrip("/.") for line in page.read_text().splitlines() for m in PATH_IN_TICKS.finditer(line)}
    missing = sorted(p for p in named if "{" not in p and "*" not in p and not (REPO / p).exists())
    assert missing == [], f"{page.relative_to(REPO)} names paths that do not exist: {missing}"
