"""The host keeps the host program: the first call to a host carries it whole and leaves a copy in
the SSH user's cache; later calls send about a kilobyte that runs that copy if its hash is right.
Run locally through bash, as a host runs them, with HOME pointing at a temporary directory."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Project
from ayna_fab.hostprog.wire import MISSING, MISSING_EXIT
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Remote, Result

PROJECT = Project(name="demo", source=None, port_base=8130, services=("web",), env="production")


@dataclass
class Ran:
    exited: int
    stdout: str
    stderr: str


class LocalConnection:
    """Runs each command with bash on this machine, as sshd would on a host, for one HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.scripts: list[str] = []

    def run(self, script, **kw) -> Ran:
        self.scripts.append(script)
        p = run_local(script, self.home)
        return Ran(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def lay(tmp_path):
    layout = Layout(str(tmp_path / "base"), "demo", "production")
    os.makedirs(layout.releases)
    os.makedirs(os.path.join(layout.root, "shared"))
    return layout


def plan_call(lay):
    """A read (a plan that takes no lock): its answer does not change between calls but for the
    disk's free space (see `settled`)."""
    return cmd.plan(lay, PROJECT, None)


def settled(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "disk_free"}


def run_local(script: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, HOME=str(home)))


def test_the_short_form_is_small_and_runs_nothing_without_the_program(lay, tmp_path):
    command = plan_call(lay)
    assert len(hostcall.cached_bootstrap()) < 2_000 < 40_000 < len(hostcall.bootstrap())
    p = run_local(command.cached, tmp_path / "home")
    assert p.returncode == MISSING_EXIT and MISSING in p.stderr and p.stdout == ""


def test_the_whole_program_leaves_a_copy_the_short_form_then_runs(lay, tmp_path):
    home = tmp_path / "home"
    command = plan_call(lay)
    whole = hostcall.parse(_result(run_local(command.script, home)), host="local", step="plan")
    kept = list((home / ".cache" / "ayna-fab").iterdir())
    assert [p.name for p in kept] == [f"program-{hostcall._program()[1]}.z"]
    assert oct(os.stat(home / ".cache" / "ayna-fab").st_mode & 0o777) == "0o700"
    short = hostcall.parse(_result(run_local(command.cached, home)), host="local", step="plan")
    assert settled(short) == settled(whole) and "error" not in short


def test_a_copy_that_is_not_exactly_the_program_is_not_run(lay, tmp_path):
    home = tmp_path / "home"
    command = plan_call(lay)
    run_local(command.script, home)
    kept = next((home / ".cache" / "ayna-fab").iterdir())
    data = kept.read_bytes()
    kept.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))   # always another byte (the last may be "x")
    p = run_local(command.cached, home)
    assert p.returncode == MISSING_EXIT and MISSING in p.stderr


def test_the_laptop_sends_the_program_once_then_the_short_form(lay, tmp_path):
    conn = LocalConnection(tmp_path / "home")
    remote = Remote("local", conn)
    first = hostcall.parse(remote.run(plan_call(lay)), host="local", step="plan")
    assert remote.round_trips == 2 and conn.scripts[1] == plan_call(lay).script   # missed, then whole
    for _ in range(3):
        assert settled(hostcall.parse(remote.run(plan_call(lay)), host="local", step="plan")) == settled(first)
    assert remote.round_trips == 5 and all(len(s) < 3_000 for s in conn.scripts[2:])


def test_a_host_that_cannot_keep_the_program_gets_it_whole_after_two_misses(lay, tmp_path):
    home = tmp_path / "home-is-a-file"
    home.write_text("")   # ~/.cache cannot be made: nothing is ever kept
    conn = LocalConnection(home)
    remote = Remote("local", conn)
    for _ in range(4):
        assert "error" not in hostcall.parse(remote.run(plan_call(lay)), host="local", step="plan")
    # miss + whole, miss + whole, then whole only: at most two wasted round trips per connection
    assert remote.round_trips == 6 and [len(s) > 40_000 for s in conn.scripts] == [False, True, False, True, True, True]


def _result(p: subprocess.CompletedProcess) -> Result:
    return Result(p.returncode, p.stdout, p.stderr)


def test_hosts_asking_for_the_program_at_once_compress_it_once(monkeypatch):
    """A fleet's first wave asks from several threads at the same moment."""
    import threading
    import zlib

    hostcall._compressed.cache_clear()
    cond = threading.Condition()
    state = {"begun": 0, "compressed": 0}
    real = zlib.compress

    def compress(data, level=-1):
        with cond:   # hold the first compression until every thread has asked
            state["compressed"] += 1
            cond.wait_for(lambda: state["begun"] == 6, timeout=10)
        return real(data, level)

    def ask():
        with cond:
            state["begun"] += 1
            cond.notify_all()
        return hostcall._program()

    monkeypatch.setattr(hostcall.zlib, "compress", compress)
    try:
        threads, results = [], []
        for _ in range(6):
            th = threading.Thread(target=lambda: results.append(ask()))
            threads.append(th)
            th.start()
        for th in threads:
            th.join()
        assert state["compressed"] == 1 and len(set(results)) == 1
    finally:
        hostcall._compressed.cache_clear()
