"""The activation's mechanisms, each pinned where a one-line bug in it went unnoticed by the rest
of the suite (docs/mutation-report.md): the worker detached from the call, the follower's
relaying and its deadline, the words a failed bring-up is reported in, and the outcome recorded.
The suite's fake host (tests/fakehost.py) replaces detach and verify; here they run for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import pytest

from ayna_fab.hostprog import calls, journal, lock, store, switchover, wire
from tests.polling import wait_until


def activation(root, number=3, back=2, **changes):
    """An Activate call for v{number} (units and health as a small project's)."""
    return calls.Activate(**{**dict(root=root, token="t1", number=number, actions=[["demo-web.service", "restart"]],
                                   health=[], http_units=["demo-web.service"], verify_timeout=0.0,
                                   health_timeout=0.0, back=back, restore=True, record={}), **changes})


def journal_of(root, number=3, **fields):
    """Write a journal of t1's activation of v{number}, as activate() begins it, with fields."""
    journal.write(root, {"token": "t1", "number": number, "back": 2, "steps": [], "phase": "starting",
                         "outcome": None, "call": asdict(activation(root, number, record=RECORD)), **fields})


# --- failure_text: every way a bring-up fails, one line each ---------------------------------------

def test_a_failed_bring_up_names_each_unit_error_stale_process_crash_and_unhealthy_endpoint():
    res = {"number": 4, "unit_errors": ["restart demo-web.service: Job failed"],
           "verify": {"demo-web.service": {"active": "failed", "stale": [[12, "/opt/x/releases/v3"]], "restarts": 2},
                      "demo-api.service": {"active": "active", "stale": [], "restarts": 0},
                      "demo-celery.service": {"active": "active", "stale": []}},
           "health": {"web": {"ok": False, "status": 500, "release": "v3", "body": "E" * 159 + "FG"},
                      "api": {"ok": True, "status": 200, "release": "v4", "body": "fine"}},
           "detail": "and one more thing"}
    assert switchover.failure_text(res) == "\n".join([
        "v4 is not healthy:",
        "    restart demo-web.service: Job failed",
        "    demo-web.service is failed",
        "    demo-web.service: pid 12 still runs from /opt/x/releases/v3",
        "    demo-web.service crashed and was restarted by systemd 2 time(s) since it was restarted for this "
        "release: see journalctl -u demo-web.service",
        "    web health: status 500, release v3: " + "E" * 159 + "F",
        "    and one more thing"])


def test_a_bring_up_with_nothing_to_say_is_named_alone():
    assert switchover.failure_text({"number": 2}) == "v2 is not healthy:\n"


# --- the worker, detached for real ---------------------------------------------------------------------

@pytest.fixture
def root(tmp_path):
    assert lock.take(str(tmp_path), {"token": "t1"}) is None
    journal.write(str(tmp_path), {"token": "t1", "steps": [], "phase": "starting"})
    return str(tmp_path)


def in_a_caller(call):
    """call() in a child process, as a host-program call runs: a detach that ended its caller, or
    ran the work in it, ends that child, never this test run. {"returned": its value, "pid": the
    caller's}, or {} when the caller ended without returning."""
    r, w = os.pipe()
    caller = os.fork()
    if caller == 0:
        os.close(r)
        try:
            out = {"returned": call(), "pid": os.getpid()}
        except BaseException as exc:
            out = {"raised": repr(exc), "pid": os.getpid()}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):   # end of file once the caller (and a worker it left) closed it
        data += chunk
    os.close(r)
    os.waitpid(caller, 0)
    return json.loads(data) if data else {}


def what_the_worker_saw(root, work_fails=False):
    """Detach a worker that writes down where it runs; return (its record, the journal as detach left it)."""
    seen = os.path.join(root, "seen.json")

    def work():
        j = journal.read(root)
        null = os.stat(os.devnull)
        with open(seen + ".tmp", "w") as f:
            json.dump({"pid": os.getpid(), "sid": os.getsid(0), "journal_worker": j.get("worker"),
                       "start": lock.start_time(os.getpid()),
                       "ignored": [signal.getsignal(s) == signal.SIG_IGN
                                   for s in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE)],
                       "stdio_null": [os.path.samestat(os.fstat(fd), null) for fd in (0, 1, 2)]}, f)
        os.replace(seen + ".tmp", seen)
        if work_fails:
            raise RuntimeError("the work broke " + "x" * 4000)

    caller = in_a_caller(lambda: (switchover.detach(root, work), journal.read(root))[1])
    assert "returned" in caller, f"detach did not return to its caller: {caller}"
    after_detach = caller["returned"]
    assert wait_until(lambda: os.path.exists(seen), 30), "the worker never ran"
    with open(seen) as f:
        return json.load(f), after_detach


