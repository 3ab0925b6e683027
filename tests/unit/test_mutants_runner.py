"""The runner's parts that its operation tests pass through without asserting: the exact progress
lines, the flip batches, the reasons and the signal handling. Each test here was seen failing
with one of mutmut's one-line bugs in ops/runner.py (docs/mutation-report.md)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import SimpleNamespace

import pytest

from ayna_fab.errors import NeedsAttention, OperationFailed, UsageError
from ayna_fab.ops import runner
from ayna_fab.remote.transport import Command, Result
from tests.polling import wait_until

S = runner.RunState


# --- progress lines ------------------------------------------------------------------------------

def test_a_step_line_is_the_host_the_step_padded_to_13_and_its_seconds():
    assert runner.step_line("h1", "install", 3.0) == "[h1] install         3.00s"
    assert runner.step_line("h1", "install", 3.0, ok=False) == "[h1] install         3.00s  FAILED"
    assert runner.step_line("h1", "backup", 0.5, note="db.dump (2.0 KiB)") == \
        "[h1] backup          0.50s  db.dump (2.0 KiB)"


def test_a_running_line_shows_whole_seconds():
    assert runner.running_line("h1", "install", 12.4) == "[h1] install           12s  running"


def test_a_step_describes_its_backup_its_skip_or_its_reused_venv():
    assert runner.describe_step({"backup": "v3.dump", "bytes": 2048}) == "v3.dump (2.0 KiB)"
    assert runner.describe_step({"skipped": "no migration pending, so no dump"}) == \
        "no migration pending, so no dump"
    assert runner.describe_step({"skipped": True}) == ""
    assert runner.describe_step({"venv": "reused", "from": "v2"}) == \
        "the lock is unchanged: v2's venv, hard-linked"
    assert runner.describe_step({"venv": "new"}) == ""
    assert runner.describe_step(None) == "" and runner.describe_step({}) == ""


def test_a_reason_names_an_interrupt_an_error_or_an_exceptions_type():
    assert runner.reason(KeyboardInterrupt()) == "interrupted (Ctrl-C)"
    assert runner.reason(KeyboardInterrupt("SIGTERM")) == "interrupted (SIGTERM)"
    assert runner.reason(OperationFailed("it broke", host="h1", step="x")) == "it broke"
    assert runner.reason(ValueError("bad")) == "ValueError: bad"


# --- flip batches --------------------------------------------------------------------------------

def test_batches_are_all_n_at_a_time_or_a_percentage_rounded_up():
    hosts = ["h1", "h2", "h3", "h4", "h5"]
    assert runner.batches([], "all") == []
    assert runner.batches(hosts, "all") == [hosts]
    assert runner.batches(hosts, "2") == [["h1", "h2"], ["h3", "h4"], ["h5"]]
    assert runner.batches(hosts, "1") == [[h] for h in hosts]
    assert runner.batches(hosts, "30%") == [["h1", "h2"], ["h3", "h4"], ["h5"]]   # 1.5 -> 2
    assert runner.batches(hosts, "20%") == [[h] for h in hosts]
    assert runner.batches(hosts, "100%") == [hosts]


def test_a_batch_is_at_least_one_host_and_at_most_all():
    hosts = ["h1", "h2", "h3"]
    assert runner.batches(hosts, "0") == [[h] for h in hosts]
    assert runner.batches(hosts, "1%") == [[h] for h in hosts]
    assert runner.batches(hosts, "9") == [hosts]


# --- signals -------------------------------------------------------------------------------------

def test_sigterm_raises_an_interrupt_named_sigterm_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with runner.signals_as_interrupts():
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler) and handler is not before
        try:
            handler(signal.SIGTERM, None)
        except KeyboardInterrupt as exc:
            assert exc.args == ("SIGTERM",)
        else:
            raise AssertionError("SIGTERM did not interrupt")
    assert signal.getsignal(signal.SIGTERM) is before


def test_no_interrupts_ignores_ctrl_c_and_sigterm_then_puts_their_handlers_back():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with runner.no_interrupts():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    assert {s: signal.getsignal(s) for s in before} == before


def test_off_the_main_thread_the_signal_handlers_are_left_alone():
    """signal.signal raises off the main thread: there both are no-ops."""
    seen = []

    def off_main():
        try:
            with runner.signals_as_interrupts():
                seen.append(signal.getsignal(signal.SIGTERM))
            with runner.no_interrupts():
                seen.append(signal.getsignal(signal.SIGINT))
        except BaseException as exc:   # noqa: BLE001 (reported below)
            seen.append(exc)

    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    worker = threading.Thread(target=off_main)
    worker.start()
    worker.join()
    assert seen == list(before)


def test_a_percentage_of_a_large_fleet_is_that_share_exactly():
    hosts = list(range(200))
    assert [len(b) for b in runner.batches(hosts, "100%")] == [200]
    assert [len(b) for b in runner.batches(hosts, "50%")] == [100, 100]


# --- running an operation ------------------------------------------------------------------------

def target(name: str, *, dry_run: bool = False) -> runner.HostRun:
    """A host's run that never meets a host: its remote notes when its holder is ended."""
    remote = SimpleNamespace(interrupted=None, dry_run=dry_run, ended=0)
    remote.end_holder = lambda: setattr(remote, "ended", remote.ended + 1)
    return runner.HostRun(None, SimpleNamespace(name=name), None, remote, {"token": "t"}, print)


