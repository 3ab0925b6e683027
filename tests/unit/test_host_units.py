"""hostprog/units.states: several units' facts from one `systemctl show`, in the order asked, and one
call per unit when systemd's answer cannot be matched to the names (activate.py asks it often)."""

from __future__ import annotations

import subprocess
import time

from ayna_fab.hostprog import switchover as activate, units


def fake_systemctl(monkeypatch, stdout):
    seen = []

    def run(argv, **kw):
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout, "")

    monkeypatch.setattr(units.subprocess, "run", run)
    return seen


def test_one_show_answers_for_every_unit_in_order(monkeypatch):
    seen = fake_systemctl(monkeypatch, "NRestarts=2\nControlGroup=/system.slice/p-web.service\nActiveState=active\n\n"
                                       "NRestarts=0\nControlGroup=\nActiveState=inactive\n")
    facts = units.states(["p-web.service", "p-celery.service"])
    assert len(seen) == 1 and seen[0][:3] == ["systemctl", "show", "-p"]
    assert set(seen[0][3].split(",")) >= {"ActiveState", "NRestarts", "ControlGroup", "ActiveEnterTimestampMonotonic"}
    assert seen[0][-2:] == ["p-web.service", "p-celery.service"]
    assert facts == {"p-web.service": {"state": "active", "restarts": 2, "cgroup": "/system.slice/p-web.service",
                                       "up": None},
                     "p-celery.service": {"state": "inactive", "restarts": 0, "cgroup": "", "up": None}}


def test_up_is_the_time_since_the_unit_became_active_on_systemds_clock(monkeypatch):
    since = int((time.clock_gettime(time.CLOCK_MONOTONIC) - 2.5) * 1e6)
    fake_systemctl(monkeypatch, f"ActiveState=active\nNRestarts=0\nControlGroup=/x\nActiveEnterTimestampMonotonic={since}\n")
    assert 2.5 <= units.states(["a.service"])["a.service"]["up"] < 3.5


def worker(monkeypatch, tmp_path, crash_after=None):
    """A unit whose one process runs from release v2, started now; with crash_after, it is seen
    auto-restarting (activating) from then on, as a worker that dies while importing its app."""
    rel = tmp_path / "releases" / "v2"
    rel.mkdir(parents=True)
    proc = subprocess.Popen(["sleep", "30"], cwd=rel)
    started = time.monotonic()
    monkeypatch.setattr(units, "pids_of_cgroup", lambda cg: [proc.pid])
    monkeypatch.setattr(units, "releases_used", lambda pid, d: {2})

    def states(names):
        up = time.monotonic() - started
        dead = crash_after is not None and up >= crash_after
        return {u: {"state": "activating" if dead else "active", "restarts": 0, "cgroup": "/x", "up": up}
                for u in names}

    monkeypatch.setattr(units, "states", states)
    return rel, proc


def test_a_unit_without_health_passes_only_once_it_has_stayed_up(monkeypatch, tmp_path):
    rel, proc = worker(monkeypatch, tmp_path)
    try:
        t = time.monotonic()
        ok, _ = activate.verify(["c.service"], str(rel), time.monotonic() + 10, settle_units=["c.service"])
        assert ok and time.monotonic() - t >= activate.SETTLE
    finally:
        proc.kill()


def test_a_worker_that_dies_within_its_first_second_fails_verify(monkeypatch, tmp_path):
    rel, proc = worker(monkeypatch, tmp_path, crash_after=0.4)
    try:
        ok, report = activate.verify(["c.service"], str(rel), time.monotonic() + 2, settle_units=["c.service"])
        assert not ok and report["c.service"]["active"] == "activating"
    finally:
        proc.kill()


def test_an_answer_that_does_not_match_the_names_is_asked_again_unit_by_unit(monkeypatch):
    seen = fake_systemctl(monkeypatch, "ActiveState=active\nNRestarts=1\nControlGroup=/x\n")
    facts = units.states(["a.service", "b.service"])
    assert len(seen) == 1 + 2 * 3   # the show, then is-active, NRestarts and ControlGroup for each unit
    assert set(facts) == {"a.service", "b.service"}