def test_the_worker_runs_in_a_session_of_its_own_deaf_to_hangups_with_no_stdio(root):
    saw, _ = what_the_worker_saw(root)
    assert saw["sid"] != os.getsid(0) and saw["pid"] != os.getpid()
    assert saw["ignored"] == [True, True, True]
    assert saw["stdio_null"] == [True, True, True]


def test_the_worker_is_named_in_the_journal_and_the_lock_before_detach_returns_and_before_it_works(root):
    saw, after_detach = what_the_worker_saw(root)
    assert after_detach["worker"] == {"pid": saw["pid"], "start": saw["start"]}
    assert saw["journal_worker"] == after_detach["worker"]
    with open(os.path.join(lock.path(root), f"worker-{saw['pid']}.json")) as f:
        assert json.load(f)["what"] == "activate"


def test_detach_returns_to_its_caller_and_only_the_worker_runs_the_work(root, tmp_path):
    """In a process of its own: a detach that ran the work in the caller, or ended the caller, would
    end this test's own process too."""
    program = ("import os, sys\n"
               "from ayna_fab.hostprog import switchover\n"
               "root = sys.argv[1]\n"
               "def work():\n"
               "    with open(os.path.join(root, 'worked'), 'w') as f:\n"
               "        null = os.path.samestat(os.fstat(0), os.stat(os.devnull))\n"
               "        f.write(f'{os.getpid()} {null}')\n"
               "switchover.detach(root, work)\n"
               "print('returned', os.getpid())\n")
    out = subprocess.run([sys.executable, "-c", program, root], input="", capture_output=True, text=True,
                         timeout=60).stdout.split()   # its stdin a pipe, as an SSH session's
    assert out[:1] == ["returned"]
    worked = os.path.join(root, "worked")
    assert wait_until(lambda: os.path.exists(worked) and open(worked).read(), 30)
    pid, null = open(worked).read().split()
    assert pid != out[1] and null == "True"


def test_a_worker_that_crashes_leaves_its_traceback_in_the_journal(root):
    what_the_worker_saw(root, work_fails=True)
    crash = wait_until(lambda: (journal.read(root) or {}).get("crash"), 30)
    assert crash and len(crash) == 3000 and crash.rstrip().endswith("x" * 2900)   # the traceback's last 3000 characters


# --- follow: relays steps, answers at the end, or says it is still running at its deadline --------------

def test_a_follower_whose_deadline_has_passed_says_the_activation_is_still_running(root, capsys):
    journal_of(root, phase="verify", steps=[["flip", 0.01, True], ["restart", 1.5, False]])
    assert switchover.follow(root, "t1", deadline=0) == {"running": True, "phase": "verify", "number": 3}
    assert capsys.readouterr().out.splitlines() == [
        "@@step flip 0.010 ok", "@@step restart 1.500 failed", "@@start verify"]


def test_a_follower_with_no_deadline_waits_for_the_end(root, monkeypatch):
    states = iter([{"token": "t1", "number": 3, "phase": "flip", "steps": []},
                   {"token": "t1", "number": 3, "phase": "done", "outcome": "restored", "back": 2, "steps": [],
                    "result": {"ok": False}, "restore": {"ok": True}, "recorded": {"x": 1}, "reason": "why"}])
    monkeypatch.setattr(journal, "of", lambda root, token: next(states))
    monkeypatch.setattr(switchover, "FOLLOW_POLL", 0)
    assert switchover.follow(root, "t1") == {
        "outcome": "restored", "ok": False, "number": 3, "back": 2, "result": {"ok": False},
        "restore": {"ok": True}, "recorded": {"x": 1}, "reason": "why"}


def test_following_an_activation_the_operation_never_started_is_refused(root):
    journal_of(root)
    with pytest.raises(wire.Refused) as refused:
        switchover.follow_call(calls.Follow(root=root, token="other", timeout=0))
    assert refused.value.code == "no-activation"


