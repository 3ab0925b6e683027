"""The blue/green handover of an activation (hostprog/switchover.py): which slot takes the new
release, the order of its steps against a host whose systemd is faked (the units' states follow
the calls made), and the units and status that go with two slots."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from ayna_fab.config import model as config
from ayna_fab.hostprog import calls, journal, lock, store, switchover, units
from ayna_fab.ops.status import units_cell
from ayna_fab.provision import unitfiles

REPO = Path(__file__).resolve().parents[2]
SLOTS = {"blue": ["p-web-blue.service", "p-celery-blue.service"],
         "green": ["p-web-green.service", "p-celery-green.service"]}
HTTP = ["p-web-blue.service", "p-web-green.service"]


# --- which slot -----------------------------------------------------------------------------------------

def running(*names, state="active"):
    return {u: state if u in names else "inactive" for s in SLOTS.values() for u in s}


def test_a_new_release_goes_to_the_idle_slot_never_the_live_one():
    live = running("p-web-blue.service", "p-celery-blue.service")
    assert switchover.choose_slot(SLOTS, live, {"blue": 2, "green": 1}, 3, 2, False) == ("green", "start")
    live = running("p-web-green.service", "p-celery-green.service")
    assert switchover.choose_slot(SLOTS, live, {"blue": 1, "green": 2}, 3, 2, False) == ("blue", "start")


def test_the_way_back_keeps_the_slot_that_still_runs_the_old_release():
    both = running(*SLOTS["blue"], *SLOTS["green"])
    assert switchover.choose_slot(SLOTS, both, {"blue": 2, "green": 3}, 2, 3, True) == ("blue", "keep")
    # the old slot partly down (its worker stopped once the new one settled): kept, the rest started
    part = running("p-web-blue.service", *SLOTS["green"])
    assert switchover.choose_slot(SLOTS, part, {"blue": 2, "green": 3}, 2, 3, True) == ("blue", "keep")
    # the old slot all stopped: started again in the idle slot it is
    gone = running(*SLOTS["green"])
    assert switchover.choose_slot(SLOTS, gone, {"blue": 2, "green": 3}, 2, 3, True) == ("blue", "start")


def test_a_fleet_putting_a_host_back_keeps_the_running_old_slot_but_an_env_push_gets_a_fresh_one():
    both = running(*SLOTS["blue"], *SLOTS["green"])
    # current names v3 (the failed one) and blue still runs v2: v2 is kept, not restarted
    assert switchover.choose_slot(SLOTS, both, {"blue": 2, "green": 3}, 2, 3, False) == ("blue", "keep")
    # an env push re-activates the live v2: new processes in the idle slot, never the live ones kept
    live = running(*SLOTS["blue"])
    assert switchover.choose_slot(SLOTS, live, {"blue": 2, "green": 1}, 2, 2, False) == ("green", "start")


def test_a_slot_still_stopping_is_kept_and_its_units_started_again(host):
    root, sd = host   # blue runs v2; an activation of v3 was cut short while blue was stopping
    store.point(root, "green", 3)
    store.flip(root, 3)
    sd.state.update({u: "active" for u in SLOTS["green"]})
    sd.state.update({u: "deactivating" for u in SLOTS["blue"]})
    assert switchover.choose_slot(SLOTS, sd.state, {"blue": 2, "green": 3}, 2, 3, True) == ("blue", "keep")
    res = switchover.bring_up(activate(root), 2, restoring=True)
    assert res["ok"] and store.current_number(root) == 2
    # a unit not active (stopping) is started again, never taken as running
    assert sorted(c for c in sd.calls if c[0] == "restart" and c[1] in SLOTS["blue"]) == [
        ("restart", "p-celery-blue.service"), ("restart", "p-web-blue.service")]


def test_with_both_slots_running_the_one_not_serving_current_is_restarted():
    both = running(*SLOTS["blue"], *SLOTS["green"])
    assert switchover.choose_slot(SLOTS, both, {"blue": 2, "green": 1}, 4, 2, False) == ("green", "restart")


def test_no_slots_means_the_old_protocol():
    assert switchover.choose_slot({}, {}, {}, 3, 2, False) == (None, None)


# --- the handover, against a faked systemd ------------------------------------------------------------

class Systemd:
    """Units whose states follow the calls; every call in order; health as the test sets it."""

    def __init__(self, monkeypatch, root, active=()):
        self.state = {u: ("active" if u in active else "inactive") for s in SLOTS.values() for u in s}
        self.state["p-beat.service"] = "active"
        self.calls = []
        self.healthy = True
        self.answers = []    # health answers, one per poll, before `healthy` takes over
        self.polls = []      # the checks of every poll
        self.started = {}    # {unit: what its start job does besides, once the systemctl call returns}
        self.root = root

        class Proc:
            returncode = 0

            def __init__(p, verb, unit):
                self.calls.append((verb, unit))
                self.state[unit] = "inactive" if verb == "stop" else "active"
                p.unit = unit

            def communicate(p):   # the systemctl call returns: what its start job brought up is there
                self.started.pop(p.unit, lambda: None)()
                return ("", None)

        monkeypatch.setattr(units, "control_async", lambda verb, unit: Proc(verb, unit))
        monkeypatch.setattr(units, "states", lambda names: {
            u: {"state": self.state[u], "restarts": 0, "cgroup": "", "up": 99.0} for u in names})
        monkeypatch.setattr(switchover.health, "poll", self.poll)
        monkeypatch.setattr(switchover, "verify", self.verify)

    def poll(self, checks, expect, deadline, fail_fast=False):
        self.calls.append(("health", expect))
        self.polls.append(checks)
        if self.answers:
            return self.answers.pop(0)
        return self.healthy, {}

    def verify(self, names, rel, deadline, restarts_before=None, settle_units=()):
        self.calls.append(("verify", tuple(names)))
        return True, {}


@pytest.fixture
def host(tmp_path, monkeypatch):
    root = str(tmp_path)
    for n in (1, 2, 3):
        os.makedirs(store.release_dir(root, n))
    store.point(root, "blue", 2)
    store.flip(root, 2)
    assert lock.take(root, {"token": "t1"}) is None
    journal.write(root, {"token": "t1", "steps": [], "phase": "starting"})
    return root, Systemd(monkeypatch, root, active=SLOTS["blue"])


def activate(root, number=3, back=2):
    return calls.Activate(root=root, token="t1", number=number, actions=[["p-beat.service", "restart"]],
                          health=[{"name": "web", "url": "http://127.0.0.1:1/"}], http_units=HTTP,
                          verify_timeout=1.0, health_timeout=1.0, back=back, restore=True, record={}, slots=SLOTS)


def test_the_new_slot_starts_and_answers_before_the_live_one_stops(host):
    root, sd = host
    res = switchover.bring_up(activate(root), 3)
    assert res["ok"], res
    assert store.pointed(root, "green") == 3 and store.current_number(root) == 3 and store.pointed(root, "blue") == 2
    starts = [c for c in sd.calls if c[0] in ("start", "restart")]
    assert sorted(starts) == [("restart", "p-beat.service"), ("start", "p-celery-green.service"),
                              ("start", "p-web-green.service")]
    health = sd.calls.index(("health", "v3"))
    assert all(sd.calls.index(s) < health for s in starts)
    # the old web once the new one answered; the old worker once the new one had settled
    assert sd.calls.index(("stop", "p-web-blue.service")) > health
    assert sd.calls.index(("stop", "p-celery-blue.service")) > sd.calls.index(("start", "p-celery-green.service"))
    # verify judges the new slot and beat, never the slot being stopped
    assert ("verify", ("p-web-green.service", "p-celery-green.service", "p-beat.service")) in sd.calls
    assert [u for u, s in sd.state.items() if s == "active"] == [*SLOTS["green"], "p-beat.service"]


def test_an_unhealthy_new_slot_leaves_the_live_one_running_for_the_way_back(host):
    root, sd = host
    sd.healthy = False
    res = switchover.bring_up(activate(root), 3)
    # the old web never stopped (the new worker had settled, so the old one was)
    assert not res["ok"] and [c[1] for c in sd.calls if c[0] == "stop"] == ["p-celery-blue.service"]
    assert sd.state["p-web-blue.service"] == "active"
    sd.calls.clear()
    sd.healthy = True
    back = switchover.bring_up(activate(root), 2, restoring=True)
    assert back["ok"] and store.current_number(root) == 2
    # the old slot is kept: its web as it runs, its worker started again; the failed slot is stopped
    assert [c for c in sd.calls if c[0] in ("start", "restart") and c[1] in SLOTS["blue"]] == [
        ("restart", "p-celery-blue.service")]
    assert sorted(c[1] for c in sd.calls if c[0] == "stop") == sorted(SLOTS["green"])


def test_the_old_worker_stops_only_once_the_new_one_has_settled(monkeypatch):
    seen = {"up": 0.2, "state": "active"}
    calls_ = []
    monkeypatch.setattr(units, "states", lambda names: {u: {"state": seen["state"], "restarts": 0, "cgroup": "",
                                                            "up": seen["up"]} for u in names})
    monkeypatch.setattr(units, "control_async", lambda verb, unit: calls_.append((verb, unit)) or unit)
    monkeypatch.setattr(switchover.time, "sleep", lambda s: seen.update(up=seen["up"] + s))
    stopping = []
    switchover.hand_over_workers(["new.service"], ["old.service"], stopping, float("inf"))
    assert calls_ == [("stop", "old.service")] and seen["up"] >= switchover.SETTLE
    # a new worker whose start job has not run yet (inactive) is waited for, not taken as failed
    calls_.clear()
    answers = iter(["inactive", "inactive", "activating", "active", "active"])
    monkeypatch.setattr(units, "states", lambda names: {u: {"state": next(answers, "active"), "restarts": 0,
                                                            "cgroup": "", "up": 5.0} for u in names})
    switchover.hand_over_workers(["new.service"], ["old.service"], [], float("inf"))
    assert calls_ == [("stop", "old.service")]
    # a new worker that failed leaves the old one working
    calls_.clear()
    monkeypatch.setattr(units, "states", lambda names: {u: {"state": "failed", "restarts": 0, "cgroup": "",
                                                            "up": None} for u in names})
    switchover.hand_over_workers(["new.service"], ["old.service"], [], float("inf"))
    assert calls_ == []


def test_an_old_worker_the_early_handover_left_running_is_stopped_once_verify_passed(host, monkeypatch):
    root, sd = host
    monkeypatch.setattr(switchover, "hand_over_workers", lambda *args: None)   # it stopped nothing
    res = switchover.bring_up(activate(root), 3)
    verified = next(i for i, c in enumerate(sd.calls) if c[0] == "verify")
    assert res["ok"] and sd.calls.index(("stop", "p-celery-blue.service")) > verified
    assert [u for u, s in sd.state.items() if s == "active"] == [*SLOTS["green"], "p-beat.service"]


def test_a_new_worker_that_fails_verify_leaves_the_old_one_working(host, monkeypatch):
    root, sd = host   # the new worker crashes under systemd: it never settles, verify sees the crash
    monkeypatch.setattr(switchover, "hand_over_workers", lambda *args: None)
    monkeypatch.setattr(switchover, "verify", lambda *args, **kw: (False, {}))
    res = switchover.bring_up(activate(root), 3)
    assert not res["ok"] and ("stop", "p-celery-blue.service") not in sd.calls
    assert sd.state["p-celery-blue.service"] == "active" and ("stop", "p-web-blue.service") in sd.calls


def test_a_slot_that_does_not_stop_fails_the_activation(host, monkeypatch):
    root, sd = host
    real = units.states

    def stuck(names):
        facts = real(names)
        for u in SLOTS["blue"]:
            if u in facts:
                facts[u]["state"] = "deactivating"
        return facts

    monkeypatch.setattr(units, "states", lambda names: stuck(names) if sd.calls else real(names))
    res = switchover.bring_up(activate(root), 3)
    assert not res["ok"] and "p-web-blue.service still runs after its stop (deactivating)" in res["unit_errors"]


# --- health asks the new slot on its own socket ---------------------------------------------------------

@pytest.fixture
def probes():
    """Slot sockets that are there (bound Unix sockets) in a short directory (Unix paths are short)."""
    d = tempfile.mkdtemp(dir="/tmp", prefix="probe")
    held = []
    paths = {slot: f"{d}/p-web-{slot}.sock" for slot in ("blue", "green")}
    for path in paths.values():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        held.append(sock)
    yield paths
    for sock in held:
        sock.close()
    shutil.rmtree(d)


def with_probes(a, paths):
    return dataclasses.replace(a, health=[{**c, "probes": paths} for c in a.health])


def test_health_asks_the_new_slot_on_its_own_socket_then_the_shared_one_once_the_old_stopped(host, probes):
    root, sd = host
    res = switchover.bring_up(with_probes(activate(root), probes), 3)
    assert res["ok"], res
    own, shared = sd.polls
    assert [c.get("unix") for c in own] == [probes["green"]] and [c.get("unix") for c in shared] == [None]
    health = [i for i, c in enumerate(sd.calls) if c == ("health", "v3")]
    assert health[0] < sd.calls.index(("stop", "p-web-blue.service")) < health[1]


def test_a_shared_socket_that_does_not_answer_the_new_release_fails_the_activation(host, probes):
    root, sd = host
    sd.answers = [(True, {}), (False, {"web": {"ok": False, "status": 200, "release": "v2", "body": "{}"}})]
    res = switchover.bring_up(with_probes(activate(root), probes), 3)
    assert not res["ok"] and any("web on its shared socket" in e and "release v2" in e for e in res["unit_errors"])


def test_a_slot_socket_its_first_start_brings_up_is_used(host, probes):
    """The first start of a slot is what starts its socket (Wants=): it is looked for once the start
    has returned, not when it was asked for."""
    root, sd = host
    os.rename(probes["green"], probes["green"] + ".later")
    sd.started["p-web-green.service"] = lambda: os.rename(probes["green"] + ".later", probes["green"])
    assert switchover.bring_up(with_probes(activate(root), probes), 3)["ok"]
    assert sd.polls[0][0]["unix"] == probes["green"]


def test_without_the_slot_socket_or_a_start_health_asks_the_shared_url(host, probes):
    root, sd = host
    missing = {slot: path + ".gone" for slot, path in probes.items()}
    assert switchover.bring_up(with_probes(activate(root), missing), 3)["ok"]
    assert [[c.get("unix") for c in checks] for checks in sd.polls] == [[None]]   # one poll, the shared URL
    checks = with_probes(activate(root), probes).health
    assert switchover.slot_checks(checks, "green", ["p-web-green.service"])[0]["unix"] == probes["green"]
    # a kept slot whose web was not started again never got its socket from systemd at this start
    assert "unix" not in switchover.slot_checks(checks, "green", ["p-celery-green.service"])[0]


# --- the units of two slots -----------------------------------------------------------------------------

@pytest.fixture
def demo():
    cfg = config.load(REPO / "hosts.toml")
    return cfg, cfg.projects["uavcrew"]


def test_each_slot_runs_its_links_release_starts_only_as_the_live_one_and_shares_the_socket(demo):
    cfg, project = demo
    rendered = unitfiles.render_all(cfg, None, project)
    for slot in ("blue", "green"):
        for service in ("web", "api", "celery"):
            text = rendered[f"uavcrew-{service}-{slot}.service"]
            assert f"WorkingDirectory=/opt/ayna/uavcrew/releases/{slot}\n" in text
            assert (f'test "$$(readlink -f /opt/ayna/uavcrew/releases/{slot})" = '
                    '"$$(readlink -f /opt/ayna/uavcrew/releases/current)"') in text
            assert "StartLimitIntervalSec=0" in text
        for service in ("web", "api"):   # the shared socket, and the slot's own (its health)
            text = rendered[f"uavcrew-{service}-{slot}.service"]
            assert f"Sockets=uavcrew-{service}.socket uavcrew-{service}-{slot}.socket\n" in text
            assert f"Wants=uavcrew-{service}-{slot}.socket\nAfter=uavcrew-{service}-{slot}.socket\n" in text
            own = rendered[f"uavcrew-{service}-{slot}.socket"]
            assert f"ListenStream=/run/ayna-fab-probe/uavcrew-{service}-{slot}.sock\n" in own
            assert "SocketUser=adonis\nSocketGroup=adonis\nSocketMode=0600\n" in own
        # gunicorn's control socket lives in a directory of the slot's own: stopping one slot
        # removes its directory, never the other's
        assert f"RuntimeDirectory=uavcrew-web-{slot}\n" in rendered[f"uavcrew-web-{slot}.service"]
    assert "Service=uavcrew-web-blue.service\n" in rendered["uavcrew-web.socket"]
    beat = rendered["uavcrew-beat.service"]
    assert "WorkingDirectory=/opt/ayna/uavcrew/releases/current\n" in beat and "ExecCondition" not in beat


def test_sudoers_and_the_activation_name_both_slots(demo):
    cfg, project = demo
    assert unitfiles.slot_units(project) == {
        "blue": ["uavcrew-web-blue.service", "uavcrew-api-blue.service", "uavcrew-celery-blue.service"],
        "green": ["uavcrew-web-green.service", "uavcrew-api-green.service", "uavcrew-celery-green.service"]}
    assert unitfiles.single_units(project) == ["uavcrew-beat.service"]
    assert len(unitfiles.unit_names(project)) == 7


def test_status_shows_each_service_once_with_the_slot_that_runs():
    states = {"p-web-blue.service": "inactive", "p-web-green.service": "active", "p-api-blue.service": "failed",
              "p-api-green.service": "inactive", "p-celery-blue.service": "active",
              "p-celery-green.service": "active", "p-beat.service": "inactive"}
    assert units_cell("p", states) == "web:active/green api:failed celery:active/blue+green beat:inactive"
    assert units_cell("my-app", {"my-app-web-blue.service": "inactive", "my-app-web-green.service": "inactive"}) \
        == "web:inactive"
