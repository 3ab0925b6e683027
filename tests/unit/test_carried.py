"""The host finishes what its laptop cannot: a laptop killed at any call, an activation worker
killed half-way, a lock whose laptop is gone. Run against the real host program (tests/fakehost.py).

A dead laptop is modelled exactly: the operation stops (no recovery, no `finally` of ours runs);
what the host does next is what its holder does when the connection closes (holder.abandon),
or what the next operation's plan does with a lock whose holder is gone.
"""

from __future__ import annotations

import json
import os

import pytest

from ayna_fab.errors import OperationFailed
from ayna_fab.hostprog import holder, journal
from tests.fakehost import FakeRemote, Fault, LaptopDied, WorkerKilled
from tests.unit.test_recovery import World, world  # noqa: F401  (the fixture)


def held_token(w: World, host="h1") -> str:
    with open(f"{w.layout(host).root}/.deploy-lock/owner.json") as f:
        return json.load(f)["token"]


def connection_gone(w: World, host="h1") -> None:
    """The lock's holder process has ended (the laptop's connection closed): a dead pid's marker."""
    lockdir = f"{w.layout(host).root}/.deploy-lock"
    for name in os.listdir(lockdir):
        if name.startswith("holder-"):   # in this fake, the plan marked the test's own process
            os.unlink(f"{lockdir}/{name}")
    with open(f"{w.layout(host).root}/.deploy-lock/holder-999999.json", "w") as f:
        json.dump({"pid": 999999, "start": "0", "what": "connection", "since": 0}, f)


DIE_AT = [("plan", "die-after"), ("stage", "die-before"), ("stage", "die-after"), ("prepare", "die-before"),
          ("prepare", "die-after")]


@pytest.mark.parametrize("call,kind", DIE_AT, ids=[f"{c}-{k}" for c, k in DIE_AT])
def test_a_laptop_dying_before_activation_is_abandoned_by_the_host(world, call, kind):
    with pytest.raises(LaptopDied):
        world.deploy(faults={"h1": [Fault(call, kind=kind)]})
    assert world.locked() and world.current() == 1
    res = holder.abandon(world.layout("h1").root, held_token(world))
    assert res["abandoned"] is True and res["outcome"] is None   # nothing had reached the live site
    assert not world.locked() and world.current() == 1 and world.state(1) == "active"
    if os.path.isdir(world.layout("h1").release(2)):
        assert world.state(2) == "failed"
    assert world.log()[-1]["result"] == "abandoned"
    world.deploy()   # the next deploy goes through (v2 again when the laptop died before claiming it)
    assert world.current() in (2, 3) and world.state(world.current()) == "active" and not world.locked()


def test_the_next_plan_takes_over_a_lock_whose_laptop_is_gone(world):
    with pytest.raises(LaptopDied):
        world.deploy(faults={"h1": [Fault("prepare", kind="die-after")]})
    connection_gone(world)
    world.deploy()
    assert world.current() == 3 and not world.locked()
    assert world.state(2) == "failed" and [e["result"] for e in world.log()[-2:]] == ["abandoned", "ok"]


def test_a_lock_whose_laptop_is_still_connected_is_not_taken_over(world):
    with pytest.raises(LaptopDied):
        world.deploy(faults={"h1": [Fault("prepare", kind="die-after")]})
    with pytest.raises(OperationFailed, match="lock"):
        world.deploy()   # its holder (here: this very process) still lives: the lock stays
    assert world.locked() and world.current() == 1


def test_a_laptop_dying_during_activation_changes_nothing_of_the_outcome(world):
    """The lone host records success itself: the deploy is complete without its laptop."""
    with pytest.raises(LaptopDied):
        world.deploy(faults={"h1": [Fault("activate", kind="die-after")]})
    assert world.current() == 2 and not world.locked()
    assert (world.state(2), world.state(1)) == ("active", "previous") and world.log()[-1]["result"] == "ok"


def test_a_failing_activation_whose_laptop_died_is_put_back_by_the_host(world):
    world.states["h1"].broken_live.add(2)
    with pytest.raises(LaptopDied):
        world.deploy(faults={"h1": [Fault("activate", kind="die-after")]})
    assert world.current() == 1 and not world.locked() and world.state(2) == "failed"
    assert world.log()[-1]["restored"] == "v1"