@pytest.mark.parametrize("timeout", [0, 30])
def test_following_within_its_timeout_or_with_none_answers_the_outcome_when_it_comes(root, monkeypatch, timeout):
    journal_of(root, phase="health")
    done = {**journal.read(root), "phase": "done", "outcome": "live"}
    states = iter([journal.read(root)] * 3 + [done])
    monkeypatch.setattr(journal, "of", lambda root, token: next(states))
    monkeypatch.setattr(switchover, "FOLLOW_POLL", 0)
    assert switchover.follow_call(calls.Follow(root=root, token="t1", timeout=timeout))["outcome"] == "live"


def test_following_with_a_timeout_answers_running_once_it_has_passed(root, monkeypatch):
    journal_of(root, phase="health")
    monkeypatch.setattr(switchover, "FOLLOW_POLL", 0)
    got = switchover.follow_call(calls.Follow(root=root, token="t1", timeout=0.05))
    assert got == {"running": True, "phase": "health", "number": 3}


# --- bring_up: flip, restart all at once, health, verify; what each is asked and what it reports ---------

class Systemd:
    """units and health as an activation sees them, recorded: unit states before the restart,
    the control commands started (with their exit code and output), health's and verify's calls."""

    def __init__(self, monkeypatch, root, states, failing=(), healthy=True, verified=True):
        self.root = root
        self.calls = []
        self.failing = set(failing)

        class Proc:
            def __init__(proc, verb, unit):
                phase(self.root)
                proc.returncode = 1 if unit in self.failing else 0
                proc.output = f"  {verb} of {unit} failed  \n" if proc.returncode else ""
                self.calls.append(("control", verb, unit))

            def communicate(proc):
                self.calls.append(("settled", proc.returncode))
                return proc.output, None

        self.phases, self.deadlines, self.checks = [], {}, None

        def phase(root):
            self.phases.append(journal.read(root)["phase"])

        def poll(checks, expect, deadline, fail_fast=False):
            self.calls.append(("health", expect, fail_fast))
            self.checks, self.deadlines["health"] = checks, deadline
            phase(self.root)
            return healthy, {"web": {"ok": healthy}}

        def verify(unit_names, rel, deadline, restarts_before=None, settle_units=()):
            self.calls.append(("verify", list(unit_names), rel, restarts_before, list(settle_units)))
            self.deadlines["verify"] = deadline
            phase(self.root)
            return verified, {"seen": True}

        flip = store.flip

        def flipped(root, number):
            phase(root)
            flip(root, number)

        monkeypatch.setattr(switchover.units, "states", lambda names: {u: dict(states[u]) for u in names})
        monkeypatch.setattr(switchover.units, "control_async", Proc)
        monkeypatch.setattr(switchover.health, "poll", poll)
        monkeypatch.setattr(switchover, "verify", verify)
        monkeypatch.setattr(switchover.store, "flip", flipped)


ACTIONS = [["demo-web.service", "reload-or-restart"], ["demo-celery.service", "restart"]]
BEFORE = {"demo-web.service": {"state": "active", "restarts": 2}, "demo-celery.service": {"state": "failed", "restarts": 5}}


@pytest.fixture
def project(root):
    for n in (2, 3):
        os.makedirs(store.release_dir(root, n))
    store.flip(root, 2)
    journal_of(root)
    return root


def bring_up(root, number=3, restoring=False, **changes):
    a = activation(root, actions=ACTIONS, http_units=["demo-web.service"], **changes)
    return switchover.bring_up(a, number, restoring=True) if restoring else switchover.bring_up(a, number)


class Clock:
    """switchover's time: each reading of the monotonic clock 1.0001 s after the last."""

    def __init__(self):
        self.now = 100.0

    def monotonic(self):
        self.now += 1.0001
        return self.now

    time = staticmethod(time.time)