class Op(runner.Operation):
    """Phases given as (name, scope, what each host does); recovery notes what it was told."""

    name = "deploy"

    def __init__(self, targets, phases, *, once=None, batches=None, live=()):
        self.targets = targets
        self.phases = [runner.Phase(name, self.doer(name, fn), scope) for name, scope, fn in phases]
        self._once, self._batches, self.live = once, batches, set(live)
        self.events: list[str] = []

    def doer(self, name, fn):
        def run(op, t=None):
            op.events.append(f"{name} {t.name if t else 'fleet'}")
            if fn:
                fn(t)
        return run

    def once_targets(self):
        return self._once or []

    def batches(self):
        return self._batches or [self.targets]

    def stays_live(self, t):
        return t.name in self.live

    def finish(self, t):
        self.events.append(f"finish {t.name}")

    def recover(self, t, cause, phase):
        self.events.append(f"recover {t.name} at {phase}: {runner.reason(cause)}")
        return OperationFailed(f"put back after {runner.reason(cause)}", host=t.name, step=phase)


def fails(t):
    raise ValueError(f"{t.name} broke")


def test_a_lone_run_says_nothing_of_its_plan_and_ends_every_holder():
    said, t = [], target("h1")
    op = Op([t], [("prepare", runner.EACH, None), ("migrate", runner.ONCE, None),
                  ("activate", runner.BATCHES, None)], once=[t])
    runner.run(op, said.append)
    assert said == [] and op.events == ["prepare h1", "migrate h1", "activate h1"] and t.remote.ended == 1


def test_a_fleet_names_its_once_and_batch_phases_and_only_those():
    said, ts = [], [target("h1"), target("h2"), target("h3")]
    op = Op(ts, [("prepare", runner.EACH, None), ("migrate", runner.ONCE, None),
                 ("activate", runner.BATCHES, None)], once=[ts[0]], batches=[ts[:2], ts[2:]])
    runner.run(op, said.append)
    assert said == ["fleet: migrate (once): h1", "fleet: batch 1: h1, h2", "fleet: batch 2: h3"]
    assert [t.remote.ended for t in ts] == [1, 1, 1]


def test_a_fleet_migrating_on_each_database_says_so():
    said, ts = [], [target("h1"), target("h2")]
    runner.run(Op(ts, [("migrate", runner.ONCE, None)], once=ts), said.append)
    assert said == ["fleet: migrate (each database): h1, h2"]


def test_a_fleet_in_one_batch_names_it_batch_1():
    said, ts = [], [target("h1"), target("h2")]
    runner.run(Op(ts, [("activate", runner.BATCHES, None)]), said.append)
    assert said == ["fleet: batch 1: h1, h2"]


def test_a_dry_run_shows_every_phase_by_the_operations_name():
    said, t = [], target("h1", dry_run=True)
    op = Op([t], [("lock + plan", runner.EACH, None), ("choose number", runner.FLEET, None),
                  ("migrate", runner.ONCE, None), ("activate", runner.BATCHES, None)])
    runner.run(op, said.append)
    assert said == ["deploy: lock + plan: h1", "deploy: choose number: on the laptop", "deploy: activate: h1"]
    assert op.events == ["lock + plan h1", "choose number fleet", "activate h1"]   # no once target: no migrate


