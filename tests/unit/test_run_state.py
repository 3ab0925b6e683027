"""One host's run state: the transition table, what each state tells recovery, and the way each
kind of run walks through them (the runner and the real host program on temporary directories)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from ayna_fab.ops import runner
from ayna_fab.ops.deploy import Deploy, Options, resolve
from ayna_fab.errors import AynaFabError
from ayna_fab.ops.rollback import Options as RollbackOptions
from ayna_fab.ops.rollback import Rollback
from ayna_fab.ops.runner import TRANSITIONS, BadTransition, RunState
from tests.fakehost import Fault, FakeRemote
from tests.unit.test_hooks import hook, with_hooks
from tests.unit.test_recovery import HOSTS, World, world  # noqa: F401  (the fixture)

S = RunState
NEW, ASKED, LOCKED, STAGED, ACTIVATING, LIVE, PUT_BACK, REC_LIVE, REC_FAILED, RELEASED, LOST = (
    S.NEW, S.LOCK_ASKED, S.LOCKED, S.STAGED, S.ACTIVATING, S.LIVE, S.PUT_BACK, S.RECORDED_LIVE,
    S.RECORDED_FAILED, S.RELEASED, S.LOCK_LOST)

ALLOWED = {
    NEW: {ASKED},
    ASKED: {LOCKED},
    LOCKED: {STAGED, ACTIVATING, REC_FAILED, RELEASED, LOST},
    STAGED: {ACTIVATING, REC_FAILED, LOST},
    ACTIVATING: {LIVE, PUT_BACK, REC_LIVE, REC_FAILED, LOCKED, STAGED, ACTIVATING, LOST},
    LIVE: {ACTIVATING, PUT_BACK, REC_LIVE, LOST},
    PUT_BACK: {REC_FAILED, RELEASED, LOST},
    REC_LIVE: set(),
    REC_FAILED: set(),
    RELEASED: set(),
    LOST: {LOST},
}


def test_the_transition_table_allows_exactly_these_moves():
    assert {a: set(b) for a, b in TRANSITIONS.items()} == ALLOWED
    for a in RunState:
        for b in RunState:
            if b in ALLOWED[a]:
                assert a.to(b) is b
            else:
                with pytest.raises(BadTransition, match=f"from {a.value} to {b.value}"):
                    a.to(b)


#                      holds_lock, lock_in_doubt, flipped, recorded
SAYS = {
    NEW:        (False, False, False, False),
    ASKED:      (False, True,  False, False),
    LOCKED:     (True,  False, False, False),
    STAGED:     (True,  False, False, False),
    ACTIVATING: (True,  False, True,  False),
    LIVE:       (True,  False, True,  False),
    PUT_BACK:   (True,  False, False, False),
    REC_LIVE:   (False, False, True,  True),
    REC_FAILED: (False, False, False, True),
    RELEASED:   (False, False, False, False),
    LOST:       (False, True,  False, False),
}


def test_what_each_state_tells_recovery():
    assert set(SAYS) == set(RunState)
    for s, says in SAYS.items():
        assert (s.holds_lock, s.lock_in_doubt, s.flipped, s.recorded) == says, s


def test_a_bad_move_is_a_bug_named_with_the_host_and_the_way_it_came():
    t = runner.HostRun(None, None, None, None, {"token": "t"}, print)
    t.host = type("H", (), {"name": "h1"})()
    t.move(ASKED)
    with pytest.raises(BadTransition, match=r"\[h1\] .*from lock asked to live \(it went new -> lock asked\)"):
        t.move(LIVE)
    assert t.state is ASKED and t.walked == [NEW]
    assert not issubclass(BadTransition, AynaFabError)   # never reported as a host's failure


def test_only_move_changes_a_runs_state():
    """The table is enforced in one place: no module sets a run's state past HostRun.move."""
    package = Path(runner.__file__).parent
    setters = [(str(p.relative_to(package)), line.strip()) for p in sorted(package.rglob("*.py"))
               for line in p.read_text().splitlines()
               if re.search(r"\.state\s*=[^=]|setattr\([^)]*[\"']state[\"']", line)]
    assert setters == [("runner.py", "self.state = new")]