def test_a_bring_up_times_each_step_to_the_millisecond_and_gives_health_and_verify_their_deadlines(project, monkeypatch):
    systemd = Systemd(monkeypatch, project, BEFORE)
    clock = Clock()
    monkeypatch.setattr(switchover, "time", clock)
    res = bring_up(project, health=[{"name": "web"}], health_timeout=30.0, verify_timeout=20.0)
    # readings: started, flip 2-3, restart from 4, health 5-7 (its deadline read at 6), restart ends 8, verify 9-11
    assert res["steps"] == {"flip": 1.0, "restart": 2.0, "health": 2.0, "verify": 2.0}
    assert all(type(v) is float for v in res["steps"].values())
    assert [s[:2] for s in journal.read(project)["steps"]] == [["flip", 1.0], ["restart", 2.0], ["health", 2.0],
                                                               ["verify", 2.0]]
    assert systemd.deadlines == {"health": pytest.approx(100 + 6 * 1.0001 + 30), "verify": pytest.approx(100 + 10 * 1.0001 + 20)}
    assert systemd.checks == [{"name": "web"}]
    assert systemd.phases == ["flip", "restart", "restart", "health", "verify"]   # at the flip, each restart, health, verify


def test_a_way_back_is_one_phase_and_one_step_timed_from_its_start(project, monkeypatch):
    systemd = Systemd(monkeypatch, project, BEFORE)
    monkeypatch.setattr(switchover, "time", Clock())
    bring_up(project, number=2, restoring=True)
    assert set(systemd.phases) == {"restore"}
    assert journal.read(project)["steps"] == [["restore", 11.001, True]]


def test_a_bring_up_flips_restarts_every_unit_then_asks_health_and_verify(project, monkeypatch):
    systemd = Systemd(monkeypatch, project, BEFORE)
    res = bring_up(project)
    assert store.current_number(project) == 3
    assert systemd.calls == [
        ("control", "reload-or-restart", "demo-web.service"),
        ("control", "restart", "demo-celery.service"),       # it was not running: started afresh
        ("settled", 0),                                       # the web unit, before health
        ("health", "v3", True),
        ("settled", 0),
        ("verify", ["demo-web.service", "demo-celery.service"], store.release_dir(project, 3),
         {"demo-web.service": 2, "demo-celery.service": 5}, ["demo-celery.service"])]
    assert res["ok"] and res["verified"] and res["healthy"] and res["unit_errors"] == []
    assert res["number"] == 3 and res["health"] == {"web": {"ok": True}} and res["verify"] == {"seen": True}
    assert set(res["steps"]) == {"flip", "restart", "health", "verify"}
    j = journal.read(project)
    assert [s[0] for s in j["steps"]] == ["flip", "restart", "health", "verify"] and j["phase"] == "verify"
    assert all(ok for _, _, ok in j["steps"])


def test_a_unit_that_fails_its_restart_is_an_error_and_health_waits_out_5xx(project, monkeypatch):
    systemd = Systemd(monkeypatch, project, BEFORE, failing={"demo-web.service"})
    res = bring_up(project)
    assert ("health", "v3", False) in systemd.calls
    assert res["unit_errors"] == ["reload-or-restart demo-web.service: reload-or-restart of demo-web.service failed"]
    assert not res["ok"] and not res["verified"] and res["healthy"]
    assert ["restart", False] == [s[:3:2] for s in journal.read(project)["steps"] if s[0] == "restart"][0]


@pytest.mark.parametrize("healthy, verified", [(False, True), (True, False)])
def test_a_bring_up_is_ok_only_when_healthy_and_verified(project, monkeypatch, healthy, verified):
    Systemd(monkeypatch, project, BEFORE, healthy=healthy, verified=verified)
    res = bring_up(project)
    assert not res["ok"] and res["healthy"] == healthy and res["verified"] == verified
    steps = {s[0]: s[2] for s in journal.read(project)["steps"]}
    assert steps == {"flip": True, "restart": True, "health": healthy, "verify": verified}


def test_a_way_back_shows_as_one_restore_step(project, monkeypatch):
    Systemd(monkeypatch, project, BEFORE, healthy=False)
    journal.update(project, phase="verify")
    res = bring_up(project, number=2, restoring=True)
    j = journal.read(project)
    assert store.current_number(project) == 2 and not res["ok"]
    assert [s[0] for s in j["steps"]] == ["restore"] and j["steps"][0][2] is False and j["phase"] == "restore"


# --- the outcome: the way back taken as asked, recorded as asked -----------------------------------------

