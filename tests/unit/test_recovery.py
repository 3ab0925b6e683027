"""Recovery, unit-tested: deploy, fleet deploy and rollback with a failure injected at every step.

The runner and the real host program run against temporary directories (tests/fakehost.py):
what is asserted is what a host is left with (where `current` points, the lock, the
release's state, the deploy log), the error's class (its exit code) and its message.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

from ayna_fab.config import model as config
from ayna_fab.config.layout import Layout
from ayna_fab.errors import NeedsAttention, OperationFailed, UsageError
from ayna_fab.hostprog import store
from ayna_fab.ops import lockrecord as lock, runner
from ayna_fab.ops.deploy import Deploy, Options, resolve
from ayna_fab.ops.rollback import Options as RollbackOptions
from ayna_fab.ops.rollback import Rollback
from tests.fakehost import Fault, FakeRemote, HostState

HOSTS = ("h1", "h2", "h3")


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


class World:
    """A source repository, a hosts.toml, and one fake host (its own base_dir) per host name."""

    def __init__(self, tmp: Path, hosts=HOSTS, keep=5) -> None:
        self.tmp = tmp
        self.src = tmp / "src"
        self.src.mkdir()
        git(self.src, "init", "-q", "-b", "main")
        (self.src / "uv.lock").write_text("lock 1\n")
        (self.src / "app.py").write_text("v = 0\n")
        git(self.src, "add", "-A")
        git(self.src, "commit", "-qm", "one")
        lines = ["[defaults]", f"keep_releases = {keep}", f'known_hosts = "{tmp}/known_hosts"', "",
                 "[projects.demo]", f'source = "{self.src}"', "port_base = 8200",
                 'services = ["web", "api", "celery"]', 'env = "production"', ""]
        for h in hosts:
            lines += [f"[hosts.{h}]", 'hostname = "127.0.0.1"', 'projects = ["demo"]', ""]
        (tmp / "hosts.toml").write_text("\n".join(lines))
        self.cfg = config.load(tmp / "hosts.toml")
        self.project = self.cfg.projects["demo"]
        self.states = {h: HostState() for h in hosts}
        self.said: list[str] = []
        for h in hosts:
            lay = self.layout(h)
            for d in ("releases", "shared/media", "logs"):
                os.makedirs(f"{lay.root}/{d}")
            # a DATABASE_URL the plan can back up: deploys refuse at plan time when they could not
            Path(lay.env_file).write_text("SECRET_KEY=x\nDATABASE_URL=postgresql://demo@localhost/demo\n")

    def config_of(self, host: str) -> config.Config:
        base = str(self.tmp / host / "opt")
        return dataclasses.replace(self.cfg, defaults=dataclasses.replace(self.cfg.defaults, base_dir=base))

    def layout(self, host: str) -> Layout:
        return Layout.of(self.config_of(host), self.project)

    def commit(self, text: str) -> None:
        (self.src / "app.py").write_text(text)
        git(self.src, "commit", "-qam", text)

    def targets(self, hosts, faults, dry_run=False):
        FakeRemote.laptop_dead = False   # a new laptop
        owner = lock.owner("deploy")
        out = []
        for h in hosts:
            remote = FakeRemote(h, self.layout(h).root, self.states[h], faults.get(h, []), dry_run=dry_run,
                                echo=self.said.append)
            out.append(runner.HostRun(self.config_of(h), self.cfg.hosts[h], self.project, remote, owner,
                                     self.said.append))
        return out

    def deploy(self, hosts=("h1",), faults=None, **options):
        source, revision = resolve(self.project, "HEAD")
        op = Deploy(self.cfg, self.project, source, revision, Options(**options),
                    self.targets(hosts, faults or {}, options.get("dry_run", False)))
        runner.run(op, self.said.append)
        return op

    def rollback(self, hosts=("h1",), faults=None, to=None):
        op = Rollback(self.cfg, self.project, RollbackOptions(to=to), self.targets(hosts, faults or {}))
        runner.run(op, self.said.append)
        return op

    # what a host is left with
    def current(self, host="h1") -> int | None:
        return store.current_number(self.layout(host).root)

    def locked(self, host="h1") -> bool:
        return os.path.exists(f"{self.layout(host).root}/.deploy-lock")

    def state(self, number: int, host="h1") -> str:
        return json.loads(Path(f"{self.layout(host).release(number)}/.ayna-release.json").read_text())["state"]

    def log(self, host="h1") -> list[dict]:
        path = Path(f"{self.layout(host).logs}/deploys.jsonl")
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    w.deploy(hosts=HOSTS)                 # v1 everywhere
    w.commit("v = 2\n")
    return w


def test_a_clean_deploy_goes_live_records_and_unlocks(world):
    world.deploy()
    assert world.current() == 2 and not world.locked()
    assert (world.state(2), world.state(1)) == ("active", "previous")
    assert world.log()[-1]["result"] == "ok" and world.log()[-1]["release"] == "v2"
    assert ("start", "demo-web-green.service") in world.states["h1"].restarts   # v2 in the idle slot
    assert ("stop", "demo-web-blue.service") in world.states["h1"].restarts    # v1's slot stopped after it


# Every call of a one-host deploy, and each way it can fail there.
BEFORE_FLIP = [
    ("plan", "link-before"), ("plan", "link-after"), ("plan", "interrupt"),
    ("upload", "link-before"),
    ("stage", "link-before"), ("stage", "link-after"), ("stage", "interrupt"),
    ("prepare", "link-before"), ("prepare", "link-after"), ("prepare", "interrupt"),
    ("activate", "link-before"),   # the host never got it: the journal says no activation started
] + [("prepare", f"fail-step:{s}") for s in ("install", "backup", "check", "migrate", "collectstatic")]
# Once the host has the activation, it carries it to its end whatever the laptop sees.
CARRIED = [("activate", "link-after"), ("activate", "interrupt"), ("activate", "interrupt-raised")]


def fault(call: str, kind: str) -> Fault:
    if kind.startswith("fail-step:"):
        return Fault(call, kind="fail-step", step=kind.split(":", 1)[1])
    return Fault(call, kind=kind)


@pytest.mark.parametrize("call,kind", BEFORE_FLIP, ids=[f"{c}-{k}" for c, k in BEFORE_FLIP])
def test_a_failure_before_the_flip_leaves_the_live_site_untouched(world, call, kind):
    with pytest.raises(OperationFailed) as err:
        world.deploy(faults={"h1": [fault(call, kind)]})
    assert world.current() == 1 and world.state(1) == "active"
    assert not world.locked(), "the lock must be released"
    e = err.value
    assert e.exit_code == 1 and e.host == "h1" and not isinstance(e, NeedsAttention)
    if call != "plan":
        assert "the live site is untouched (still v1)" in e.message
    if kind == "interrupt":
        assert "interrupted (Ctrl-C)" in e.message
    if kind.startswith("fail-step"):
        step = kind.split(":")[1]
        said = {"install": "uv: no matching distribution", "backup": "pg_dump exited 1"}.get(step, f"{step} exploded")
        assert e.step == step and said in e.message
    if os.path.isdir(world.layout("h1").release(2)):
        assert world.state(2) == "failed"
        assert world.log()[-1]["result"] == "failed" and world.log()[-1]["restored"] is None
    assert not [r for r in world.states["h1"].restarts[3:] if r[1].endswith("-blue.service")]  # nothing live touched


@pytest.mark.parametrize("call,kind", CARRIED, ids=[f"{c}-{k}" for c, k in CARRIED])
def test_a_lost_link_or_interrupt_during_activation_is_carried_to_its_end_by_the_host(world, call, kind):
    world.deploy(faults={"h1": [fault(call, kind)]})
    assert world.current() == 2 and not world.locked()
    assert (world.state(2), world.state(1)) == ("active", "previous")
    assert world.log()[-1]["result"] == "ok" and world.log()[-1]["release"] == "v2"
    if kind == "link-after":
        assert any("reconnecting to follow it" in line for line in world.said)


@pytest.mark.parametrize("call,kind", CARRIED, ids=[f"{c}-{k}" for c, k in CARRIED])
def test_a_failing_activation_is_put_back_by_the_host_whatever_the_laptop_sees(world, call, kind):
    world.states["h1"].broken_live.add(2)
    with pytest.raises(OperationFailed) as err:
        world.deploy(faults={"h1": [fault(call, kind)]})
    e = err.value
    assert not isinstance(e, NeedsAttention) and e.exit_code == 1
    assert world.current() == 1 and not world.locked()
    assert world.state(2) == "failed" and world.state(1) == "active"
    assert "rolled back to v1, which is serving and healthy" in e.message
    assert world.log()[-1] == {**world.log()[-1], "result": "failed", "restored": "v1"}
    assert "status 500" in world.log()[-1]["reason"]
    assert any("[h1] restore" in line for line in world.said)


def test_an_interrupt_once_the_deploy_is_recorded_comes_too_late_to_undo_it(world):
    world.deploy(faults={"h1": [Fault("finish", kind="interrupt")]})
    assert world.current() == 2 and world.state(2) == "active" and not world.locked()


def test_a_release_that_fails_its_health_check_is_refused_before_the_flip(world):
    world.states["h1"].broken.add(2)
    with pytest.raises(OperationFailed) as err:
        world.deploy()
    assert world.current() == 1 and not world.locked() and world.state(2) == "failed"
    assert err.value.step == "preflight" and "status 500" in err.value.message
    assert "never took traffic" in err.value.message and "the live site is untouched" in err.value.message
    assert not [r for r in world.states["h1"].restarts[3:]]    # no unit was touched: nothing went live
    assert world.states["h1"].preflights[-1] == 2


def test_a_release_unhealthy_only_once_live_is_rolled_back(world):
    world.states["h1"].broken_live.add(2)
    with pytest.raises(OperationFailed) as err:
        world.deploy()
    assert world.current() == 1 and not world.locked() and world.state(2) == "failed"
    assert err.value.step == "health" and "status 500" in err.value.message


def test_when_putting_back_fails_too_a_person_is_told_and_the_lock_is_kept(world):
    world.states["h1"].broken_live.update({1, 2})   # the previous release is unhealthy now as well
    with pytest.raises(NeedsAttention) as err:
        world.deploy()
    assert err.value.exit_code == 3 and "restoring failed too" in err.value.message
    assert world.locked() and "fab -H h1 unlock" in err.value.hint


def test_a_failed_first_deploy_stops_the_units_and_removes_current(tmp_path):
    w = World(tmp_path, hosts=("h1",))
    w.states["h1"].broken_live.add(1)
    with pytest.raises(OperationFailed, match="no earlier release existed"):
        w.deploy()
    assert w.current() is None and not w.locked() and w.state(1) == "failed"
    assert all(s == "inactive" for s in w.states["h1"].units.values())


def test_a_deploy_whose_lock_was_taken_away_stops_and_says_so(world):
    root = world.layout("h1").root

    # another operation removes our lock while we upload: the next call must refuse to go on
    orig = FakeRemote.run

    def steal(self, cmd, **kw):   # taken while the upload travels, before the host stages it
        if type(cmd.call).__name__ == "Stage":
            os.rename(f"{root}/.deploy-lock", f"{root}/.stolen")
            os.mkdir(f"{root}/.deploy-lock")
            Path(f"{root}/.deploy-lock/owner.json").write_text(json.dumps({"token": "other", "by": "ana"}))
        return orig(self, cmd, **kw)

    FakeRemote.run = steal
    try:
        with pytest.raises(NeedsAttention) as err:
            world.deploy(faults={})
    finally:
        FakeRemote.run = orig
    assert "no longer holds the deploy lock" in err.value.message and "ana@" in err.value.message
    assert world.current() == 1 and not os.path.exists(world.layout("h1").release(2))
    assert json.loads(Path(f"{root}/.deploy-lock/owner.json").read_text())["token"] == "other"


def test_a_step_still_running_on_the_host_keeps_the_lock_until_it_ends(world):
    """The link drops while prepare runs; the host goes on with it. The laptop must not release
    the lock under it, nor report the site as free for the next deploy."""
    import subprocess
    import sys
    root = world.layout("h1").root
    worker = {}
    orig = FakeRemote.answer

    def answer(self, name, call):
        if name == "prepare" and not worker:     # prepare is still busy on the host when the link goes
            worker["p"] = subprocess.Popen([sys.executable, "-c", (
                "import sys, time; sys.path.insert(0, %r); from ayna_fab.hostprog import lock; "
                "lock.mark_working(%r, 'prepare'); print('on', flush=True); time.sleep(60)")
                % (str(Path(__file__).resolve().parents[2]), root)], stdout=subprocess.PIPE, text=True)
            worker["p"].stdout.readline()
            raise OperationFailed("lost the connection or timed out: injected", host="h1", step="prepare")
        return orig(self, name, call)

    FakeRemote.answer = answer
    try:
        with pytest.raises(OperationFailed, match="still running on the host") as err:
            world.deploy()
        assert world.locked() and world.current() == 1
        assert "then the host releases it by itself" in err.value.message
    finally:
        FakeRemote.answer = orig
        worker["p"].kill()
        worker["p"].wait()
    from ayna_fab.commands import hostcalls as cmd
    from tests.hosthelp import call
    lay = world.layout("h1")
    holder = call(cmd.status(lay, world.project))["lock"]
    assert holder["workers"] == [] and call(cmd.unlock(lay, holder["token"]))["result"] == "released"


def test_a_held_lock_refuses_the_deploy_and_changes_nothing(world):
    root = world.layout("h1").root
    os.mkdir(f"{root}/.deploy-lock")
    Path(f"{root}/.deploy-lock/owner.json").write_text(json.dumps({"token": "x", "by": "ana", "from": "pc",
                                                                   "operation": "deploy", "message": "hotfix"}))
    with pytest.raises(OperationFailed, match="another deploy holds the lock: ana@pc .*'hotfix'"):
        world.deploy()
    assert world.current() == 1 and json.loads(Path(f"{root}/.deploy-lock/owner.json").read_text())["token"] == "x"


# --- fleets ------------------------------------------------------------------------------------

def test_a_fleet_migrates_once_and_flips_in_batches(world):
    world.deploy(hosts=HOSTS, batch="1")
    assert [world.current(h) for h in HOSTS] == [2, 2, 2]
    assert not any(world.locked(h) for h in HOSTS)
    assert any(line == "fleet: batch 3: h3" for line in world.said)
    assert "fleet: v2 on 3 hosts; migrations run once, on h1" in world.said


@pytest.mark.parametrize("phase,call,kind", [
    ("lock + plan", "plan", "link-before"), ("prepare", "stage", "link-after"),
    ("prepare", "prepare", "fail-step:check"), ("migrate (once)", "prepare", "fail-step:migrate"),
])
def test_a_fleet_failing_before_any_flip_changes_no_host(world, phase, call, kind):
    host = "h1" if "migrate" in phase else "h2"
    nth = 2 if "migrate" in phase else 1     # h1's second prepare call is the migrate
    f = fault(call, kind)
    f.nth = nth
    with pytest.raises(OperationFailed) as err:
        world.deploy(hosts=HOSTS, faults={host: [f]})
    assert f"fleet deploy stopped at {phase}: {host} failed" in err.value.message
    assert [world.current(h) for h in HOSTS] == [1, 1, 1]
    assert not any(world.locked(h) for h in HOSTS)
    lines = {line.split(":")[0].strip(): line for line in err.value.message.splitlines()[1:]}
    for h in HOSTS:
        expect = "serving what it served (not changed)" if phase == "lock + plan" and h == host else "serving v1"
        assert expect in lines[h], lines


def test_a_fleet_host_failing_its_pre_flip_check_stops_the_fleet_before_any_flip(world):
    world.states["h2"].broken.add(2)
    with pytest.raises(OperationFailed) as err:
        world.deploy(hosts=HOSTS, batch="1")
    assert "fleet deploy stopped at preflight: h2 failed" in err.value.message
    assert [world.current(h) for h in HOSTS] == [1, 1, 1] and not any(world.locked(h) for h in HOSTS)
    assert all(world.states[h].preflights[-1] == 2 for h in HOSTS)


def test_a_fleet_batch_failing_its_health_puts_every_flipped_host_back(world):
    world.states["h2"].broken_live.add(2)
    with pytest.raises(OperationFailed) as err:
        world.deploy(hosts=HOSTS, batch="1")
    assert "fleet deploy stopped at batch 2: h2 failed" in err.value.message
    assert [world.current(h) for h in HOSTS] == [1, 1, 1]
    assert not any(world.locked(h) for h in HOSTS)
    assert world.states["h3"].restarts[3:] == []   # h3 never flipped
    assert [world.state(2, h) for h in HOSTS] == ["failed", "failed", "failed"]


def test_a_fleet_with_on_failure_stop_keeps_the_healthy_flipped_hosts(world):
    world.states["h2"].broken_live.add(2)
    with pytest.raises(OperationFailed) as err:
        world.deploy(hosts=HOSTS, batch="1", on_failure="stop")
    assert [world.current(h) for h in HOSTS] == [2, 1, 1]
    assert "h1: serving v2 (kept: on_failure = stop)" in err.value.message
    assert world.state(2, "h1") == "active" and not any(world.locked(h) for h in HOSTS)


def test_a_fleet_interrupted_while_preparing_puts_every_host_back(world):
    with pytest.raises(OperationFailed, match="interrupted"):
        world.deploy(hosts=HOSTS, faults={"h3": [Fault("prepare", kind="interrupt")]})
    assert [world.current(h) for h in HOSTS] == [1, 1, 1] and not any(world.locked(h) for h in HOSTS)


def test_a_fleet_dry_run_shows_its_plan_and_changes_nothing(world):
    before = {h: sorted(os.listdir(world.layout(h).releases)) for h in HOSTS}
    world.deploy(hosts=HOSTS, batch="2", dry_run=True)
    plan = [line for line in world.said if line.startswith("fleet: ")]
    assert "fleet: migrate (once): h1" in plan
    assert "fleet: batch 1: h1, h2" in plan and "fleet: batch 2: h3" in plan
    assert sum("prepare:" in line and '"migrate"' in line for line in world.said) == 1
    assert {h: sorted(os.listdir(world.layout(h).releases)) for h in HOSTS} == before
    assert not any(world.locked(h) for h in HOSTS)


# --- rollback ----------------------------------------------------------------------------------

def test_rollback_goes_back_and_its_failures_restore_what_served(world):
    world.deploy()
    world.rollback()
    assert world.current() == 1 and world.state(2) == "rolled-back" and not world.locked()
    world.commit("v = 3\n")
    world.deploy()                                             # v3 live, v1 previous
    world.states["h1"].broken_live.add(1)
    with pytest.raises(OperationFailed, match="v1 did not come up healthy; v3 is back and serving"):
        world.rollback(to=1)
    assert world.current() == 3 and not world.locked()
    world.states["h1"].broken.add(1)                           # and one that fails privately never goes live
    restarts = len(world.states["h1"].restarts)
    with pytest.raises(OperationFailed, match="v1 failed its pre-flip check"):
        world.rollback(to=1)
    assert world.current() == 3 and not world.locked() and len(world.states["h1"].restarts) == restarts


@pytest.mark.parametrize("call,kind", [("plan", "link-after"), ("migrations", "link-before"),
                                       ("activate", "link-before")])
def test_rollback_interrupted_before_activation_leaves_the_live_release_and_no_lock(world, call, kind):
    world.deploy()
    with pytest.raises(OperationFailed):
        world.rollback(faults={"h1": [fault(call, kind)]})
    assert world.current() == 2 and not world.locked()


@pytest.mark.parametrize("call,kind", CARRIED)
def test_rollback_interrupted_during_activation_is_carried_to_its_end_by_the_host(world, call, kind):
    world.deploy()
    world.rollback(faults={"h1": [fault(call, kind)]})
    assert world.current() == 1 and not world.locked()
    assert (world.state(1), world.state(2)) == ("active", "rolled-back")
    assert world.log()[-1]["event"] == "rollback" and world.log()[-1]["result"] == "ok"


def test_a_fleet_rollback_takes_every_host_to_one_release(world):
    world.deploy(hosts=HOSTS)
    world.rollback(hosts=HOSTS)
    assert [world.current(h) for h in HOSTS] == [1, 1, 1]
    assert "fleet: every host to v1" in world.said


def test_a_rollback_to_a_release_that_does_not_exist_is_refused_and_unlocks(world):
    with pytest.raises(UsageError, match="there is no release v9"):
        world.rollback(to=9)
    assert world.current() == 1 and not world.locked()
