"""A timeout ends everything a hook or a build step started, and nothing waits on its output.

Real processes: each command writes the pid of every process it starts to a file (one that
called setsid, one orphaned by its parent's exit, one in its process group), and the verdict
is whether those processes still exist once the step has reported its outcome.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from pathlib import Path

import pytest

from ayna_fab.config.model import BuildStep, Hook
from ayna_fab.errors import OperationFailed
from ayna_fab.hostprog import hookrunner, proctree
from ayna_fab.ops import build, hooks
from tests.prereqs import requires
from tests.unit.test_recovery import World

pytestmark = requires(os.path.isdir("/proc/self"), "processes are read from /proc")

# Three descendants, each writing its pid, then the command waits for them: a setsid child
# whose parent lives, a setsid child whose parent (a subshell) has exited, a plain child.
TREE = ('echo $$ >> pids; '
        'setsid sh -c \'echo $$ >> pids; exec sleep 300\' & '
        '(setsid sh -c \'echo $$ >> pids; exec sleep 300\' &); '
        'sleep 300 & echo $! >> pids; '
        'while [ "$(wc -l < pids)" -lt 4 ]; do sleep 0.05; done; touch ready; wait')
DEADLINE = 60   # seconds a step may take to report; far beyond what a bounded one needs


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def pids(cwd: Path) -> list[int]:
    return [int(p) for p in (cwd / "pids").read_text().split()] if (cwd / "pids").exists() else []


def finished(fn, *args):
    """fn(*args) in a thread: (whether it returned before DEADLINE, its result or exception)."""
    out: dict = {}

    def call():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:   # noqa: BLE001 - handed to the test
            out["value"] = exc

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(DEADLINE)
    return not t.is_alive(), out.get("value")


@pytest.fixture
def cwd(tmp_path):
    yield tmp_path
    for pid in pids(tmp_path):   # whatever a failing run left behind
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_a_host_hook_past_its_timeout_ends_its_whole_tree_even_what_called_setsid(cwd):
    hook = {"name": "slow", "command": ["sh", "-c", TREE], "timeout": 5}
    ended, r = finished(hookrunner.run_one, hook, str(cwd), dict(os.environ))
    assert ended, "the hook's step never reported"
    assert r["timed_out"] and not r["ok"] and "stopped after its timeout of 5s" in r["output"]
    assert (cwd / "ready").exists() and len(pids(cwd)) == 4
    assert [p for p in pids(cwd) if alive(p)] == []


def test_a_host_hook_that_leaves_a_child_holding_its_output_ends_when_it_does(cwd):
    hook = {"name": "quick", "command": ["sh", "-c", "echo started; setsid sleep 300 & echo $! >> pids"],
            "timeout": 30}
    ended, r = finished(hookrunner.run_one, hook, str(cwd), dict(os.environ))
    assert ended, "the step waited on output a lingering child still held"
    assert r["ok"] and not r["timed_out"] and r["output"] == "started"


def test_a_build_step_past_its_timeout_ends_its_whole_tree(cwd):
    step = BuildStep(name="assets", command=("sh", "-c", TREE), outputs=("dist",), timeout=5)
    ended, exc = finished(build.run_step, step, cwd, lambda _line: None)
    assert ended, "the build step never reported"
    assert isinstance(exc, OperationFailed) and "did not finish within 5s" in exc.message
    assert (cwd / "ready").exists() and len(pids(cwd)) == 4
    assert [p for p in pids(cwd) if alive(p)] == []


def test_a_laptop_hook_past_its_timeout_ends_its_whole_tree(cwd):
    (cwd / "world").mkdir()
    project = dataclasses.replace(World(cwd / "world", hosts=("h1",)).project, source=cwd, hooks=(
        Hook(name="slow", phase="after-success", on="laptop", command=("sh", "-c", TREE), timeout=5),))
    ended, problems = finished(lambda: hooks.on_laptop(project, "after-success", {}, lambda _line: None,
                                                       dry_run=False))
    assert ended, "the laptop hook never reported"
    assert len(problems) == 1 and "slow" in problems[0] and "within 5s" in problems[0]
    assert (cwd / "ready").exists() and len(pids(cwd)) == 4
    assert [p for p in pids(cwd) if alive(p)] == []


def test_a_descendant_that_ignores_sigterm_and_keeps_forking_is_killed_at_the_end_of_the_grace(cwd):
    stubborn = ('setsid sh -c \'trap "" TERM; echo $$ >> pids; while :; do sleep 1; done\' & '
                'while [ "$(wc -l < pids)" -lt 1 ]; do sleep 0.05; done; touch ready; wait')
    # The timeout must land after the stubborn child is up; on a loaded machine 2 s may not be enough.
    for timeout in (2, 5, 15):
        (cwd / "pids").unlink(missing_ok=True)
        ended, r = finished(lambda: proctree.run(["sh", "-c", stubborn], cwd=cwd, timeout=timeout, grace=1))
        assert ended and r.timed_out
        if (cwd / "ready").exists():
            break
        assert [p for p in pids(cwd) if alive(p)] == []
    assert (cwd / "ready").exists(), "the stubborn child never started within 15 s"
    assert [p for p in pids(cwd) if alive(p)] == []