@pytest.fixture
def recorded(project, monkeypatch):
    """finish.record's calls (the lock is t1's)."""
    seen = []
    monkeypatch.setattr(switchover.finish, "record",
                        lambda root, token, states, meta, log, remove, units: seen.append(
                            {"token": token, "states": states, "meta": meta, "log": log, "remove": remove,
                             "units": units, "root": root, "phase": journal.read(root)["phase"]}) or "recorded")
    return seen


RECORD = {"ok": {"states": {"3": "live"}, "meta": {"m": 1}, "log": {"event": "deploy", "result": "ok"},
                 "remove": [1], "units": ["u"]},
          "failed": {"states": {"3": "failed"}, "log": {"event": "deploy", "result": "failed"}}}


def test_a_live_outcome_is_recorded_as_asked_and_the_journal_is_done(project, recorded):
    switchover.record_outcome(activation(project, record=RECORD), "live", None)
    assert recorded == [{"token": "t1", "states": {"3": "live"}, "meta": {"m": 1},
                         "log": {"event": "deploy", "result": "ok"}, "remove": [1], "units": ["u"],
                         "root": project, "phase": "record"}]
    j = journal.read(project)
    assert j["phase"] == "done" and j["outcome"] == "live" and j["recorded"] == "recorded" and j["finished"]


def test_a_restored_outcome_logs_the_end_of_its_reason_and_the_release_put_back(project, recorded):
    reason = "x" * 100 + "y" * 2000
    switchover.record_outcome(activation(project, record=RECORD), "restored", {"ok": True}, reason)
    assert recorded[0]["log"] == {"event": "deploy", "result": "failed", "reason": "y" * 2000, "restored": "v2"}
    assert recorded[0]["states"] == {"3": "failed"} and recorded[0]["meta"] == {} and recorded[0]["remove"] == []
    assert RECORD["failed"]["log"] == {"event": "deploy", "result": "failed"}   # the call's own spec untouched


def test_a_stopped_outcome_names_no_release_put_back(project, recorded):
    switchover.record_outcome(activation(project, record=RECORD, back=None), "stopped", None, None)
    assert recorded[0]["log"] == {"event": "deploy", "result": "failed", "reason": "", "restored": None}


@pytest.mark.parametrize("outcome", ["failed", "restore-failed"])
def test_an_outcome_left_for_a_person_is_not_recorded(project, recorded, outcome):
    switchover.record_outcome(activation(project, record=RECORD), outcome, None, "why")
    j = journal.read(project)
    assert recorded == [] and j["phase"] == "done" and j["outcome"] == outcome and j["recorded"] is None


def test_an_operation_that_lost_its_lock_records_nothing(project, recorded):
    switchover.record_outcome(activation(project, record=RECORD, token="t2"), "live", None)
    assert recorded == [] and journal.read(project)["phase"] == "done"


def test_the_way_back_to_no_release_stops_the_units_and_removes_current(project, recorded, monkeypatch):
    stopped = []
    monkeypatch.setattr(switchover.units, "control", lambda verb, unit: stopped.append((verb, unit)))
    switchover.take_way_back(activation(project, record=RECORD, back=None, actions=ACTIONS), "why")
    assert stopped == [("stop", "demo-web.service"), ("stop", "demo-celery.service")]
    assert store.current_number(project) is None
    j = journal.read(project)
    assert j["outcome"] == "stopped" and j["steps"][-1] == ["restore", 0.0, True]


def test_units_that_will_not_stop_leave_the_way_back_failed(project, recorded, monkeypatch):
    monkeypatch.setattr(switchover.units, "control", lambda verb, unit: f"{verb} {unit}: denied")
    switchover.take_way_back(activation(project, record=RECORD, back=None, actions=ACTIONS), "why")
    j = journal.read(project)
    assert j["outcome"] == "restore-failed" and j["steps"][-1][0::2] == ["restore", False] and recorded == []


def test_without_restore_a_failure_is_left_as_it_is(project, recorded, monkeypatch):
    monkeypatch.setattr(switchover, "bring_up", lambda *a, **k: pytest.fail("no way back was asked for"))
    switchover.take_way_back(activation(project, record=RECORD, restore=False), "why")
    j = journal.read(project)
    assert j["outcome"] == "failed" and j["restore"] is None and store.current_number(project) == 2


