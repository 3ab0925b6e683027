"""The operation's holder on the host (hostprog/holder.py), held where a one-line bug in it went
unnoticed: how it reads the laptop's channel, what `fab unlock` and an abandoned operation leave on
disk (records, the deploy log, the lock) and what they answer. The activation itself is another
module's (switchover.resume): here it is stood in for, with the journal it leaves."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ayna_fab.hostprog import calls, holder, lock, store, switchover, wire

AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def root(tmp_path):
    """A project with v1 live, v2 and v3 building, locked by a deploy of token t1."""
    root = str(tmp_path)
    for number, state in ((1, "active"), (2, "building"), (3, "building")):
        os.makedirs(store.release_dir(root, number))
        store.write_json(os.path.join(store.release_dir(root, number), store.META), {"state": state})
    store.flip(root, 1)
    assert lock.take(root, {"token": "t1", "operation": "deploy", "by": "ann"}) is None
    return root


@pytest.fixture(autouse=True)
def sighup():
    previous = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, previous)


@pytest.fixture(autouse=True)
def settling_ends(monkeypatch):
    """abandon waits only while a step of the operation runs: a wait that goes on is a failure here,
    not a hang (no test here leaves a step running for abandon to wait out)."""
    waits = []

    def bounded(seconds):
        waits.append(seconds)
        assert len(waits) < 20, "abandon went on waiting with no step of the operation running"

    monkeypatch.setattr(holder.time, "sleep", bounded)


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@pytest.fixture(autouse=True)
def far_east(monkeypatch):
    """The host's local time is 9 hours ahead of UTC: the log's times are UTC all the same."""
    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def states(root):
    return {r["number"]: r["meta"].get("state") for r in store.listing(root)}


def log(root):
    """The deploy log's entries, each checked for its time (UTC, not later than now) and without it."""
    with open(os.path.join(root, "logs", "deploys.jsonl")) as f:
        entries = [json.loads(line) for line in f]
    for e in entries:
        at = e.pop("at")
        assert AT.match(at) and at <= utc_now(), (at, utc_now())
    return entries


def channel(*writes, close=True):
    """The holder's stdin: a pipe with these bytes written (and its write end closed)."""
    r, w = os.pipe()
    for data in writes:
        os.write(w, data)
    if close:
        os.close(w)
        return r, None
    return r, w


def test_a_laptop_that_says_done_leaves_the_lock_and_removes_only_its_holder_mark(root):
    lock.mark_holding(root)
    r, _ = channel(wire.HEARTBEAT, wire.HEARTBEAT + b"do", b"ne\n")
    try:
        assert holder.hold_until_done(root, "t1", stdin=r) == {"abandoned": False}
    finally:
        os.close(r)
    assert lock.holds(root, "t1") and lock.holders(root) == [] and not lock.had_holder(root)
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN   # the end of stdin says it all


def test_a_channel_that_ends_without_done_abandons_the_operation(root):
    r, _ = channel(wire.HEARTBEAT, b"don")
    try:
        res = holder.hold_until_done(root, "t1", stdin=r)
    finally:
        os.close(r)
    assert res == {"abandoned": True, "operation": "deploy", "outcome": None}
    assert log(root) == [{"event": "deploy", "result": "abandoned", "release": "v3", "by": "ann",
                          "reason": "the connection to the laptop closed; nothing had changed the live site"}]
    assert lock.holder(root) is None and states(root) == {1: "active", 2: "failed", 3: "failed"}
    assert store.read_json(os.path.join(store.release_dir(root, 3), store.META)) == {
        "state": "failed", "failed_step": "abandoned"}


def test_an_abandoned_rollback_is_logged_as_one_naming_the_newest_release_building(root):
    store.write_json(os.path.join(lock.path(root), lock.OWNER), {"token": "t1", "operation": "rollback"})
    os.makedirs(store.release_dir(root, 4))
    store.write_json(os.path.join(store.release_dir(root, 4), store.META), {"state": "building"})
    assert holder.abandon(root, "t1")["operation"] == "rollback"
    assert (log(root)[0]["event"], log(root)[0]["release"]) == ("rollback", "v4")


def test_a_silent_channel_abandons_the_operation_saying_for_how_long(root):
    r, w = channel(wire.HEARTBEAT, close=False)
    try:
        res = holder.hold_until_done(root, "t1", stdin=r, silent_after=0.25)
    finally:
        os.close(r)
        os.close(w)
    assert res["abandoned"] is True
    assert log(root)[0]["reason"] == ("the laptop fell silent (nothing heard for 0.25 s); "
                                      "nothing had changed the live site")


def test_the_holder_waits_for_the_laptop_as_long_as_its_silence_allows(root, monkeypatch):
    waits = []
    select = holder.select.select

    def watched(r, w, x, timeout):
        waits.append(timeout)
        return select(r, w, x, timeout)

    monkeypatch.setattr(holder.select, "select", watched)
    r, _ = channel(wire.DONE)
    try:
        assert holder.hold_until_done(root, "t1", stdin=r, silent_after=30) == {"abandoned": False}
    finally:
        os.close(r)
    assert waits and all(0 < w <= 30 for w in waits), waits