def test_a_dry_run_that_fails_raises_the_hosts_own_error_and_recovers_nothing():
    t = target("h1", dry_run=True)
    op = Op([t], [("prepare", runner.EACH, fails), ("activate", runner.EACH, None)])
    with pytest.raises(ValueError, match="h1 broke"):
        runner.run(op, lambda line: None)
    assert op.events == ["prepare h1"] and t.remote.ended == 1


def test_a_run_of_some_dry_hosts_is_not_a_dry_run():
    said, ts = [], [target("h1", dry_run=True), target("h2")]
    op = Op(ts, [("prepare", runner.EACH, fails)])
    with pytest.raises(OperationFailed) as err:
        runner.run(op, said.append)
    assert said == [] and "recover h1 at prepare: ValueError: h1 broke" in op.events
    assert isinstance(err.value.__cause__, ValueError)


def test_a_lone_failure_is_recovered_at_its_phase_and_the_error_caused_by_it():
    t = target("h1")
    op = Op([t], [("prepare", runner.EACH, fails), ("activate", runner.EACH, None)])
    with pytest.raises(OperationFailed, match="put back after ValueError: h1 broke") as err:
        runner.run(op, lambda line: None)
    assert op.events == ["prepare h1", "recover h1 at prepare: ValueError: h1 broke"]
    assert str(err.value.__cause__) == "h1 broke" and t.remote.ended == 1


def test_a_failure_outside_any_phase_is_recovered_at_start():
    t = target("h1")

    class Broken(Op):
        def once_targets(self):
            raise ValueError("no plan")

    op = Broken([t], [("migrate", runner.ONCE, None)])
    with pytest.raises(OperationFailed):
        runner.run(op, lambda line: None)
    assert op.events == ["recover h1 at start: ValueError: no plan"]


def test_an_interrupt_seen_between_phases_stops_before_the_next_and_is_cleared_for_recovery():
    t = target("h1")
    seen = []

    def interrupted(t):
        t.remote.interrupted = "Ctrl-C"

    class Noting(Op):
        def recover(self, t, cause, phase):
            seen.append(t.remote.interrupted)
            return super().recover(t, cause, phase)

    op = Noting([t], [("prepare", runner.EACH, interrupted), ("activate", runner.EACH, None)])
    with pytest.raises(OperationFailed, match=r"interrupted \(Ctrl-C\)"):
        runner.run(op, lambda line: None)
    assert op.events == ["prepare h1", "recover h1 at start: interrupted (Ctrl-C)"] and seen == [None]


def test_an_interrupt_after_the_last_phase_comes_too_late():
    t = target("h1")
    op = Op([t], [("prepare", runner.EACH, None),
                  ("record", runner.EACH, lambda t: setattr(t.remote, "interrupted", "Ctrl-C"))])
    runner.run(op, lambda line: None)
    assert op.events == ["prepare h1", "record h1"]


def test_an_interrupt_once_every_host_has_recorded_comes_too_late():
    t = target("h1")

    def recorded_then_interrupted(t):
        for s in (S.LOCK_ASKED, S.LOCKED, S.ACTIVATING, S.RECORDED_LIVE):
            t.move(s)
        t.remote.interrupted = "Ctrl-C"

    op = Op([t], [("activate", runner.EACH, recorded_then_interrupted), ("record", runner.EACH, None)])
    runner.run(op, lambda line: None)
    assert op.events == ["activate h1", "record h1"]


# --- one host's run: its steps as they end, its calls -------------------------------------------

class Progress:
    """Notes every event a live progress view is handed."""

    def __init__(self):
        self.events = []

    def __getattr__(self, kind):
        return lambda *args: self.events.append((kind, *args))


class Remote:
    """Answers every call with the lines given, streaming them to on_line (or not), and notes how
    it was asked."""

    def __init__(self, *lines, stream=True, dry_run=False):
        self.lines, self.stream, self.dry_run = list(lines), stream, dry_run
        self.interrupted = None
        self.asked = []

    def run(self, command, *, check=True, timeout=600, stdin=None, on_line=None):
        self.asked.append({"command": command, "check": check, "timeout": timeout, "stdin": stdin,
                           "streamed": on_line is not None})
        if self.stream and on_line:
            for line in self.lines:
                on_line(line)
        return Result(0, "\n".join(self.lines), "")


