"""Hooks, unit-tested: every phase, where each runs and with what, and how each failure ends.

Deploys run through the runner and the real host program on temporary directories
(tests/fakehost.py); the hooks themselves really run, as processes in the release directories.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from ayna_fab.config.model import Hook
from ayna_fab.errors import OperationFailed
from ayna_fab.hostprog import hookrunner as host_hooks
from ayna_fab.ops import hooks, runner
from ayna_fab.ops.deploy import Deploy, Options, resolve
from tests.fakehost import Fault
from tests.polling import process_gone, wait_until
from tests.unit.test_recovery import HOSTS, World

MARK = 'echo "$AYNA_PHASE $AYNA_RELEASE $SECRET_KEY $AYNA_HOST ${PATH%%:*}" >> "$0"'


def hook(name: str, phase: str, script: str = "true", **kw) -> Hook:
    return Hook(name=name, phase=phase, command=("sh", "-c", script), **kw)


def with_hooks(world: World, *items: Hook, **settings) -> World:
    world.project = dataclasses.replace(world.project, hooks=tuple(items), **settings)
    return world


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    w.deploy(hosts=HOSTS)                 # v1 everywhere, no hooks yet
    w.commit("v = 2\n")
    return w


def marks(world: World, host="h1") -> list[str]:
    path = world.tmp / f"marks-{host}"
    return path.read_text().splitlines() if path.exists() else []


def marking(world: World, name: str, phase: str, host="h1", **kw) -> Hook:
    """A hook that appends what it was told (phase, release, a .env value, venv python) to a file."""
    return Hook(name=name, phase=phase, command=("sh", "-c", MARK, str(world.tmp / f"marks-{host}")), **kw)


def test_host_hooks_run_in_phase_order_in_the_right_release_with_the_units_environment(world):
    with_hooks(world, *(marking(world, p.replace("-", ""), p) for p in hooks.PHASES if p != "after-failure"))
    world.deploy()
    assert world.current() == 2 and not world.locked()
    venv_python = f"{world.layout('h1').release(2)}/.venv/bin"
    assert marks(world) == [f"after-install v2 x h1 {venv_python}", f"before-flip v2 x h1 {venv_python}",
                            f"after-success v2 x h1 {venv_python}"]
    assert any(line.startswith("[h1] hook:afterinstall ") for line in world.said)   # a step line each


def test_a_hooks_output_is_shown_under_its_host_and_name(world):
    with_hooks(world, hook("hello", "after-success", "echo one; echo two >&2"))
    world.deploy()
    assert "[h1] hook:hello: one" in world.said and "[h1] hook:hello: two" in world.said


@pytest.mark.parametrize("phase", ["after-install", "before-flip"])
def test_a_failing_hook_before_the_flip_fails_the_deploy_and_the_live_site_is_untouched(world, phase):
    with_hooks(world, hook("warm", phase, "echo cache is cold; exit 4"),
               marking(world, "told", "after-failure"))
    with pytest.raises(OperationFailed) as err:
        world.deploy()
    e = err.value
    assert e.step == "hook:warm" and e.exit_code == 1 and "cache is cold" in e.message
    assert "the live site is untouched (still v1)" in e.message
    assert world.current() == 1 and world.state(2) == "failed" and not world.locked()
    assert world.states["h1"].restarts[3:] == []   # nothing live was restarted
    # after-failure hooks ran in the live release, told which release failed
    assert marks(world)[0].startswith("after-failure v1 x h1")


def test_a_failing_hook_after_the_flip_never_changes_what_is_live(world):
    with_hooks(world, hook("notify", "after-success", "echo chat is down; exit 1"), hook("second", "after-success"))
    op = world.deploy()
    assert world.current() == 2 and world.state(2) == "active" and not world.locked()
    assert len(op.hook_problems) == 1 and "hook notify exited 1" in op.hook_problems[0]
    assert "chat is down" in op.hook_problems[0]
    assert any(line.startswith("[h1] hook:second ") for line in world.said)   # the others still ran
    assert world.log()[-1]["result"] == "ok" and world.log()[-1]["hook_problems"] == op.hook_problems


def test_hook_failure_fail_makes_the_outcome_exit_1_and_leaves_the_release_live(world):
    with_hooks(world, hook("notify", "after-success", "exit 1"), hook_failure="fail")
    op = world.deploy()
    outcome = hooks.Outcome("deploy", world.project, ["h1"], problems=list(op.hook_problems))
    with pytest.raises(OperationFailed, match="succeeded and stays live") as err:
        hooks.report(outcome, world.said.append)
    assert err.value.exit_code == 1 and world.current() == 2
    warned = []
    hooks.report(dataclasses.replace(outcome, project=dataclasses.replace(world.project, hook_failure="warn")),
                 warned.append)
    assert warned == op.hook_problems


def test_ctrl_c_during_an_after_success_hook_keeps_the_release_live(world):
    with_hooks(world, hook("notify", "after-success"))
    op = world.deploy(faults={"h1": [Fault("hooks", kind="interrupt")]})
    assert world.current() == 2 and world.state(2) == "active" and not world.locked()
    assert "interrupted (Ctrl-C)" in op.hook_problems[0]


def test_a_lost_link_at_a_before_flip_hook_is_like_any_step(world):
    with_hooks(world, hook("warm", "before-flip"))
    with pytest.raises(OperationFailed, match="the live site is untouched"):
        world.deploy(faults={"h1": [Fault("hooks", kind="link-after")]})
    assert world.current() == 1 and not world.locked() and world.state(2) == "failed"


def test_a_failed_activation_runs_after_failure_hooks_on_the_release_put_back(world):
    with_hooks(world, marking(world, "told", "after-failure"), marking(world, "never", "after-success"))
    world.states["h1"].broken_live.add(2)
    with pytest.raises(OperationFailed, match="rolled back to v1"):
        world.deploy()
    assert [m.split()[:2] for m in marks(world)] == [["after-failure", "v1"]]


def test_fleets_run_hooks_on_every_host_and_once_hooks_on_the_migrate_host_only(world):
    with_hooks(world, Hook(name="warm", phase="before-flip", command=("sh", "-c", 'echo "$AYNA_HOST" >> "$0"',
                                                               str(world.tmp / "warm"))),
               Hook(name="seed", phase="before-flip", once=True,
                    command=("sh", "-c", 'echo "$AYNA_HOST" >> "$0"', str(world.tmp / "seed"))),
               Hook(name="ping", phase="after-success", once=True,
                    command=("sh", "-c", 'echo "$AYNA_HOST" >> "$0"', str(world.tmp / "ping"))),
               migrate_host="h2")
    world.deploy(hosts=HOSTS)
    assert sorted((world.tmp / "warm").read_text().split()) == ["h1", "h2", "h3"]
    assert (world.tmp / "seed").read_text().split() == ["h2"]
    assert (world.tmp / "ping").read_text().split() == ["h2"]
    # before-flip hooks ran on every host before the first flip
    assert all(world.current(h) == 2 for h in HOSTS)


def test_a_fleet_rollback_runs_once_hooks_on_the_migrate_host_too(world):
    world.deploy(hosts=HOSTS)
    with_hooks(world, Hook(name="seed", phase="before-flip", once=True,
                           command=("sh", "-c", 'echo "$AYNA_HOST" >> "$0"', str(world.tmp / "seed"))),
               migrate_host="h2")
    world.rollback(hosts=HOSTS)
    assert all(world.current(h) == 1 for h in HOSTS)
    assert (world.tmp / "seed").read_text().split() == ["h2"]


def test_a_rollback_runs_its_hooks_too(world):
    world.deploy()
    with_hooks(world, marking(world, "check", "before-flip"), marking(world, "done", "after-success"))
    world.rollback()
    assert world.current() == 1
    assert [m.split()[:2] for m in marks(world)] == [["before-flip", "v1"], ["after-success", "v1"]]


def test_a_dry_run_lists_every_hook_in_phase_order_and_runs_none(world):
    with_hooks(world, *(marking(world, p.replace("-", ""), p) for p in reversed(hooks.PHASES)),
               Hook(name="chat", phase="after-success", on="laptop", command=("true",)))
    world.deploy(dry_run=True)
    listed = [line for line in world.said if " hook:" in line and "(" in line]
    assert [line.split("hook:")[1].split()[0] for line in listed] == [
        "afterinstall", "beforeflip", "aftersuccess", "afterfailure"]
    assert all("as adonis" in line for line in listed)
    assert marks(world) == [] and world.current() == 1


# --- the host side --------------------------------------------------------------------------------

def test_a_hook_past_its_timeout_is_stopped_with_its_children(tmp_path):
    # The child holds the hook's output open; had it been waited for, it would have left `late`.
    script = "(sleep 60; touch late) & echo $! > child; sleep 60"
    r = host_hooks.run_one({"name": "slow", "command": ["sh", "-c", script], "timeout": 1},
                           str(tmp_path), dict(os.environ))
    assert not r["ok"] and r["timed_out"]
    assert "stopped after its timeout of 1s" in r["output"]
    assert not (tmp_path / "late").exists()
    assert wait_until(lambda: process_gone(int((tmp_path / "child").read_text())), 10)


def test_a_missing_program_is_a_failed_hook_not_a_crash(tmp_path):
    r = host_hooks.run_one({"name": "nope", "command": ["/no/such/program"], "timeout": 5}, str(tmp_path), {})
    assert not r["ok"] and r["code"] == 127 and "cannot run /no/such/program" in r["output"]


def test_hooks_never_run_as_root(tmp_path, monkeypatch):
    monkeypatch.setattr(host_hooks, "as_root", lambda: True)
    with pytest.raises(host_hooks.wire.Refused, match="never run as root"):
        host_hooks.run_all([{"name": "x", "command": ["true"], "timeout": 5}], str(tmp_path), {}, "before-flip")


# --- on the laptop --------------------------------------------------------------------------------

def test_laptop_hooks_are_told_the_outcome_and_never_a_secret(world):
    out = world.tmp / "outcome.json"
    record = ("python3", "-c", "import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
              "if k.startswith('AYNA_') or k == 'SECRET_KEY'}, open(sys.argv[1], 'w'))", str(out))
    with_hooks(world, Hook(name="chat", phase="after-success", on="laptop", command=record),
               Hook(name="pager", phase="after-failure", on="laptop", command=record))
    outcome = hooks.Outcome("deploy", world.project, ["h1"], "abc123")
    said = []
    with hooks.laptop_hooks(outcome, said.append, dry_run=False):
        outcome.track(world.deploy())
    told = json.loads(out.read_text())
    assert told == {**told, "AYNA_OPERATION": "deploy", "AYNA_PROJECT": "demo", "AYNA_RELEASE": "v2",
                    "AYNA_REVISION": "abc123", "AYNA_HOSTS": "h1", "AYNA_STATUS": "success", "AYNA_FAILED_STEP": ""}
    assert "@" in told["AYNA_WHO"] and float(told["AYNA_DURATION"]) >= 0 and "SECRET_KEY" not in told
    assert any(line.startswith("[laptop] hook:chat ") for line in said)

    world.commit("v = 3\n")
    world.states["h1"].broken.add(3)
    with pytest.raises(OperationFailed):
        with hooks.laptop_hooks(outcome := hooks.Outcome("deploy", world.project, ["h1"]), said.append,
                                dry_run=False):
            source, revision = resolve(world.project, "HEAD")   # as the task does: tracked before it runs
            runner.run(outcome.track(Deploy(world.cfg, world.project, source, revision, Options(),
                                            world.targets(("h1",), {}))), said.append)
    told = json.loads(out.read_text())
    assert (told["AYNA_STATUS"], told["AYNA_FAILED_STEP"], told["AYNA_RELEASE"]) == ("failed", "preflight", "v3")


def test_a_failing_laptop_hook_is_a_problem_not_a_crash(tmp_path):
    w = World(tmp_path, hosts=("h1",))
    with_hooks(w, Hook(name="chat", phase="after-success", on="laptop", command=("false",)),
               Hook(name="gone", phase="after-success", on="laptop", command=("/no/such/tool",)),
               Hook(name="slow", phase="after-success", on="laptop", command=("sleep", "30"), timeout=1))
    said = []
    problems = hooks.on_laptop(w.project, "after-success", {}, said.append, dry_run=False)
    assert [p.split()[3] for p in problems] == ["chat", "gone", "slow"]
    assert "exited 1" in problems[0] and "not installed" in problems[1] and "within 1s" in problems[2]