def test_an_unreadable_channel_is_a_closed_one(root):
    r, _ = channel()
    os.close(r)   # a descriptor no longer open: select fails
    assert holder.hold_until_done(root, "t1", stdin=r)["abandoned"] is True
    assert lock.holder(root) is None


def test_by_default_the_holder_reads_its_own_stdin(root, monkeypatch):
    r, _ = channel(wire.DONE)
    with os.fdopen(r) as stdin:
        monkeypatch.setattr(holder.sys, "stdin", stdin)
        assert holder.hold_until_done(root, "t1") == {"abandoned": False}


def test_unlock_answers_for_a_lock_that_is_not_there_or_not_the_caller_s(root, tmp_path):
    other = str(tmp_path / "other")
    os.makedirs(other)
    assert holder.unlock(calls.Unlock(other, "t1", False)) == {"holder": None, "result": "not-locked"}
    res = holder.unlock(calls.Unlock(root, "t2", False))
    assert res["result"] == "held-by-other" and res["holder"]["token"] == "t1" and lock.holds(root, "t1")
    assert not os.path.exists(os.path.join(root, "logs"))


def test_unlock_is_refused_while_a_step_of_the_operation_runs_but_not_for_its_own_process(root):
    lock.mark_working(root, "unlock itself")
    step = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        lock.mark_working(root, "migrate", pid=step.pid)
        res = holder.unlock(calls.Unlock(root, "t1", True))
        assert res["result"] == "busy" and res["holder"]["token"] == "t1" and lock.holds(root, "t1")
    finally:
        step.stdin.close()
        step.wait()
    res = holder.unlock(calls.Unlock(root, "t1", False))
    assert res["result"] == "released" and lock.holder(root) is None


def test_unlock_settles_the_operation_as_the_next_plan_would_then_removes_the_lock(root):
    res = holder.unlock(calls.Unlock(root, "t2", True))
    assert res["result"] == "released" and res["holder"]["token"] == "t1" and res["holder"]["by"] == "ann"
    assert res["settled"] == {"abandoned": True, "operation": "deploy", "outcome": None}
    assert log(root)[0]["reason"] == ("its lock was removed by hand (fab unlock); "
                                      "nothing had changed the live site")
    assert lock.holder(root) is None and states(root)[3] == "failed"


def test_unlock_of_a_lock_without_a_token_removes_it_with_nothing_to_settle(root):
    store.write_json(os.path.join(lock.path(root), lock.OWNER), {"operation": "deploy"})
    res = holder.unlock(calls.Unlock(root, None, False))
    assert (res["holder"]["operation"], res["result"], res["settled"]) == ("deploy", "released", None)
    assert lock.holder(root) is None and states(root)[3] == "building"


def test_a_forced_unlock_removes_a_lock_without_a_token_whoever_asks(root):
    store.write_json(os.path.join(lock.path(root), lock.OWNER), {"operation": "deploy"})
    assert holder.unlock(calls.Unlock(root, "t9", True))["result"] == "released"
    assert lock.holder(root) is None


def test_abandoning_an_operation_no_longer_holding_the_lock_changes_nothing(root):
    assert holder.abandon(root, "t2") == {"abandoned": False}
    assert lock.holds(root, "t1") and states(root)[3] == "building"
    lock.release(root, "t1")
    assert holder.abandon(root, "t1") == {"abandoned": False}
    assert not os.path.exists(os.path.join(root, "logs"))


def test_abandoning_waits_for_the_operation_s_steps_still_running(root, monkeypatch):
    lock.mark_working(root, "the call abandoning it")   # its own process is not waited for
    step = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    lock.mark_working(root, "build", pid=step.pid)
    waits = []

    def sleep(seconds):   # the step ends during the first wait
        assert not waits, "it waited again once no step of the operation ran"
        waits.append(seconds)
        step.stdin.close()
        step.wait()

    monkeypatch.setattr(holder.time, "sleep", sleep)
    assert holder.abandon(root, "t1")["abandoned"] is True
    assert waits == [holder.SETTLE_POLL] and lock.holder(root) is None


def test_a_lock_taken_over_while_waiting_is_left_alone(root, monkeypatch):
    step = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    lock.mark_working(root, "build", pid=step.pid)

    def sleep(seconds):   # meanwhile the lock is released by hand and taken by another operation
        shutil.rmtree(lock.path(root))
        lock.take(root, {"token": "t2"})

    monkeypatch.setattr(holder.time, "sleep", sleep)
    try:
        assert holder.abandon(root, "t1") == {"abandoned": False}
    finally:
        step.stdin.close()
        step.wait()
    assert lock.holds(root, "t2") and states(root)[3] == "building"


