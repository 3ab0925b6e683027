"""host/units.states: several units' facts from one `systemctl show`, in the order asked, and one
call per unit when systemd's answer cannot be matched to the names (activate.py asks it often)."""

from __future__ import annotations

import subprocess

from ayna_fab.host import units


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
    assert len(seen) == 1 and seen[0][:4] == ["systemctl", "show", "-p", "ActiveState,NRestarts,ControlGroup"]
    assert seen[0][-2:] == ["p-web.service", "p-celery.service"]
    assert facts == {"p-web.service": {"state": "active", "restarts": 2, "cgroup": "/system.slice/p-web.service"},
                     "p-celery.service": {"state": "inactive", "restarts": 0, "cgroup": ""}}


def test_an_answer_that_does_not_match_the_names_is_asked_again_unit_by_unit(monkeypatch):
    seen = fake_systemctl(monkeypatch, "ActiveState=active\nNRestarts=1\nControlGroup=/x\n")
    facts = units.states(["a.service", "b.service"])
    assert len(seen) == 1 + 2 * 3   # the show, then is-active, NRestarts and ControlGroup for each unit
    assert set(facts) == {"a.service", "b.service"}
