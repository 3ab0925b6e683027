"""The CLI contract of docs/cli.md, a test per row. Each test walks every task of the namespace, so
a task added later is held to the same rules without anyone listing it here."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from invoke import Collection

from ayna_fab.cli import flags, program
from ayna_fab.cli.exitcodes import task
from ayna_fab.cli.namespace import GROUPS, HIDDEN_COLLECTIONS, ns

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "uavcrew"


def walk(collection, prefix=""):
    for name, t in collection.tasks.items():
        yield prefix + name, t
    for name, sub in collection.collections.items():
        yield from walk(sub, f"{prefix}{name}.")


TASKS = dict(walk(ns))


def run(capsys, *argv, prog=None):
    """ayna-fab ARGV in this process (nothing here reaches a task's body): (exit code, stdout, stderr)."""
    try:
        (prog or program.program()).run(["ayna-fab", *argv])
        code = 0
    except SystemExit as done:
        code = 0 if done.code is None else done.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def no_inventory(tmp_path, monkeypatch):
    monkeypatch.setenv("AYNA_FAB_HOSTS", str(tmp_path / "hosts.toml"))   # never this repository's


def value_flags(t):
    return [a for a in t.get_arguments() if a.takes_value and not a.positional]


# --- usage errors exit 2, with the usage and a "did you mean" ---------------------------------

def test_an_unknown_task_exits_2_with_the_usage_and_the_close_name(capsys):
    code, out, err = run(capsys, "deplyo")
    assert code == 2 and "unknown task 'deplyo'; did you mean deploy?" in err and "Usage: ayna-fab" in err
    code, _, err = run(capsys, "zzzzzz")
    assert code == 2 and "did you mean" not in err and "--list" in err


@pytest.mark.parametrize("name", sorted(TASKS))
def test_an_unknown_flag_exits_2_with_the_tasks_usage(capsys, name):
    code, out, err = run(capsys, name, "--no-such-flag")
    assert code == 2, (out, err)
    assert f"unknown flag --no-such-flag for {name}" in err and f"Usage: ayna-fab [-H TARGET] {name}" in err


@pytest.mark.parametrize("name", sorted(n for n, t in TASKS.items() if value_flags(t)))
def test_a_close_flag_is_named_and_a_flag_without_its_value_exits_2(capsys, name):
    arg = value_flags(TASKS[name])[0]
    long = f"--{arg.name.replace('_', '-')}"
    code, _, err = run(capsys, name, long + "x", "v")
    assert code == 2 and f"did you mean {long}?" in err, err
    code, _, err = run(capsys, name, long)
    assert code == 2 and f"{long} needs a value" in err and f"Usage: ayna-fab [-H TARGET] {name}" in err, err


def test_a_malformed_value_or_a_value_for_a_switch_exits_2(capsys):
    code, _, err = run(capsys, "sandbox.up", "--count", "many")
    assert code == 2 and "malformed" in err
    code, _, err = run(capsys, "deploy", "--dry-run=yes")
    assert code == 2 and "yes" in err


def test_a_missing_argument_exits_2_with_the_usage(capsys):
    @task
    def copy(c, source):
        """Copy SOURCE.

        Example: ayna-fab copy here
        """
    prog = program.Program(name="ayna-fab", binary="ayna-fab", version="0", namespace=Collection(copy))
    code, _, err = run(capsys, "copy", prog=prog)
    assert code == 2 and "copy needs SOURCE" in err and "Usage: ayna-fab [-H TARGET] copy SOURCE" in err
    required = {n: [a.name for a in t.get_arguments() if a.positional
                    and a.name not in getattr(t, "positional_defaults", {})] for n, t in TASKS.items()}
    for name, args in required.items():
        if args:
            code, _, err = run(capsys, name)
            assert code == 2 and "needs" in err, (name, err)


# --- flags mean one thing everywhere ----------------------------------------------------------

def test_each_short_flag_means_one_option_in_every_task():
    meaning = defaultdict(set)
    for name, t in TASKS.items():
        for a in t.get_arguments():
            for short in (n for n in a.names if len(n) == 1):
                meaning[short].add(a.name)
    assert {s: names for s, names in meaning.items() if len(names) > 1} == {}
    assert "h" not in meaning and "H" not in meaning
    assert len(set(flags.SHORT.values())) == len(flags.SHORT)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_dash_h_is_help_in_every_task_and_help_names_dash_H_and_an_example(capsys, name):
    code, out, err = run(capsys, name, "-h")
    assert code == 0, err
    assert out.startswith(f"Usage: ayna-fab [-H TARGET] {name}")
    assert "-H TARGET (before the task)" in out
    assert "Example: ayna-fab " in out and f" {name}" in out.split("Example: ", 1)[1].splitlines()[0]


# --- init, the version, the list --------------------------------------------------------------

def test_init_reads_the_current_directory_when_no_path_is_given(capsys, monkeypatch):
    monkeypatch.chdir(DEMO)
    code, out, err = run(capsys, "init")
    assert code == 0, err
    assert f"uavcrew in {DEMO}" in out or "uavcrew in ." in out


def test_the_version_is_ayna_fabs_first(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.splitlines()[0] == f"ayna-fab {program.version()}" and "Fabric" in out


def test_the_list_groups_the_users_tasks_and_keeps_the_sandbox_apart(capsys):
    code, out, _ = run(capsys, "--list")
    assert code == 0
    for title, names in GROUPS:
        assert f"{title}:" in out
        for n in names:
            assert f"\n  {n} " in out
    listed = {n for _, names in GROUPS for n in names}
    for name in TASKS:
        hidden = name.split(".")[0] in HIDDEN_COLLECTIONS and "." in name
        assert (f"\n  {name} " in out) is not hidden, name
        assert hidden or name in listed or "Other tasks:" in out
    code, out, _ = run(capsys, "--list", "sandbox")
    assert code == 0 and "\n  sandbox.up " in out


def test_the_installed_command_runs_from_any_directory(tmp_path):
    command = Path(sys.executable).with_name("ayna-fab")
    r = subprocess.run([str(command), "-H", "nowhere", "status"], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "AYNA_FAB_HOSTS": ""}, timeout=60)
    assert r.returncode == 2 and "hosts.toml: file not found" in r.stderr, r.stderr


def test_completion_offers_the_tasks_and_their_flags(capsys):
    code, out, _ = run(capsys, "--complete", "--", "ayna-fab", "dep")
    assert code == 0 and "deploy" in out.split()
    code, out, _ = run(capsys, "--complete", "--", "ayna-fab", "deploy", "--")
    assert code == 0 and "--dry-run" in out.split() and "--ref" in out.split()
    code, out, _ = run(capsys, "--print-completion-script", "bash")
    assert code == 0 and "complete -F _complete_ayna-fab" in out and "ayna-fab --complete" in out