def host_run(remote, *, progress=None):
    said = []
    t = runner.HostRun(None, SimpleNamespace(name="h1"), None, remote, {"token": "t"}, said.append,
                       progress=progress)
    return t, said


def test_a_step_shown_is_kept_rounded_and_its_first_failure_noted():
    t, said = host_run(Remote())
    t.show("install", 1.23456)
    t.show("check", 0.5, ok=False)
    t.show("collectstatic", 0.25, ok=False, note="why")
    assert t.steps == {"install": 1.235, "check": 0.5, "collectstatic": 0.25}
    assert t.failed_step == "check"
    assert said == [runner.step_line("h1", "install", 1.23456),
                    "[h1] check           0.50s  FAILED",
                    "[h1] collectstatic   0.25s  FAILED  why"]


def test_with_a_progress_view_steps_go_to_it_and_nothing_is_said():
    progress = Progress()
    t, said = host_run(Remote(), progress=progress)
    t.begin("build")
    t.show("install", 1.5)
    t.show("check", 0.5, ok=False, note="why")
    assert progress.events == [("begin", "h1", "build"), ("step", "h1", "install", 1.5, True, ""),
                               ("step", "h1", "check", 0.5, False, "why")]
    assert said == [] and t.failed_step == "check"


def test_without_a_progress_view_a_step_begun_says_nothing():
    t, said = host_run(Remote())
    t.begin("build")
    assert said == []


def test_lines_heard_become_steps_begun_ended_and_text():
    lines = ['@@start install', '@@step install 1.5 ok', 'a line for people',
             '@@step backup 0.5 failed {"backup": "v3.dump", "bytes": 2048}', '@@result {}', '']
    progress = Progress()
    t, said = host_run(Remote(), progress=progress)
    for line in lines:
        t.hear(line)
    assert progress.events == [("begin", "h1", "install"), ("step", "h1", "install", 1.5, True, ""),
                               ("text", "h1", "a line for people"),
                               ("step", "h1", "backup", 0.5, False, "v3.dump (2.0 KiB)")]
    assert said == []
    t, said = host_run(Remote())
    for line in lines:
        t.hear(line)
    assert said == [runner.step_line("h1", "install", 1.5), "[h1] a line for people",
                    runner.step_line("h1", "backup", 0.5, ok=False, note="v3.dump (2.0 KiB)")]


STEPS = ['@@step install 1.5 ok', '@@step backup 0.5 ok {"backup": "v3.dump", "bytes": 2048}',
         '@@result {"ok": true}']


def test_a_call_shows_each_step_once_whether_streamed_or_not():
    lines = ['@@step install 1.5 ok', '@@step backup 0.5 failed {"backup": "v3.dump", "bytes": 2048}',
             '@@result {"ok": true}']
    for stream in (True, False):
        remote = Remote(*lines, stream=stream)
        t, said = host_run(remote)
        command = Command("x", "prepare")
        assert t.call(command, timeout=30, stdin="in") == {"ok": True}
        assert said == [runner.step_line("h1", "install", 1.5),
                        runner.step_line("h1", "backup", 0.5, ok=False, note="v3.dump (2.0 KiB)")], stream
        assert t.steps == {"install": 1.5, "backup": 0.5} and t.failed_step == "backup"
        asked = remote.asked[0]
        assert asked["command"] is command
        assert (asked["check"], asked["timeout"], asked["stdin"], asked["streamed"]) == (False, 30, "in", True)


def test_a_call_waits_ten_minutes_by_default():
    remote = Remote(*STEPS)
    t, _ = host_run(remote)
    t.call(Command("x", "prepare"))
    assert remote.asked[0]["timeout"] == 600 and remote.asked[0]["stdin"] is None


def test_a_call_told_not_to_show_steps_shows_none():
    remote = Remote(*STEPS)
    t, said = host_run(remote)
    assert t.call(Command("x", "prepare"), show_steps=False) == {"ok": True}
    assert said == [] and t.steps == {} and remote.asked[0]["streamed"] is False


def test_a_call_leaves_the_progress_view_idle():
    progress = Progress()
    t, _ = host_run(Remote(*STEPS, stream=False), progress=progress)
    t.call(Command("x", "prepare"))
    assert progress.events[0] == ("idle", "h1")   # then the steps that did not stream