def test_deactivate_stops_the_units_it_names_and_says_what_failed(project, monkeypatch):
    monkeypatch.setattr(switchover.units, "control", lambda verb, unit: f"{verb} {unit}: denied" if unit == "b" else None)
    got = switchover.deactivate(calls.Deactivate(root=project, token="t1", units=["a", "b"]))
    assert got == {"ok": False, "errors": ["stop b: denied"]} and store.current_number(project) is None


def test_activating_a_release_that_is_not_there_is_refused(project):
    with pytest.raises(wire.Refused) as refused:
        switchover.activate(activation(project, number=7))
    assert refused.value.code == "missing" and "releases/v7 does not exist" in refused.value.detail


# --- carry and resume: the worker's transaction, and finishing one whose worker died ---------------------

@pytest.fixture
def brought_up(project, recorded, monkeypatch):
    """bring_up's calls (number, restoring); v3 fails unless told, v2 comes back."""
    seen = []

    def bring_up(a, number, restoring=False):
        assert a.token == "t1" and a.number == 3   # the activation's own call
        seen.append((number, restoring))
        ok = number == 2 or seen.ok3
        return {"number": number, "ok": ok, "unit_errors": [] if ok else [f"v{number} broke"]}

    seen = type("Seen", (list,), {"ok3": False})()
    monkeypatch.setattr(switchover, "bring_up", bring_up)
    return seen


def test_a_worker_brings_the_release_up_and_records_it_live(project, brought_up):
    brought_up.ok3 = True
    switchover.carry(activation(project, record=RECORD))
    j = journal.read(project)
    assert brought_up == [(3, False)] and j["outcome"] == "live" and j["result"]["ok"] and j["phase"] == "done"
    with open(os.path.join(lock.path(project), f"worker-{os.getpid()}.json")) as f:
        assert json.load(f)["what"] == "activate"   # the worker is marked in the lock as activating


def test_a_worker_whose_release_fails_puts_the_last_one_back_saying_why(project, brought_up):
    switchover.carry(activation(project, record=RECORD))
    j = journal.read(project)
    assert brought_up == [(3, False), (2, True)] and j["outcome"] == "restored"
    assert j["reason"] == "v3 is not healthy:\n    v3 broke" and j["restore"]["ok"]


@pytest.mark.parametrize("phase", ["flip", "done"])
def test_a_worker_that_finds_its_activation_already_under_way_or_settled_does_nothing(project, brought_up, phase):
    journal_of(project, phase=phase)
    switchover.carry(activation(project, record=RECORD))
    assert brought_up == [] and journal.read(project)["phase"] == phase


def test_a_worker_whose_journal_is_another_operations_does_nothing(project, brought_up):
    switchover.carry(activation(project, token="t2"))
    assert brought_up == [] and journal.read(project)["phase"] == "starting"


def test_resuming_an_activation_cut_short_takes_the_way_back_saying_where_it_stopped(project, brought_up):
    journal_of(project, phase="health")
    switchover.resume(project, "t1")
    j = journal.read(project)
    assert brought_up == [(2, True)] and j["outcome"] == "restored" and j["phase"] == "done"
    assert j["reason"] == "the activation of v3 stopped at health (its process was killed)"
    assert j["result"] == {"number": 3, "ok": False}


def test_resuming_an_activation_that_had_its_outcome_only_records_it(project, brought_up, recorded):
    journal_of(project, phase="record", outcome="live", result={"ok": True})
    switchover.resume(project, "t1")
    assert brought_up == [] and journal.read(project)["phase"] == "done" and len(recorded) == 1


def test_resuming_a_finished_activation_changes_nothing(project, brought_up, recorded):
    journal_of(project, phase="done", outcome="live")
    switchover.resume(project, "t1")
    assert brought_up == [] and recorded == [] and "finished" not in journal.read(project)


# --- verify: a unit passes only with processes, all of the release, active and not crashed ---------------

@pytest.fixture
def v3_process(tmp_path, monkeypatch):
    """A real process whose working directory is release v3 (its files judged to be v3's)."""
    rel = os.path.join(os.path.realpath(tmp_path), "releases", "v3")
    os.makedirs(rel)
    p = subprocess.Popen(["sleep", "60"], cwd=rel, stdin=subprocess.DEVNULL)
    monkeypatch.setattr(switchover.units, "releases_used", lambda pid, d: {3})
    yield rel, p
    p.kill()
    p.wait()


CGROUP = "/system.slice/demo-web.service"


