"""A release whose lock and project file are the live release's gets the live venv, hard-linked,
and no uv run; anything else goes through uv (hostprog/prepare.py)."""

from __future__ import annotations

import os
import subprocess

import pytest

from ayna_fab.hostprog import prepare


def release(root, name, lock="lock-1", pyproject="[project]\nname='x'\n", venv=True, synced=True):
    rel = root / name
    (rel / ".venv" / "bin").mkdir(parents=True)
    (rel / "uv.lock").write_text(lock)
    (rel / "pyproject.toml").write_text(pyproject)
    if venv:
        (rel / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\nrelocatable = true\n")
        (rel / ".venv" / "bin" / "python").write_text("#!/bin/sh\n")
    if synced:
        (rel / prepare.REQUIREMENTS).write_text("django==5.0 --hash=sha256:00\n")
    return rel


@pytest.fixture
def live(tmp_path):
    return release(tmp_path, "v1")


def new(tmp_path, **kw):
    rel = release(tmp_path, "v2", venv=False, synced=False, **kw)
    (rel / ".venv" / "bin").rmdir()
    (rel / ".venv").rmdir()
    return rel


def test_the_same_lock_reuses_the_live_venv_without_uv(tmp_path, live):
    rel = new(tmp_path)
    script = prepare.install_script(str(rel), str(live / ".venv"))
    assert prepare.reusable(str(rel), str(live / ".venv")) and "uv " not in script
    subprocess.run(["sh", "-c", script], cwd=rel, check=True)
    assert os.path.samefile(rel / ".venv" / "pyvenv.cfg", live / ".venv" / "pyvenv.cfg")   # hard links
    assert (rel / prepare.REQUIREMENTS).read_text() == (live / prepare.REQUIREMENTS).read_text()


@pytest.mark.parametrize("change", ["lock", "pyproject"])
def test_a_changed_lock_or_project_file_goes_through_uv(tmp_path, live, change):
    rel = new(tmp_path, **{change: "changed"})
    assert not prepare.reusable(str(rel), str(live / ".venv"))
    assert "uv pip sync" in prepare.install_script(str(rel), str(live / ".venv"))


def test_no_live_venv_or_one_not_relocatable_or_never_synced_goes_through_uv(tmp_path):
    rel = new(tmp_path)
    assert not prepare.reusable(str(rel), None)
    old = release(tmp_path, "v0", synced=False)   # its install never finished
    assert not prepare.reusable(str(rel), str(old / ".venv"))
    fixed = release(tmp_path, "v9")
    (fixed / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")   # not relocatable: it names its path
    assert not prepare.reusable(str(rel), str(fixed / ".venv"))
    assert "uv venv" in prepare.install_script(str(rel), str(fixed / ".venv"))


def test_a_release_without_a_lock_file_is_never_taken_for_unchanged(tmp_path, live):
    rel = new(tmp_path)
    (rel / "uv.lock").unlink()
    (live / "uv.lock").unlink()
    assert not prepare.reusable(str(rel), str(live / ".venv"))
