"""The built wheel carries everything the tool reads from its own package at run time: every
file under ayna_fab/ that is not Python (unit templates, the sandbox's requirements) must match
pyproject's package data, or the installed command would miss it (tests/e2e/test_install.py
installs the real wheel)."""

from __future__ import annotations

import fnmatch
import subprocess
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_data_file_of_the_package_is_package_data():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["ayna_fab"]
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "ayna_fab"], capture_output=True, text=True,
                           check=True).stdout.split()
    data = [f for f in files if not f.endswith(".py")]
    assert data, "no data files found: is this a git checkout?"
    missing = [f for f in data if not any(fnmatch.fnmatch(Path(f).name, p.split("/")[-1]) for p in patterns)]
    assert missing == []


def test_the_command_is_an_entry_point_of_the_package():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    module, _, function = pyproject["project"]["scripts"]["ayna-fab"].partition(":")
    assert module == "ayna_fab.cli.program" and callable(getattr(__import__(module, fromlist=[function]), function))