# --- the way runs walk -------------------------------------------------------------------------

def run(w: World, kind="deploy", hosts=("h1",), faults=None, **options):
    """The operation's host runs, and the error it ended with (None if it succeeded)."""
    targets = w.targets(hosts, faults or {}, options.get("dry_run", False))
    if kind == "deploy":
        source, revision = resolve(w.project, "HEAD")
        op = Deploy(w.cfg, w.project, source, revision, Options(**options), targets)
    else:
        op = Rollback(w.cfg, w.project, RollbackOptions(**options), targets)
    try:
        runner.run(op, w.said.append)
    except AynaFabError as exc:
        return {t.name: [*t.walked, t.state] for t in targets}, exc
    return {t.name: [*t.walked, t.state] for t in targets}, None


UP_TO_STAGED = [NEW, ASKED, LOCKED, STAGED]


def test_a_lone_deploy_is_recorded_by_its_activation(world):
    walks, err = run(world)
    assert err is None and walks["h1"] == [*UP_TO_STAGED, ACTIVATING, REC_LIVE]


def test_a_fleet_is_recorded_by_the_laptop_once_every_host_is_live(world):
    walks, err = run(world, hosts=HOSTS, batch="1")
    assert err is None and all(w == [*UP_TO_STAGED, ACTIVATING, LIVE, REC_LIVE] for w in walks.values())


def test_a_dry_run_walks_the_same_states(world):
    walks, err = run(world, dry_run=True)
    assert err is None and walks["h1"] == [*UP_TO_STAGED, ACTIVATING, LIVE, REC_LIVE]


def test_a_refused_lock_is_left_in_doubt_and_released_by_its_token_only_if_ours(world):
    root = world.layout("h1").root
    os.mkdir(f"{root}/.deploy-lock")
    Path(f"{root}/.deploy-lock/owner.json").write_text(json.dumps({"token": "x", "by": "ana"}))
    walks, err = run(world)
    assert err is not None and walks["h1"] == [NEW, ASKED]
    assert json.loads(Path(f"{root}/.deploy-lock/owner.json").read_text())["token"] == "x"


def test_a_lock_whose_answer_was_lost_is_released_by_its_token(world):
    walks, err = run(world, faults={"h1": [Fault("plan", kind="link-after")]})
    assert err is not None and walks["h1"] == [NEW, ASKED] and not world.locked()


def test_a_failure_before_the_flip_is_recorded_from_where_it_stopped(world):
    walks, _ = run(world, faults={"h1": [Fault("prepare", kind="fail-step", step="check")]})
    assert walks["h1"] == [*UP_TO_STAGED, REC_FAILED]
    # the upload travels on the stage call's stdin: lost on the way, the host may have begun vN
    walks, _ = run(world, faults={"h1": [Fault("upload")]})
    assert walks["h1"] == [*UP_TO_STAGED, REC_FAILED]


def test_an_activation_that_never_reached_the_host_goes_back_to_where_it_was(world):
    walks, _ = run(world, faults={"h1": [Fault("activate", kind="link-before")]})
    assert walks["h1"] == [*UP_TO_STAGED, ACTIVATING, STAGED, REC_FAILED]


@pytest.mark.parametrize("kind", ["link-after", "interrupt", "interrupt-raised"])
def test_an_activation_carried_by_the_host_is_read_from_its_answer(world, kind):
    walks, err = run(world, faults={"h1": [Fault("activate", kind=kind)]})
    assert err is None and walks["h1"] == [*UP_TO_STAGED, ACTIVATING, REC_LIVE]


def test_the_hosts_own_way_back_is_recorded_by_the_host(world):
    world.states["h1"].broken_live.add(2)
    walks, err = run(world)
    assert err is not None and walks["h1"] == [*UP_TO_STAGED, ACTIVATING, REC_FAILED]