def systemd_says(monkeypatch, pids, state="active", restarts=0, up=None):
    """The unit's state, crash count and time up; its cgroup (/system.slice/<unit>) holds pids."""
    monkeypatch.setattr(switchover.units, "pids_of_cgroup", lambda cgroup: pids if cgroup == CGROUP else [])
    monkeypatch.setattr(switchover.units, "states", lambda names: {
        u: {"state": state, "restarts": restarts, "cgroup": f"/system.slice/{u}", "up": up} for u in names})


def verify_once(rel, **kw):
    """verify's verdict at a deadline already passed: one round, no waiting."""
    return switchover.verify(["demo-web.service"], rel, time.monotonic() - 1, **kw)


def test_verify_passes_a_unit_whose_processes_are_all_of_the_release(v3_process, monkeypatch):
    rel, p = v3_process
    systemd_says(monkeypatch, [p.pid, 2 ** 22 + 1])   # the second is gone meanwhile: not judged
    assert verify_once(rel) == (True, {"demo-web.service": {"pids": 2, "stale": [], "active": "active",
                                                            "restarts": 0}})


@pytest.mark.parametrize("pids", [[], None])
def test_verify_refuses_a_unit_with_no_process(v3_process, monkeypatch, pids):
    rel, _ = v3_process
    systemd_says(monkeypatch, pids)
    ok, report = verify_once(rel)
    assert not ok and report["demo-web.service"]["pids"] == 0


def test_verify_refuses_a_unit_that_crashed_since_its_restart(v3_process, monkeypatch):
    rel, p = v3_process
    systemd_says(monkeypatch, [p.pid], restarts=3)
    ok, report = verify_once(rel, restarts_before={"demo-web.service": 1})
    assert not ok and report["demo-web.service"]["restarts"] == 2
    assert verify_once(rel, restarts_before={"demo-web.service": 3})[0]


def test_verify_counts_every_restart_as_a_crash_when_told_of_none_before(v3_process, monkeypatch):
    rel, p = v3_process
    systemd_says(monkeypatch, [p.pid], restarts=1)
    ok, report = verify_once(rel)
    assert not ok and report["demo-web.service"]["restarts"] == 1


@pytest.mark.parametrize("up, ok", [(None, True), (switchover.SETTLE, True), (switchover.SETTLE / 2, False)])
def test_a_unit_to_let_settle_passes_once_up_long_enough_or_when_systemd_cannot_say(v3_process, monkeypatch, up, ok):
    rel, p = v3_process
    systemd_says(monkeypatch, [p.pid], up=up)
    assert verify_once(rel, settle_units=["demo-web.service"])[0] is ok


# --- activate and follow, whole: the worker detached for real, its outcome answered -------------------------

def test_an_activation_is_carried_by_a_detached_worker_and_answered_with_its_outcome(project, brought_up, monkeypatch):
    brought_up.ok3 = True
    a = activation(project, record=RECORD)
    marks, detach = [], switchover.detach

    def detach_seen(root, work):   # the call is marked as activating until its worker is marked in its place
        with open(os.path.join(lock.path(root), f"worker-{os.getpid()}.json")) as f:
            marks.append(json.load(f)["what"])
        return detach(root, work)

    monkeypatch.setattr(switchover, "detach", detach_seen)
    caller = in_a_caller(lambda: {"got": switchover.activate(a), "marks": marks})
    assert "returned" in caller, f"the activate call did not answer: {caller}"
    got = caller["returned"]["got"]
    assert caller["returned"]["marks"] == ["activate"]
    assert got == {"outcome": "live", "ok": True, "number": 3, "back": 2, "result": {"number": 3, "ok": True,
                   "unit_errors": []}, "restore": None, "recorded": "recorded", "reason": None}
    j = journal.read(project)
    assert j["call"] == asdict(a) and j["token"] == "t1" and j["back"] == 2 and j["started"] <= j["finished"]
    assert j["worker"]["pid"] not in (os.getpid(), caller["pid"]) and j["phase"] == "done"
    assert not os.path.exists(os.path.join(lock.path(project), f"worker-{caller['pid']}.json"))


