"""fab exec's host side: the real host program, run as a host runs it (its shell command), on a
temporary project: the command runs in the live release with the units' environment, its venv first
on PATH, and its exit status comes back as it was."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ayna_fab.commands import hostcalls
from ayna_fab.config.layout import Layout
from ayna_fab.errors import CommandExited
from ayna_fab.hostprog import envfile


@pytest.fixture
def project(tmp_path):
    lay = Layout(str(tmp_path), "shop", "production")
    rel = Path(lay.release(3))
    (rel / ".venv" / "bin").mkdir(parents=True)
    tool = rel / ".venv" / "bin" / "tool"
    tool.write_text('#!/bin/sh\nprintf "%s|%s|%s\\n" "$PWD" "$SECRET" "$*"\nexit "${CODE:-0}"\n')
    tool.chmod(0o755)
    Path(lay.shared).mkdir(parents=True)
    Path(lay.env_file).write_text(f"SECRET={envfile.quote('a # b $c')}\nCODE=0\n")
    os.symlink("v3", lay.current)
    return lay


def run(lay, argv):
    cmd = hostcalls.exec_in_release(lay, argv)
    return subprocess.run(["bash", "-c", cmd.script], capture_output=True, text=True, timeout=60)


def test_the_command_runs_in_the_live_release_with_the_env_file_and_its_venv_first(project):
    p = run(project, ["tool", "x y"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{os.path.realpath(project.release(3))}|a # b $c|x y"


@pytest.mark.parametrize("code", [1, 3, 42])
def test_its_exit_status_comes_back_as_it_was(project, code):
    Path(project.env_file).write_text(f"CODE={code}\n")
    assert run(project, ["tool"]).returncode == code


def test_without_a_live_release_it_is_refused(project):
    os.unlink(project.current)
    p = run(project, ["tool"])
    assert p.returncode == 3 and "no live release" in p.stdout


def test_the_task_exits_with_the_commands_status():
    err = CommandExited("tool exited 42", 42, host="h1", step="exec")
    assert err.exit_code == 42 and str(err) == "[h1] exec: tool exited 42"