def test_an_activation_worker_killed_half_way_is_finished_by_the_next_plan(world):
    """Worker and laptop both gone mid-activation: current points at the unverified v2. The next
    deploy's plan puts v1 back (the journal says where it was), records v2 failed, and goes on."""
    world.states["h1"].kill_worker = True
    with pytest.raises(WorkerKilled):
        world.deploy()
    j = journal.read(world.layout("h1").root)
    assert j["outcome"] is None and j["phase"] == "health" and world.current() == 2
    connection_gone(world)
    world.deploy()
    assert world.current() == 3 and world.state(2) == "failed"
    failed = [e for e in world.log() if e.get("release") == "v2"][-1]
    assert failed["result"] == "failed" and failed["restored"] == "v1" and "killed" in failed["reason"]


def test_a_worker_that_begins_after_the_host_settled_its_activation_changes_nothing(world):
    """The activate call died between writing its journal and its worker's first step, and the
    holder settled the activation (the way back). The worker, coming late, must not flip over it."""
    world.states["h1"].late_worker = True
    with pytest.raises(LaptopDied):
        world.deploy()
    host, worker = world.states["h1"].late.pop()
    res = host.on_host(lambda: holder.abandon(world.layout("h1").root, held_token(world)))
    assert res["abandoned"] is True
    assert world.current() == 1 and world.state(2) == "failed" and not world.locked()
    host.on_host(worker)
    assert world.current() == 1 and world.state(1) == "active" and world.state(2) == "failed"
    world.deploy()
    assert world.current() == 3 and world.state(3) == "active" and not world.locked()


def test_a_rollback_after_an_unfinished_deploy_goes_to_the_release_live_before_it(world):
    world.deploy()                                    # v2 live, v1 previous
    world.commit("v = 3\n")
    world.states["h1"].kill_worker = True
    with pytest.raises(WorkerKilled):
        world.deploy()                                # v3 flipped, worker and laptop killed
    assert world.current() == 3
    connection_gone(world)
    world.rollback()
    assert world.current() == 2, "the release live before the unfinished deploy, not the one before that"
    assert world.state(3) == "failed"


def test_a_fleet_host_left_live_by_a_dead_laptop_is_recorded_as_serving(world):
    dies = [Fault("finish", kind="die-before")]   # on both: which host's thread gets there first varies
    with pytest.raises(BaseException):
        world.deploy(hosts=("h1", "h2"), faults={"h1": list(dies), "h2": list(dies)})
    for h in ("h1", "h2"):
        assert world.current(h) == 2 and world.locked(h)
        holder.abandon(world.layout(h).root, held_token(world, h))
        assert not world.locked(h) and world.state(2, h) == "active" and world.state(1, h) == "previous"


def test_a_laptop_that_saw_its_operation_through_leaves_nothing_for_the_holder(world):
    world.deploy()
    assert holder.abandon(world.layout("h1").root, "some-old-token") == {"abandoned": False}
    assert world.current() == 2 and world.log()[-1]["result"] == "ok"


# --- the real holder, in processes of its own ----------------------------------------------------