def test_a_follower_that_finds_the_worker_dead_takes_the_way_back_itself(project, brought_up):
    journal_of(project, phase="health", worker={"pid": 2 ** 22 + 1, "start": "1"})
    got = switchover.follow(project, "t1")
    assert brought_up == [(2, True)] and got["outcome"] == "restored" and not got["ok"]
    assert got["reason"] == "the activation of v3 stopped at health (its process was killed)"


def test_a_follower_leaves_a_live_worker_to_its_work(root, monkeypatch):
    journal_of(root, phase="health", worker={"pid": os.getpid(), "start": lock.start_time(os.getpid())})
    monkeypatch.setattr(switchover, "resume", lambda root, token: pytest.fail("a live worker was taken for dead"))
    assert switchover.follow(root, "t1", deadline=0)["running"]


def test_a_follower_that_loses_sight_of_the_journal_waits_for_it_relaying_each_step_once(root, monkeypatch, capsys):
    journal_of(root, phase="flip", steps=[["flip", 0.01, True]])
    j = journal.read(root)
    states = iter([None, j, {**j, "phase": "health"}, {**j, "phase": "health"},
                   {**j, "phase": "done", "outcome": "live", "steps": [["flip", 0.01, True], ["health", 2.0, True]]}])
    monkeypatch.setattr(journal, "of", lambda root, token: next(states))
    monkeypatch.setattr(switchover, "FOLLOW_POLL", 0)
    assert switchover.follow(root, "t1")["ok"]
    assert capsys.readouterr().out.splitlines() == ["@@step flip 0.010 ok", "@@start health", "@@step health 2.000 ok"]


@pytest.mark.parametrize("spec", [{"states": {"3": "live"}}, {"meta": {"m": 1}}])
def test_a_record_spec_may_leave_out_what_it_does_not_change(project, recorded, spec):
    switchover.record_outcome(activation(project, record={"ok": spec, "failed": None}), "live", None)
    assert [{k: r[k] for k in ("states", "meta", "log", "remove", "units")} for r in recorded] == [
        {"states": {}, "meta": {}, "log": None, "remove": [], "units": [], **spec}]


def test_a_way_back_that_fails_is_left_for_a_person(project, brought_up, recorded, monkeypatch):
    monkeypatch.setattr(switchover, "bring_up", lambda a, number, restoring=False: {"number": number, "ok": False})
    switchover.take_way_back(activation(project, record=RECORD), "why")
    j = journal.read(project)
    assert j["outcome"] == "restore-failed" and j["restore"] == {"number": 2, "ok": False} and recorded == []


def test_resuming_a_way_back_cut_short_keeps_the_result_it_had_and_marks_itself_activating(project, brought_up):
    result = {"number": 3, "ok": False, "unit_errors": ["restart demo-web.service: failed"]}
    journal_of(project, phase="restore", result=result)
    switchover.resume(project, "t1")
    assert journal.read(project)["result"] == result and brought_up == [(2, True)]
    with open(os.path.join(lock.path(project), f"worker-{os.getpid()}.json")) as f:
        assert json.load(f)["what"] == "activate"


def test_resuming_an_outcome_not_yet_recorded_keeps_what_was_put_back_and_why(project, brought_up, recorded):
    journal_of(project, phase="record", outcome="restored", restore={"number": 2, "ok": True}, reason="v3 broke")
    switchover.resume(project, "t1")
    j = journal.read(project)
    assert j["restore"] == {"number": 2, "ok": True} and j["reason"] == "v3 broke" and j["phase"] == "done"
    assert recorded[0]["log"]["reason"] == "v3 broke" and recorded[0]["log"]["restored"] == "v2"


def test_verify_names_every_other_release_whose_files_a_process_runs(v3_process, monkeypatch):
    rel, p = v3_process
    systemd_says(monkeypatch, [p.pid])
    monkeypatch.setattr(switchover.units, "releases_used", lambda pid, d: {3, 2, 1})
    ok, report = verify_once(rel)
    assert not ok and report["demo-web.service"]["stale"] == [[p.pid, "files of v1, v2"]]


def test_verify_judges_every_process_after_one_that_is_gone(v3_process, monkeypatch):
    rel, _ = v3_process
    systemd_says(monkeypatch, [2 ** 22 + 1, os.getpid()])   # gone, then this test's own process: not in the release
    ok, report = verify_once(rel)
    assert not ok and report["demo-web.service"]["stale"] == [[os.getpid(), os.path.realpath(os.getcwd())]]