def test_an_abandoned_operation_of_no_kind_is_a_deploy_and_a_building_current_is_left(root):
    store.write_json(os.path.join(lock.path(root), lock.OWNER), {"token": "t1"})
    store.set_state(root, 1, "building")
    store.set_state(root, 2, "good")
    store.set_state(root, 3, "good")
    assert holder.abandon(root, "t1", why="why") == {"abandoned": True, "operation": None, "outcome": None}
    assert log(root) == [{"event": "deploy", "result": "abandoned", "release": None, "by": None,
                          "reason": "why; nothing had changed the live site"}]
    assert states(root) == {1: "building", 2: "good", 3: "good"}


class Activation:
    """journal.of and switchover.resume as an activation left them: before, then after resume."""

    def __init__(self, monkeypatch, root, before, after, release_lock=False):
        self.resumed = []
        self.journal = before

        def of(at, token):
            return self.journal if (at, token) == (root, "t1") else None

        def resume(at, token):
            self.resumed.append((at, token))
            self.journal = after
            if release_lock:
                lock.release(at, token)

        monkeypatch.setattr(holder.journal, "of", of)
        monkeypatch.setattr(switchover, "resume", resume)


def pending(states_):
    return {"call": {"record": {"pending": {"states": states_}}}}


def test_an_activation_that_went_live_is_recorded_as_the_laptop_would_have(root, monkeypatch):
    live = dict(pending({"1": "previous"}), number=3, back=1, outcome="live")
    act = Activation(monkeypatch, root, dict(live, outcome=None), live)
    res = holder.abandon(root, "t1", why="the laptop fell silent")
    assert act.resumed == [(root, "t1")]
    assert res == {"abandoned": True, "operation": "deploy", "outcome": "live", "number": 3, "back": 1}
    assert states(root) == {1: "previous", 2: "building", 3: "active"}
    assert log(root) == [{"event": "deploy", "result": "ok", "release": "v3",
                          "note": "the laptop fell silent before the fleet finished; this host was left "
                                  "serving v3 (healthy)"}]
    assert lock.holder(root) is None


def test_a_live_activation_with_nothing_pending_records_its_release_alone(root, monkeypatch):
    Activation(monkeypatch, root, {"number": 3}, {"number": 3, "outcome": "live", "call": {}})
    holder.abandon(root, "t1")
    assert states(root) == {1: "active", 2: "building", 3: "active"}


def test_a_live_activation_whose_lock_went_meanwhile_is_not_recorded_here(root, monkeypatch):
    Activation(monkeypatch, root, {"number": 3}, dict(pending({}), number=3, outcome="live"), release_lock=True)
    assert holder.abandon(root, "t1")["outcome"] == "live"
    assert states(root)[3] == "building" and not os.path.exists(os.path.join(root, "logs"))


@pytest.mark.parametrize("outcome", ["restored", "stopped"])
def test_an_activation_that_went_back_is_recorded_as_failed_with_why(root, monkeypatch, outcome):
    back = 1 if outcome == "restored" else None
    Activation(monkeypatch, root, {"number": 3}, {"number": 3, "back": back, "outcome": outcome, "reason": "web: 500"})
    store.write_json(os.path.join(lock.path(root), lock.OWNER), {"token": "t1", "operation": "rollback"})
    res = holder.abandon(root, "t1", why="its lock was removed by hand")
    assert res == {"abandoned": True, "operation": "rollback", "outcome": outcome, "number": 3, "back": back}
    assert store.read_json(os.path.join(store.release_dir(root, 3), store.META)) == {
        "state": "failed", "failed_step": "activate"}
    assert log(root) == [{"event": "rollback", "result": "failed", "release": "v3",
                          "restored": "v1" if back else None,
                          "reason": "web: 500; then its lock was removed by hand"}]
    assert states(root)[2] == "building" and lock.holder(root) is None


def test_an_activation_of_no_kind_that_went_back_without_a_reason_was_a_deploy_not_healthy(root, monkeypatch):
    Activation(monkeypatch, root, {"number": 3}, {"number": 3, "back": 1, "outcome": "restored"})
    store.write_json(os.path.join(lock.path(root), lock.OWNER), {"token": "t1"})   # of no kind: a deploy
    holder.abandon(root, "t1")
    assert log(root)[0]["reason"] == "not healthy; then the connection to the laptop closed"
    assert log(root)[0]["event"] == "deploy"


def test_an_activation_already_recorded_or_unfinished_is_not_recorded_again(root, monkeypatch):
    Activation(monkeypatch, root, {"number": 3}, {"number": 3, "back": 1, "outcome": "restored", "recorded": True})
    assert holder.abandon(root, "t1")["outcome"] == "restored"
    assert not os.path.exists(os.path.join(root, "logs")) and states(root)[3] == "building"
    lock.take(root, {"token": "t1"})
    Activation(monkeypatch, root, {"number": 3}, None)   # a journal gone after resume
    assert holder.abandon(root, "t1") == {"abandoned": True, "operation": None, "outcome": None,
                                          "number": None, "back": None}
    assert states(root)[3] == "building" and lock.holder(root) is None