def test_a_dry_run_answers_a_change_with_none_and_a_read_with_its_answer():
    t, _ = host_run(Remote(*STEPS, dry_run=True))
    assert t.call(Command("x", "prepare")) is None
    assert t.call(Command("x", "plan", changes=False)) == {"ok": True}
    t, _ = host_run(Remote(*STEPS))
    assert t.call(Command("x", "plan", changes=False)) == {"ok": True}


def test_a_call_with_no_answer_fails_naming_host_and_step():
    t, _ = host_run(Remote("it crashed"))
    with pytest.raises(OperationFailed, match="no answer") as err:
        t.call(Command("x", "prepare"))
    assert (err.value.host, err.value.step) == ("h1", "prepare")


def test_a_refusal_comes_back_as_an_answer():
    t, _ = host_run(Remote('@@result {"error": "held", "detail": "no"}'))
    assert t.call(Command("x", "plan")) == {"error": "held", "detail": "no"}
    assert t.state is S.NEW


def test_a_lost_lock_stops_the_run_naming_who_holds_it_now():
    holder = {"by": "ana", "from": "lap", "pid": 7, "at": "noon"}
    t, _ = host_run(Remote('@@result ' + json.dumps({"error": "lock-lost", "detail": "gone", "holder": holder})))
    for s in (S.LOCK_ASKED, S.LOCKED):
        t.move(s)
    with pytest.raises(NeedsAttention) as err:
        t.call(Command("x", "prepare"))
    assert err.value.message == "gone; held now by ana@lap (pid 7) since noon"
    assert (err.value.host, err.value.step, err.value.hint) == ("h1", "prepare", "fab -H h1 status")
    assert t.state is S.LOCK_LOST


def test_a_lock_lost_to_no_one_says_only_that():
    t, _ = host_run(Remote('@@result ' + json.dumps({"error": "lock-lost", "detail": "gone"})))
    for s in (S.LOCK_ASKED, S.LOCKED):
        t.move(s)
    with pytest.raises(NeedsAttention) as err:
        t.call(Command("x", "prepare"))
    assert err.value.message == "gone" and t.state is S.LOCK_LOST


def test_an_interrupt_seen_earlier_stops_the_next_call_before_it_is_sent():
    remote = Remote(*STEPS)
    t, _ = host_run(remote)
    remote.interrupted = "SIGTERM"
    with pytest.raises(KeyboardInterrupt) as err:
        t.call(Command("x", "prepare"))
    assert err.value.args == ("SIGTERM",) and remote.asked == []


def test_a_move_records_the_state_it_left():
    t, _ = host_run(Remote())
    t.move(S.LOCK_ASKED)
    t.move(S.LOCKED)
    assert t.state is S.LOCKED and t.walked == [S.NEW, S.LOCK_ASKED]
    with pytest.raises(runner.BadTransition) as err:
        t.move(S.RECORDED_LIVE)
    assert str(err.value) == ("[h1] a host's run cannot go from locked to recorded live "
                              "(it went new -> lock asked -> locked)")


# --- recovery ------------------------------------------------------------------------------------

class Recovering(Op):
    """recover answers per host: an error to report (the default), None, or an exception raised."""

    def __init__(self, targets, *, answers=None, live=()):
        super().__init__(targets, [], live=live)
        self.answers = answers or {}
        self.causes = {}

    def recover(self, t, cause, phase):
        self.events.append(f"recover {t.name} at {phase}")
        self.causes[t.name] = cause
        answer = self.answers.get(t.name, "error")
        if isinstance(answer, BaseException):
            raise answer
        return None if answer is None else OperationFailed(f"{t.name} put back", host=t.name, step=phase)


def fleet(*names, plan=None, before=None):
    ts = [target(n) for n in names]
    for t in ts:
        t.plan = (plan or {}).get(t.name, {"releases": []})
        t.live_before = SimpleNamespace(name=before[t.name]) if before and t.name in before else None
    return ts


def walk(t, *states):
    for s in states:
        t.move(s)


HINT = "fix the failing host and try again; fab status shows every host"