def test_the_hosts_way_back_is_recorded_by_the_laptop_after_the_after_failure_hooks(world):
    with_hooks(world, hook("told", "after-failure"))
    world.states["h1"].broken_live.add(2)
    walks, err = run(world)
    assert err is not None and walks["h1"] == [*UP_TO_STAGED, ACTIVATING, PUT_BACK, REC_FAILED]


def test_a_fleet_puts_its_flipped_hosts_back(world):
    world.states["h2"].broken_live.add(2)
    walks, _ = run(world, hosts=HOSTS, batch="1")
    assert walks["h1"] == [*UP_TO_STAGED, ACTIVATING, LIVE, ACTIVATING, LIVE, PUT_BACK, REC_FAILED]
    assert walks["h2"] == [*UP_TO_STAGED, ACTIVATING, REC_FAILED]
    assert walks["h3"] == [*UP_TO_STAGED, REC_FAILED]


def test_a_fleet_with_on_failure_stop_records_its_healthy_flipped_hosts(world):
    world.states["h2"].broken_live.add(2)
    walks, _ = run(world, hosts=HOSTS, batch="1", on_failure="stop")
    assert walks["h1"] == [*UP_TO_STAGED, ACTIVATING, LIVE, REC_LIVE]


def test_a_first_fleet_deploy_put_back_stops_the_units(tmp_path):
    w = World(tmp_path, hosts=("h1", "h2"))
    w.states["h2"].broken_live.add(1)
    walks, _ = run(w, hosts=("h1", "h2"), batch="1")
    assert walks["h1"] == [*UP_TO_STAGED, ACTIVATING, LIVE, PUT_BACK, REC_FAILED]


def test_a_put_back_that_fails_leaves_the_host_live_and_locked(world):
    world.states["h1"].broken_live.update({1, 2})
    walks, _ = run(world)
    assert walks["h1"] == [*UP_TO_STAGED, ACTIVATING, LIVE, ACTIVATING, LIVE]


def test_a_lock_taken_away_stops_the_run_where_it_was(world):
    root = world.layout("h1").root
    orig = FakeRemote.run

    def steal(self, cmd, **kw):   # taken while the upload travels, before the host stages it
        if type(cmd.call).__name__ == "Stage":
            os.rename(f"{root}/.deploy-lock", f"{root}/.stolen")
        return orig(self, cmd, **kw)

    FakeRemote.run = steal
    try:
        walks, err = run(world)
    finally:
        FakeRemote.run = orig
    assert err is not None and walks["h1"] == [*UP_TO_STAGED, LOST]


def test_rollbacks_walk_without_staging(world):
    world.deploy()
    walks, err = run(world, kind="rollback")
    assert err is None and walks["h1"] == [NEW, ASKED, LOCKED, ACTIVATING, REC_LIVE]
    world.states["h1"].broken.add(2)      # fails its pre-flip check: only the lock to let go
    walks, err = run(world, kind="rollback", to=2)
    assert err is not None and walks["h1"] == [NEW, ASKED, LOCKED, RELEASED]
    world.states["h1"].broken.discard(2)
    world.states["h1"].broken_live.add(2)  # fails once live: the host goes back and records it
    walks, err = run(world, kind="rollback", to=2)
    assert err is not None and walks["h1"] == [NEW, ASKED, LOCKED, ACTIVATING, REC_FAILED]


def test_a_fleet_rollback_puts_its_flipped_hosts_back(world):
    world.deploy(hosts=HOSTS)
    world.states["h2"].broken_live.add(1)
    walks, err = run(world, kind="rollback", hosts=HOSTS)
    assert err is not None
    assert walks["h1"] == [NEW, ASKED, LOCKED, ACTIVATING, LIVE, ACTIVATING, LIVE, PUT_BACK, REC_FAILED]
    assert walks["h2"] == [NEW, ASKED, LOCKED, ACTIVATING, REC_FAILED]
