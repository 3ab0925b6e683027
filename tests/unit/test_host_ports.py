"""Who listens on a project's ports (hostprog/ports.py) and the verdict (provision/hostports.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ayna_fab.commands import hostcalls
from ayna_fab.config import model as config
from ayna_fab.errors import UsageError
from ayna_fab.hostprog import ports
from ayna_fab.ops import planchecks
from ayna_fab.config.layout import Layout
from ayna_fab.provision import hostports, setup, unitfiles

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1FD6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4101 1 0 100 0 0 10 0
   1: 00000000:1FD7 00000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 4102 1 0 100 0 0 10 0
   2: 0100007F:1FD6 0100007F:A2B4 01 00000000:00000000 00:00000000 00000000  1000        0 4103 1 0 20 4 30 10 -1
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1FDB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 4104 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:1FDC 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 4105 1 0 100 0 0 10 0
"""


def test_the_kernels_tables_give_each_listener_its_address_port_user_and_socket():
    assert ports.parse_table(TCP) == [
        {"addr": "127.0.0.1", "port": 8150, "uid": 0, "inode": "4101"},
        {"addr": "0.0.0.0", "port": 8151, "uid": 33, "inode": "4102"}]   # the connection is no listener
    assert ports.parse_table(TCP6, v6=True) == [
        {"addr": "::", "port": 8155, "uid": 1001, "inode": "4104"},
        {"addr": "::1", "port": 8156, "uid": 1001, "inode": "4105"}]


def test_systemd_says_which_ports_its_socket_units_listen_on():
    # systemd writes a unit's properties in its own order: Listen before Id
    out = ("Listen=127.0.0.1:8150 (Stream)\nId=notes-web.socket\n\n"
           "Id=notes-api.socket\nListen=[::1]:8151 (Stream)\nListen=/run/x.sock (Stream)\n\nId=gone.socket\n")
    assert ports.parse_listen(out) == {"notes-web.socket": [8150], "notes-api.socket": [8151], "gone.socket": []}


ROOT = "/opt/ayna/notes"


def listener(port, uid=0, user="root", processes=()):
    return {"addr": "127.0.0.1", "port": port, "uid": uid, "user": user, "processes": list(processes)}


def test_the_projects_own_sockets_and_processes_are_not_foreign():
    own = {"sockets": {"notes-web.socket": [8150]}, "listeners": [
        listener(8150, processes=[{"pid": 1, "name": "systemd", "cwd": "/"}]),
        listener(8155, 1001, "adonis", [{"pid": 7, "name": "gunicorn", "cwd": f"{ROOT}/releases/v3"}])]}
    assert hostports.foreign(own, ROOT) == []


def test_a_foreign_listener_is_named_by_port_and_process_or_by_its_user():
    answer = {"sockets": {"notes-web.socket": []}, "listeners": [
        listener(8150, processes=[{"pid": 812, "name": "nginx", "cwd": "/"}]),
        listener(8151, 33, "www-data"),
        listener(8155, 1001, "adonis", [{"pid": 9, "name": "python3", "cwd": "/opt/ayna/other"}])]}
    assert hostports.foreign(answer, ROOT) == [
        "port 8150 (127.0.0.1): nginx (pid 812), user root",
        "port 8151 (127.0.0.1): a process of user www-data",
        "port 8155 (127.0.0.1): python3 (pid 9), user adonis"]
    # root's listener on a port the project's socket unit does not hold is not the project's
    assert hostports.foreign({"sockets": {"notes-web.socket": [8150]}, "listeners": [listener(8151)]}, ROOT) \
        == ["port 8151 (127.0.0.1): a process of user root"]
    # a socket the project shares with another program is held by that program too
    shared = [{"pid": 7, "name": "gunicorn", "cwd": f"{ROOT}/releases/v3"}, {"pid": 8, "name": "nc", "cwd": "/tmp"}]
    assert hostports.foreign({"listeners": [listener(8155, 1001, "adonis", shared)]}, ROOT) == [
        "port 8155 (127.0.0.1): gunicorn (pid 7), nc (pid 8), user adonis"]
    # a directory that only begins like the project's is another one
    assert hostports.foreign({"listeners": [listener(8155, 1, "x", [{"pid": 2, "name": "x", "cwd": ROOT + "2/a"}])]},
                             ROOT) != []


TOML = """
[projects.notes]
source = "notes"
env = "production"
port_base = 8150
services = ["web", "api", "celery"]
{extra}
[hosts.box]
hostname = "box.example.org"
projects = ["notes"]
"""


def load(tmp_path: Path, extra: str = "") -> config.Config:
    path = tmp_path / "hosts.toml"
    path.write_text(textwrap.dedent(TOML.format(extra=extra)))
    return config.load(path)


def test_the_ports_asked_about_are_the_sockets_and_the_pre_flip_checks(tmp_path):
    project = load(tmp_path).projects["notes"]
    assert unitfiles.host_ports(project) == [8150, 8151, 8155, 8156]
    call = hostcalls.ports(project).call
    assert (call.ports, call.sockets) == ([8150, 8151, 8155, 8156], ["notes-web.socket", "notes-api.socket"])
    assert hostcalls.plan(Layout.of(load(tmp_path), project), project, None).call.ports == [8150, 8151, 8155, 8156]


class _T:
    def __init__(self, cfg, plan):
        self.name, self.project, self.host = "box", cfg.projects["notes"], cfg.hosts["box"]
        self.layout = Layout.of(cfg, self.project)
        self.plan = {"database": "sqlite", "uv_config": None, **plan}


def test_the_plan_refuses_a_foreign_listener_before_anything_is_built(tmp_path):
    cfg = load(tmp_path)
    taken = {"sockets": {}, "listeners": [listener(8156, processes=[{"pid": 5, "name": "redis", "cwd": "/"}])]}
    with pytest.raises(UsageError) as err:
        planchecks.refuse(_T(cfg, {"ports": taken}), backup_due=False)
    assert err.value.step == "plan" and "port 8156" in err.value.message and "redis (pid 5)" in err.value.message
    assert "port_base" in err.value.hint
    planchecks.refuse(_T(cfg, {"ports": {"sockets": {}, "listeners": []}}), backup_due=False)


class _Remote:
    """Answers setup's first call, and fails the test if setup goes on to change anything."""

    def __init__(self, answer):
        self.answer, self.commands = answer, []

    def run(self, command, check=True, stdin=None):
        self.commands.append(command)
        if command.step != "ports":
            raise AssertionError(f"setup went on to {command.step}")
        import json
        from types import SimpleNamespace
        return SimpleNamespace(stdout="@@result " + json.dumps(self.answer) + "\n", stderr="", exited=0, ok=True)


def test_setup_refuses_a_foreign_listener_as_its_first_step(tmp_path):
    cfg = load(tmp_path)
    s = setup.Setup(cfg, cfg.hosts["box"], cfg.projects["notes"])
    r = _Remote({"sockets": {}, "listeners": [listener(8150, 33, "www-data",
                                                       [{"pid": 4, "name": "nginx", "cwd": "/"}])]})
    with pytest.raises(UsageError) as err:
        setup.run(s, r, print)
    assert err.value.step == "ports" and "nginx (pid 4)" in err.value.message
    assert [c.step for c in r.commands] == ["ports"] and s.changes == []