def test_a_fleet_failure_recovers_every_host_and_says_what_each_serves():
    ts = fleet("h1", "h2", "h3", plan={"h3": {}}, before={"h1": "v2"})
    op = Recovering(ts)
    err = runner.recover_all(op, "prepare", {"h1": ValueError("disk full")})
    assert type(err) is OperationFailed and (err.step, err.hint) == ("prepare", HINT)
    assert err.message == ("fleet deploy stopped at prepare: h1 failed: ValueError: disk full\n"
                           "    h1: serving v2\n"
                           "    h2: serving nothing (no earlier release)\n"
                           "    h3: serving what it served (not changed)")
    assert sorted(op.events) == ["recover h1 at prepare", "recover h2 at prepare", "recover h3 at prepare"]
    assert str(op.causes["h1"]) == "disk full"
    h2 = op.causes["h2"]   # a host that did not fail is told why it stops
    assert (type(h2), h2.message, h2.host, h2.step) == (
        OperationFailed, "not flipped: h1 failed at prepare", "h2", "prepare")


def test_a_host_that_recorded_is_left_alone_and_one_kept_live_is_finished():
    ts = fleet("h1", "h2", "h3", before={"h3": "v2"})
    for t in ts:
        t.number = 3
    walk(ts[0], S.LOCK_ASKED, S.LOCKED, S.ACTIVATING, S.RECORDED_LIVE)
    op = Recovering(ts, live=("h1", "h2"))
    err = runner.recover_all(op, "activate", {"h3": ValueError("unhealthy")})
    assert op.events == ["finish h2", "recover h3 at activate"]
    assert err.message.splitlines()[1:] == ["    h1: serving v3 (kept: on_failure = stop)",
                                            "    h2: serving v3 (kept: on_failure = stop)",
                                            "    h3: serving v2"]


def test_a_failed_host_kept_live_by_its_fleet_is_still_recovered():
    ts = fleet("h1", "h2", before={"h1": "v2", "h2": "v2"})
    op = Recovering(ts, live=("h1",))
    err = runner.recover_all(op, "activate", {"h1": ValueError("unhealthy")})
    assert sorted(op.events) == ["recover h1 at activate", "recover h2 at activate"]
    assert err.message.splitlines()[1:] == ["    h1: serving v2", "    h2: serving v2"]


def test_putting_a_host_back_that_fails_needs_attention():
    ts = fleet("h1", "h2", before={"h1": "v2", "h2": "v2"})
    op = Recovering(ts, answers={"h2": ValueError("ssh dropped")})
    err = runner.recover_all(op, "activate", {"h1": ValueError("unhealthy")})
    assert type(err) is NeedsAttention and (err.step, err.hint) == ("activate", HINT)
    assert err.message.splitlines()[1:] == [
        "    h1: serving v2", "    h2: NEEDS ATTENTION: putting the host back failed: ValueError: ssh dropped"]


def test_a_lone_host_that_cannot_be_put_back_needs_attention_naming_where():
    op = Recovering(fleet("h1"), answers={"h1": ValueError("ssh dropped")})
    err = runner.recover_all(op, "activate", {"h1": ValueError("unhealthy")})
    assert type(err) is NeedsAttention
    assert (err.message, err.host, err.step, err.hint) == (
        "putting the host back failed: ValueError: ssh dropped", "h1", "restore", "fab -H h1 status")


def test_a_recovery_that_needs_attention_is_reported_as_it_is():
    told = NeedsAttention("lock lost", host="h1", step="x")
    op = Recovering(fleet("h1"), answers={"h1": told})
    assert runner.recover_all(op, "activate", {"h1": ValueError("unhealthy")}) is told


def test_a_lone_host_put_back_reports_its_own_error_or_else_the_failure():
    op = Recovering(fleet("h1"))
    assert runner.recover_all(op, "prepare", {"h1": ValueError("x")}).message == "h1 put back"
    op = Recovering(fleet("h1"), answers={"h1": None})
    cause = OperationFailed("it broke", host="h1", step="check")
    assert runner.recover_all(op, "prepare", {"h1": cause}) is cause
    err = runner.recover_all(op, "prepare", {"h1": ValueError("disk full")})
    assert (type(err), err.message, err.host, err.step) == (
        OperationFailed, "ValueError: disk full", "h1", "prepare")


def test_a_fleet_refused_as_a_whole_is_a_usage_error_with_its_hint():
    refused = UsageError("the hosts disagree", step="choose number", hint="pass --to")
    ts = fleet("h1", "h2", before={"h1": "v2", "h2": "v2"})
    err = runner.recover_all(Recovering(ts), "choose number", {"h1": refused, "h2": refused})
    assert type(err) is UsageError and (err.step, err.hint) == ("choose number", "pass --to")
    assert err.message == ("fleet deploy stopped at choose number: the hosts disagree\n"
                           "    h1: serving v2\n    h2: serving v2")