def _held_plan(tmp_path):
    """A plan that takes the lock, run as a host runs it: its own process, its stdin a pipe."""
    import subprocess
    from ayna_fab.config import model as cfgmod
    from ayna_fab.commands import hostcalls as cmd
    from ayna_fab.config.layout import Layout
    w = World(tmp_path, hosts=("h1",))
    lay = w.layout("h1")
    command = cmd.plan(lay, w.project, {"token": "t1", "by": "ana", "operation": "deploy"})
    assert command.held
    p = subprocess.Popen(["bash", "-c", command.script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = ""
    while not line.startswith("@@result "):
        line = p.stdout.readline()
        assert line, "the plan ended without an answer"
    assert "error" not in json.loads(line[len("@@result "):])
    return w, p, cfgmod, Layout


def test_a_plan_that_took_the_lock_stays_as_its_holder_until_told_done(tmp_path):
    w, p, _, _ = _held_plan(tmp_path)
    assert p.poll() is None and w.locked(), "the holder stays while the laptop is there"
    p.stdin.write("done\n")
    p.stdin.close()
    assert p.wait(10) == 0
    assert w.locked(), "a laptop that said done keeps its lock for its own calls (record releases it)"


def test_a_holder_whose_connection_closes_settles_the_operation(tmp_path):
    w, p, _, _ = _held_plan(tmp_path)
    p.stdin.close()    # the connection is gone, nothing said
    assert p.wait(10) == 0
    assert not w.locked()
    assert w.log()[-1]["result"] == "abandoned" and "connection to the laptop closed" in w.log()[-1]["reason"]


def test_a_unit_restarted_by_systemd_since_ours_counts_as_crashed_whether_or_not_ours_reset_the_count():
    from ayna_fab.hostprog.switchover import crashes
    assert crashes(0, 0) == 0 and crashes(3, 3) == 0      # nothing moved
    assert crashes(0, 8) == 0                             # ours reset the count, no crash since
    assert crashes(2, 0) == 2 and crashes(10, 8) == 2     # crashed since ours
    assert crashes(1, 8) == 1                             # reset by ours, then crashed once


def unlock_by_hand(w: World, host="h1") -> dict:
    """`fab unlock` on the host: the unlock call, answered by the real host program."""
    from ayna_fab.commands import hostcalls as cmd
    FakeRemote.laptop_dead = False   # a person's laptop, not the one that died
    remote = FakeRemote(host, w.layout(host).root, w.states[host])
    res = remote.run(cmd.unlock(w.layout(host), held_token(w, host)), check=False)
    return json.loads(res.stdout.rsplit("@@result ", 1)[1])


def test_unlocking_an_unfinished_activation_takes_the_way_back_as_the_next_plan_would(world):
    """Worker and laptop gone mid-activation, current on the unverified v2; a person unlocks.
    The host settles it first: v1 back, v2 recorded failed, status no longer "activating"."""
    world.states["h1"].kill_worker = True
    with pytest.raises(WorkerKilled):
        world.deploy()
    assert world.current() == 2
    connection_gone(world)
    res = unlock_by_hand(world)
    assert res["result"] == "released" and not world.locked()
    assert world.current() == 1 and world.state(2) == "failed"
    assert journal.read(world.layout("h1").root)["phase"] == "done"
    assert (res["settled"]["outcome"], res["settled"]["number"], res["settled"]["back"]) == ("restored", 2, 1)
    from ayna_fab.ops.lockrecord import settled_text
    assert settled_text(res["settled"]) == "its activation of v2 had not finished: the way back was taken, v1 is live"
    world.deploy()
    assert world.current() == 3 and world.state(3) == "active"


def test_unlocking_a_deploy_that_died_before_activation_marks_its_release_failed(world):
    with pytest.raises(LaptopDied):
        world.deploy(faults={"h1": [Fault("prepare", kind="die-after")]})
    connection_gone(world)
    res = unlock_by_hand(world)
    assert res["result"] == "released" and not world.locked()
    assert world.current() == 1 and world.state(2) == "failed" and world.log()[-1]["result"] == "abandoned"
    assert res["settled"]["outcome"] is None


@pytest.mark.parametrize("damage", ["truncated", "edited"])
def test_an_activation_journal_that_cannot_be_acted_on_is_set_aside_never_fatal(world, damage):
    """A hand-edited or truncated activation.json with the lock's token: the next plan goes on."""
    world.states["h1"].kill_worker = True
    with pytest.raises(WorkerKilled):
        world.deploy()
    connection_gone(world)
    root = world.layout("h1").root
    path = journal.path(root)
    if damage == "truncated":
        text = open(path).read()
        open(path, "w").write(text[: len(text) // 2])
    else:
        j = journal.read(root)
        j["call"] = {"root": root}   # the token still matches; the call is not an activation's
        journal.write(root, j)
    world.deploy()   # the plan takes over the lock and does not crash on the journal
    assert world.state(world.current()) == "active" and not world.locked()
    aside = [n for n in os.listdir(root) if n.startswith(journal.NAME + ".unusable-")]
    assert len(aside) == 1
    notes = [e for e in world.log() if e.get("event") == "activation-journal"]
    assert notes and notes[-1]["result"] == "set-aside" and aside[0] in notes[-1]["file"]
