"""The pre-flip check's private servers, as real processes (hostprog/preflipcheck.py): started ahead of
Django's steps, probed, stopped at once, never outliving the call that started them; a server that
died having started before migrate gets one fresh start before the release is refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from ayna_fab.hostprog import prepare, preflipcheck as preflight
from tests.ports import reserved_port

# Answers STATUS (200) with release v7, unless the file named by NEEDS is missing at start; like
# gunicorn, its master forks a worker that serves on the same listening socket.
SERVER = """
import http.server, os, sys
if os.environ.get("STARTS"):
    open(os.environ["STARTS"], "a").write("started\\n")
need = os.environ.get("NEEDS")
if need and not os.path.exists(need):
    sys.exit("the database is not migrated")
manifest = os.environ.get("MANIFEST")   # read once at start, as a manifest static storage does
stale = bool(manifest) and not os.path.exists(manifest)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status": "ok", "release": "v7"}'
        self.send_response(500 if stale else int(os.environ.get("STATUS", "200"))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer.allow_reuse_address = True
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
if os.fork() == 0:
    server.serve_forever()
os.wait()
"""


def servers(n=1):
    out = []
    for i in range(n):
        port = reserved_port()
        out.append({"name": f"s{i}", "url": f"http://127.0.0.1:{port}/health",
                    "argv": [sys.executable, "-c", SERVER, str(port)]})
    return out


def gone(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_servers_started_ahead_are_probed_then_killed(tmp_path):
    s = servers(2)
    started = preflight.start(s, dict(os.environ), str(tmp_path))
    pids = [p.pid for p, _ in started.procs]
    ok, report = preflight.check(s, dict(os.environ), str(tmp_path), "v7", 20, started=started)
    assert ok and {r["release"] for r in report.values()} == {"v7"}
    assert all(gone(pid) for pid in pids) and not os.path.exists(started.runtime)
    preflight.stop(started)   # a second stop does nothing (the pids may be another's by now)


def test_a_server_that_died_before_migrate_gets_one_fresh_start(tmp_path):
    migrated = tmp_path / "migrated"
    env = dict(os.environ, NEEDS=str(migrated))
    s = servers()
    ahead = preflight.start(s, env, str(tmp_path))
    ahead.procs[0][0].wait(20)           # it died at start: no migrated database yet
    migrated.write_text("")              # ... which migrate then made
    said = []
    out = prepare._preflight(str(tmp_path), env, 7, s, 20, lambda *a, **k: said.append(a), ahead)
    assert said[0][0] == "preflight" and said[0][2] is True, said
    assert out["preflight"]["s0"]["ok"]


def test_a_server_that_fails_on_the_migrated_database_fails_the_check(tmp_path):
    env = dict(os.environ, NEEDS=str(tmp_path / "never"))
    s = servers()
    ahead = preflight.start(s, env, str(tmp_path))
    said = []
    out = prepare._preflight(str(tmp_path), env, 7, s, 20, lambda *a, **k: said.append(a), ahead)
    assert said[0][2] is False and "not migrated" in said[0][3] and not out["preflight"]["s0"]["ok"]


def test_a_server_that_answers_500_is_refused_once_and_its_port_is_free_at_once(tmp_path, monkeypatch):
    starts = tmp_path / "starts"
    env = dict(os.environ, STATUS="500", STARTS=str(starts))
    s = servers()
    ahead = preflight.start(s, env, str(tmp_path))
    said = []
    answers = []   # every probe's status: the first 5xx ends the check, it is not probed again
    probe = preflight.health.probe
    monkeypatch.setattr(preflight.health, "probe", lambda url: answers.append(probe(url)) or answers[-1])
    out = prepare._preflight(str(tmp_path), env, 7, s, 20, lambda *a, **k: said.append(a), ahead)
    assert len(said) == 1 and said[0][2] is False and out["preflight"]["s0"]["status"] == 500
    assert [status for status, _ in answers if status is not None] == [500]
    assert starts.read_text().count("started") == 1   # it was stopped, it did not die: no second start
    assert preflight._port_free(s[0]["url"]), "a worker of the stopped server still holds the port"


def test_servers_die_with_the_call_that_started_them(tmp_path):
    s = servers()
    code = ("import os, sys, time\nsys.path.insert(0, sys.argv[1])\nfrom ayna_fab.hostprog import preflipcheck as preflight\n"
            "import json\nst = preflight.start(json.loads(sys.argv[2]), dict(os.environ), sys.argv[3])\n"
            "print(st.procs[0][0].pid, flush=True)\ntime.sleep(60)\n")
    root = os.path.dirname(os.path.dirname(preflight.__file__))
    call = subprocess.Popen([sys.executable, "-c", code, os.path.dirname(root), json.dumps(s), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    pid = int(call.stdout.readline())
    assert not gone(pid)
    call.send_signal(signal.SIGKILL)     # the prepare call killed: no finally of its runs
    call.wait()
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid), "a server outlived the call that started it"
    assert preflight._port_free(s[0]["url"])


def test_a_busy_reserved_port_is_refused_before_anything_starts(tmp_path):
    s = servers()
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # beside the port's reservation
        held.bind(("127.0.0.1", int(s[0]["url"].split(":")[2].split("/")[0])))
        held.listen()
        refused = preflight.start(s, dict(os.environ), str(tmp_path))
    assert refused["s0"]["ok"] is False and "in use" in refused["s0"]["body"]
    assert preflight.check(s, {}, str(tmp_path), "v7", 5, started=refused) == (False, refused)


class Clock:
    """time for the module under test: sleeping moves it on, so a long timeout costs no real time
    and a wait is measured in probes."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def answering(url):
    """Once the server answers at all (its start is not part of what is measured)."""
    deadline = time.monotonic() + 20
    while preflight.health.probe(url)[0] is None and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_404_that_keeps_coming_back_ends_the_check_long_before_its_timeout(tmp_path, monkeypatch):
    env = dict(os.environ, STATUS="404")
    s = servers()
    clock = Clock()
    monkeypatch.setattr(preflight, "time", clock)
    answers = []
    probe = preflight.health.probe
    started = preflight.start(s, env, str(tmp_path))
    answering(s[0]["url"])
    monkeypatch.setattr(preflight.health, "probe", lambda url: answers.append(probe(url)) or answers[-1])
    ok, report = preflight.check(s, env, str(tmp_path), "v7", 600, started=started)
    assert not ok and report["s0"]["status"] == 404
    assert "answered 404 every time for 3 s" in report["s0"]["body"] and "[projects.NAME.health]" in report["s0"]["body"]
    fours = [status for status, _ in answers if status == 404]
    assert 1 < len(fours) <= 40 and clock.now < 10, (len(fours), clock.now)   # 3 s of 0.1 s rounds, not 600 s


def test_a_404_that_turns_into_a_200_is_waited_for():
    errors = preflight.health.ClientErrors()
    assert [errors.settled("web", status, t) for status, t in ((404, 0), (404, 2.9), (None, 3.0), (404, 3.1),
                                                                (404, 6.0), (404, 6.2))] == [
        False, False, False, False, False, True]
    assert not errors.settled("web", 200, 9) and not errors.settled("web", 404, 9.5)


def test_health_after_the_flip_ends_on_a_404_that_keeps_coming_back(monkeypatch):
    port = reserved_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=dict(os.environ, STATUS="404"),
                              start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/health/"
        answering(url)
        clock = Clock()
        monkeypatch.setattr(preflight.health, "time", clock)
        ok, report = preflight.health.poll([{"name": "web", "url": url}], "v7", 600, fail_fast=True)
        assert not ok and report["web"]["status"] == 404 and clock.now < 10, (report, clock.now)
        assert f"{url} answered 404 every time" in report["web"]["body"]
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_a_server_started_before_collectstatic_gets_one_fresh_start_on_a_5xx(tmp_path):
    """It read the static manifest before collectstatic wrote it (500 for every page); started again
    on the collected files it answers. Without collectstatic in between, a 500 is the answer."""
    manifest = tmp_path / "staticfiles.json"
    env = dict(os.environ, MANIFEST=str(manifest), STARTS=str(tmp_path / "starts"))
    s = servers()
    ahead = preflight.start(s, env, str(tmp_path))
    answering(s[0]["url"])               # it has read (no) manifest
    manifest.write_text("{}")            # ... which collectstatic then wrote
    said = []
    out = prepare._preflight(str(tmp_path), env, 7, s, 20, lambda *a, **k: said.append(a), ahead, collected=True)
    assert said[0][2] is True and out["preflight"]["s0"]["ok"], said
    assert (tmp_path / "starts").read_text().count("started") == 2

    manifest.unlink()
    ahead = preflight.start(s, env, str(tmp_path))
    answering(s[0]["url"])
    manifest.write_text("{}")
    said = []
    prepare._preflight(str(tmp_path), env, 7, s, 20, lambda *a, **k: said.append(a), ahead, collected=False)
    assert said[0][2] is False


def test_a_busy_reserved_port_is_reported_as_such_and_nothing_else(tmp_path):
    s = servers()
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", int(s[0]["url"].split(":")[2].split("/")[0])))
        held.listen()
        refused = preflight.start(s, dict(os.environ), str(tmp_path))
    assert refused == {"s0": {"status": None, "release": None, "ok": False,
                              "body": f"the reserved port of {s[0]['url']} is in use on the host"}}


def test_a_server_that_dies_is_reported_with_its_exit_code_and_the_last_15_lines_of_its_output(tmp_path):
    s = servers()
    s[0]["argv"] = [sys.executable, "-c", "import sys\nfor i in range(20): print(f'line {i}')\nsys.exit(3)"]
    ok, report = preflight.check(s, dict(os.environ), str(tmp_path), "v7", 20)
    tail = "\n".join(f"line {i}" for i in range(5, 20))
    assert (ok, report["s0"]["status"], report["s0"]["exited"]) == (False, None, 3)
    assert report["s0"]["body"] == f"\ns0 exited 3:\n{tail}"


def test_a_server_answering_5xx_is_reported_with_its_answer_alone(tmp_path):
    s = servers()
    ok, report = preflight.check(s, dict(os.environ, STATUS="503"), str(tmp_path), "v7", 20)
    assert (ok, report["s0"]) == (False, {"status": 503, "release": "v7", "ok": False,
                                          "body": '{"status": "ok", "release": "v7"}'})


def test_a_server_answering_300_is_not_healthy(tmp_path):
    s = servers()
    started = preflight.start(s, dict(os.environ, STATUS="300"), str(tmp_path))
    probe = preflight.health.probe
    deadline = time.monotonic() + 20
    while probe(s[0]["url"])[0] is None and time.monotonic() < deadline:   # up: the check's one round sees it
        time.sleep(0.05)
    ok, report = preflight.check(s, {}, str(tmp_path), "v7", 0, started=started)
    assert (ok, report["s0"]["status"], report["s0"]["ok"]) == (False, 300, False)


def test_stopping_twice_signals_the_servers_once_and_a_missing_runtime_dir_is_no_error(tmp_path, monkeypatch):
    s = servers()
    started = preflight.start(s, dict(os.environ), str(tmp_path))
    os.rmdir(started.runtime)
    preflight.stop(started)
    signalled = []
    monkeypatch.setattr(preflight.os, "killpg", lambda *a: signalled.append(a))
    preflight.stop(started)
    assert signalled == []
