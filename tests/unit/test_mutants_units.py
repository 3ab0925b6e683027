"""systemd units on the host (hostprog/units.py), held where a one-line bug in it went unnoticed:
what `systemctl` and `sudo` are asked and how their answers are read (a stand-in for each on
PATH), the processes of a cgroup, their memory, and the releases a process depends on."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import pytest

from ayna_fab.hostprog import units
from tests.polling import wait_until
from tests.stdin_pipe import stdin_a_pipe

# Stands in for systemctl and sudo: answers from $ANSWERS ({"argv joined": [stdout, stderr, code]}),
# and notes each call's arguments and whether its stdin is /dev/null in $CALLS.
FAKE = """#!{python}
import json, os, sys
args = " ".join(sys.argv[1:])
a, b = os.fstat(0), os.stat(os.devnull)
with open(os.environ["CALLS"], "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0]), args, (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)]) + "\\n")
out, err, code = json.load(open(os.environ["ANSWERS"])).get(args, ["", "", 0])
sys.stdout.write(out); sys.stderr.write(err)
sys.exit(code)
"""


@pytest.fixture
def host(tmp_path, monkeypatch):
    """answer(args, stdout, stderr, code) sets what the fakes say; calls() what they were asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("systemctl", "sudo"):
        (bin_dir / name).write_text(FAKE.format(python=sys.executable))
        (bin_dir / name).chmod(0o755)
    answers, calls = tmp_path / "answers.json", tmp_path / "calls"
    answers.write_text("{}")
    calls.write_text("")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("ANSWERS", str(answers))
    monkeypatch.setenv("CALLS", str(calls))

    class Host:
        def answer(self, args, stdout="", stderr="", code=0):
            said = json.loads(answers.read_text())
            said[args] = [stdout, stderr, code]
            answers.write_text(json.dumps(said))

        def calls(self):
            return [json.loads(line) for line in calls.read_text().splitlines()]

    return Host()


def test_a_unit_s_state_is_what_is_active_prints_or_else_its_complaint(host):
    host.answer("is-active p-web.service", "inactive\n", "", 3)
    host.answer("is-active p-gone.service", "", "Failed to get unit: Access denied\n", 1)
    assert units.state("p-web.service") == "inactive"
    assert units.state("p-gone.service") == "Failed to get unit: Access denied"
    assert [call[:2] for call in host.calls()] == [["systemctl", "is-active p-web.service"],
                                                   ["systemctl", "is-active p-gone.service"]]


def test_restarts_are_systemd_s_count_or_0(host):
    host.answer("show -p NRestarts --value a.service", "3\n")
    host.answer("show -p NRestarts --value b.service", "[not set]\n")
    assert (units.restarts("a.service"), units.restarts("b.service"), units.restarts("c.service")) == (3, 0, 0)


def test_a_unit_s_cgroup_and_its_processes(host, tmp_path, monkeypatch):
    host.answer("show -p ControlGroup --value a.service", "/system.slice/a.service\n")
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    (v2 / "system.slice" / "a.service").mkdir(parents=True)
    (v2 / "system.slice" / "a.service" / "cgroup.procs").write_text("12\n13\n")
    monkeypatch.setattr(units, "CGROUP_ROOTS", (str(v1), str(v2)))
    assert units.cgroup("a.service") == "/system.slice/a.service"
    assert units.pids("a.service") == [12, 13]
    assert units.pids("b.service") == []                    # no cgroup: no processes
    assert units.pids_of_cgroup("") is None and units.pids_of_cgroup("/system.slice/b.service") is None
    (v1 / "system.slice" / "a.service").mkdir(parents=True)
    (v1 / "system.slice" / "a.service" / "cgroup.procs").write_text("7\n")
    assert units.pids_of_cgroup("/system.slice/a.service") == [7]   # the first root that has it


def test_a_unit_is_controlled_through_sudo_with_nothing_on_stdin_and_its_error_said(host):
    host.answer("-n /usr/bin/systemctl stop a.service", "", "sudo: a password is required\n", 1)
    with stdin_a_pipe():
        assert units.control("restart", "b.service") is None
        assert units.control("stop", "a.service") == "stop a.service: sudo: a password is required"
        p = units.control_async("reload-or-restart", "a.service")
    assert p.wait() == 0 and p.stdout.read() == ""
    p.stdout.close()
    assert host.calls() == [["sudo", "-n /usr/bin/systemctl restart b.service", True],
                            ["sudo", "-n /usr/bin/systemctl stop a.service", True],
                            ["sudo", "-n /usr/bin/systemctl reload-or-restart a.service", True]]


def test_an_async_control_s_error_is_on_its_output(host):
    host.answer("-n /usr/bin/systemctl stop a.service", "", "Job failed\n", 1)
    p = units.control_async("stop", "a.service")
    assert p.wait() == 1 and p.stdout.read() == "Job failed\n"
    p.stdout.close()


def test_states_are_read_from_one_show_of_every_unit(host, monkeypatch):
    monkeypatch.setattr(units.time, "clock_gettime", {time.CLOCK_MONOTONIC: 1000.0}.__getitem__)   # systemd's clock, read once
    host.answer("show -p ActiveState,NRestarts,ControlGroup,ActiveEnterTimestampMonotonic -- a b c d",
                "ActiveState=active\nNRestarts=x\nControlGroup=/a=b\nActiveEnterTimestampMonotonic=997500000\n\n"
                "ActiveState=\nNRestarts=4\n\n"
                "ActiveState=failed\nActiveEnterTimestampMonotonic=0\n\n"
                "ActiveState=active\nActiveEnterTimestampMonotonic=1\n")
    assert units.states(iter(["a", "b", "c", "d"])) == {
        "a": {"state": "active", "restarts": 0, "cgroup": "/a=b", "up": 2.5},
        "b": {"state": "unknown", "restarts": 4, "cgroup": "", "up": None},       # never active: no time
        "c": {"state": "failed", "restarts": 0, "cgroup": "", "up": None},
        "d": {"state": "active", "restarts": 0, "cgroup": "", "up": 1000 - 1 / 1e6}}


def test_an_answer_of_the_wrong_shape_is_asked_again_unit_by_unit(host):
    host.answer("is-active a.service", "failed\n")
    host.answer("show -p NRestarts --value a.service", "2\n")
    host.answer("show -p ControlGroup --value a.service", "/a\n")
    assert units.states(["a.service", "b.service"]) == {
        "a.service": {"state": "failed", "restarts": 2, "cgroup": "/a", "up": None},
        "b.service": {"state": "", "restarts": 0, "cgroup": "", "up": None}}


def test_show_gives_each_known_unit_s_facts_with_the_memory_of_its_processes(host, monkeypatch):
    host.answer("show -p " + ",".join(units.PROPS) + " -- a.service b.service c.service",
                "Id=a.service\nActiveState=active\nControlGroup=/a\n\nId=\nActiveState=inactive\n\n"
                "Id=c.service\nControlGroup=/c\n")
    monkeypatch.setattr(units, "pids_of_cgroup", lambda path: [1, 2] if path == "/a" else None)
    monkeypatch.setattr(units, "pss_kib", lambda pids: 10 * len(pids))
    monkeypatch.setattr(units.time, "clock_gettime", {time.CLOCK_MONOTONIC: 1000.25}.__getitem__)
    facts = units.show(["a.service", "b.service", "c.service"])
    assert facts["units"] == [{"Id": "a.service", "ActiveState": "active", "ControlGroup": "/a", "Pss": 20 * 1024},
                              {"Id": "c.service", "ControlGroup": "/c", "Pss": None}]
    assert facts["now"] == 1_000_250_000 and isinstance(facts["now"], int)   # microseconds, as systemd's


def fake_proc(monkeypatch, files):
    """/proc/PID/... as the given texts (a missing one cannot be opened)."""
    def fake_open(path, mode="r"):
        if path not in files:
            raise FileNotFoundError(path)
        return io.BytesIO(files[path]) if "b" in mode else io.StringIO(files[path].decode())

    def fake_readlink(path):
        if path not in files:
            raise FileNotFoundError(path)
        return files[path].decode()

    monkeypatch.setattr(units, "open", fake_open, raising=False)
    monkeypatch.setattr(units.os, "readlink", fake_readlink)


def test_the_memory_of_processes_is_the_sum_of_their_pss(monkeypatch):
    fake_proc(monkeypatch, {
        "/proc/1/smaps_rollup": b"Rss: 100 kB\nPss_Anon: 30 kB\nPss: 40 kB\nPss_File: 10 kB\n",
        "/proc/3/smaps_rollup": b"Pss: many kB\n",
        "/proc/4/smaps_rollup": b"Pss: 5 kB\n"})
    assert units.pss_kib([1, 2, 3, 4]) == 45   # 2 is gone, 3 unreadable: each counts 0
    assert units.pss_kib([]) == 0


def test_the_releases_a_process_depends_on_from_its_cwd_command_line_and_mapped_files(monkeypatch):
    rels = "/srv/p/releases"
    fake_proc(monkeypatch, {
        "/proc/7/cwd": b"/srv/p/releases/v2/app",
        "/proc/7/cmdline": b"/usr/bin/python3\0\xff\0/srv/p/releases/v3/manage.py\0",   # not UTF-8 throughout
        "/proc/7/maps": (b"5600-5700 r-xp 00000000 08:01 11  /usr/bin/python3.11\n"
                         b"7f00-7f10 rw-p 00000000 00:00 0 \n"
                         b"7f10-7f20 r-xp 00000000 08:01 12  /srv/p/releases/v10/.venv/lib/a.so\n"
                         b"7f20-7f30 r-xp 00000000 08:01 13  /srv/p/releases/v11/my lib.so (deleted)\n"
                         b"7f30-7f40 r-xp 00000000 08:01 14  /srv/p/releases/vx/b.so\n"
                         b"7f40-7f50 r-xp 00000000 08:01 15  /srv/p/releases/current/c.so\n"
                         b"7f50-7f60 r-xp 00000000 08:01 16  /srv/p/releases-old/v8/d.so\n"
                         b"7f60-7f70 r-xp 00000000 08:01 17  /srv/p/releases/v\n"),
        "/proc/8/cwd": b"/", "/proc/8/cmdline": b"", "/proc/8/maps": b"",
        "/proc/9/cwd": b"/", "/proc/9/cmdline": b"x\0", "/proc/9/maps": b"5600-5700 r-xp 0 08:01 11 /usr/bin/x\n"})
    assert units.releases_used(7, rels) == {2, 3, 10, 11}
    assert units.releases_used(7, rels + "/") == {2, 3, 10, 11}
    assert units.releases_used(8, rels) is None      # between two programs: nothing mapped yet
    assert units.releases_used(6, rels) is None      # gone
    assert units.releases_used(9, rels) == set()


def test_a_real_process_is_seen_in_the_release_it_runs_in(tmp_path):
    rel = tmp_path / "releases" / "v2"
    rel.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], cwd=rel, stdin=subprocess.PIPE)
    try:
        assert wait_until(lambda: units.releases_used(proc.pid, str(tmp_path / "releases")), 20) == {2}
    finally:
        proc.stdin.close()
        proc.wait()
    assert units.releases_used(proc.pid, str(tmp_path / "releases")) is None


def test_the_releases_in_use_are_every_process_of_every_unit_by_release(monkeypatch):
    monkeypatch.setattr(units, "pids", lambda unit: {"a": [1, 2], "b": [3, 4]}[unit])
    monkeypatch.setattr(units, "releases_used", lambda pid, d: {1: {2}, 2: {2, 3}, 3: None, 4: {3}}[pid] if d == "/r" else {9})
    assert units.releases_in_use(["a", "b"], "/r") == {2: [1, 2], 3: [2, 4]}