def test_a_fleet_whose_every_host_refused_its_plan_is_a_usage_error():
    ts = fleet("h1", "h2")
    failures = {"h1": UsageError("no compiler"), "h2": UsageError("no compiler")}
    err = runner.recover_all(Recovering(ts), "lock + plan", failures)
    assert type(err) is UsageError and err.hint == HINT
    assert err.message.startswith("fleet deploy stopped at lock + plan: h1 failed: no compiler\n")
    err = runner.recover_all(Recovering(ts), "prepare", failures)   # refused later: the deploy failed
    assert type(err) is OperationFailed
    failures["h2"] = ValueError("x")
    assert type(runner.recover_all(Recovering(ts), "lock + plan", failures)) is OperationFailed


# --- each: hosts in parallel ---------------------------------------------------------------------

def test_a_lone_host_runs_on_the_main_thread_where_ctrl_c_lands():
    threads = []
    runner.each(runner.Phase("x", lambda op, t: threads.append(threading.current_thread())), None, [target("h1")])
    assert threads == [threading.main_thread()]


def peak_of(op, hosts: int) -> int:
    """How many of `hosts` steps ran at once under runner.each: each step waits until op.parallel
    run together (or every host has begun), so fewer workers show as a lower peak and more as a
    higher one."""
    ts = [target(f"h{i}") for i in range(hosts)]
    cond = threading.Condition()
    counts = {"running": 0, "begun": 0, "peak": 0}

    def step(op, t):
        with cond:
            counts["running"] += 1
            counts["begun"] += 1
            counts["peak"] = max(counts["peak"], counts["running"])
            cond.notify_all()
            cond.wait_for(lambda: counts["running"] >= op.parallel or counts["begun"] == hosts, timeout=30)
            counts["running"] -= 1

    assert runner.each(runner.Phase("x", step), op, ts) == {}
    assert counts["running"] == 0 and counts["begun"] == hosts
    return counts["peak"]


def test_up_to_eight_hosts_run_at_once_and_no_more():
    """The default: hosts.toml's `parallel` unset."""
    assert Op([], []).parallel == 8
    assert peak_of(Op([], []), 9) == 8


@pytest.mark.parametrize("parallel", [1, 3, 12])
def test_an_operation_runs_as_many_hosts_at_once_as_its_parallel_setting(parallel):
    op = Op([], [])
    op.parallel = parallel
    assert peak_of(op, 13) == parallel


def main_thread_waits_for_futures() -> bool:
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_code.co_filename.endswith("concurrent/futures/_base.py"):
            return True
        frame = frame.f_back
    return False


def test_ctrl_c_while_hosts_run_waits_for_their_steps_then_fails_every_host():
    """The interrupt lands on the main thread while it waits; the steps in flight still end."""
    ts = [target("h1"), target("h2")]
    interrupted, ended = threading.Event(), []

    def ctrl_c(signum, frame):
        interrupted.set()
        raise KeyboardInterrupt("Ctrl-C")

    def step(op, t):
        if t.name == "h1":   # once the main thread waits for the steps (not while it submits them)
            assert wait_until(main_thread_waits_for_futures, 30)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        interrupted.wait(30)
        ended.append(t.name)

    previous = signal.signal(signal.SIGINT, ctrl_c)
    try:
        failures = runner.each(runner.Phase("x", step), Op(ts, []), ts)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sorted(ended) == ["h1", "h2"]
    assert set(failures) == {"h1", "h2"} and all(isinstance(e, KeyboardInterrupt) for e in failures.values())


def test_parallel_failures_are_the_failed_hosts_only():
    ts = [target("h1"), target("h2"), target("h3")]
    failures = runner.each(runner.Phase("x", lambda op, t: fails(t) if t.name == "h2" else None), Op(ts, []), ts)
    assert list(failures) == ["h2"] and str(failures["h2"]) == "h2 broke"


def test_a_laptop_phase_that_fails_fails_every_host():
    ts = [target("h1"), target("h2")]
    boom = UsageError("no")

    def refuse(op):
        raise boom

    assert runner.each(runner.Phase("x", refuse, runner.FLEET), SimpleNamespace(targets=ts), []) == {
        "h1": boom, "h2": boom}
