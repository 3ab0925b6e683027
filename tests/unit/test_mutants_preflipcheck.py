"""The pre-flip check's servers (hostprog/preflipcheck.py), held where a one-line bug in it went
unnoticed: the servers run in the release with a runtime dir of their own and nothing on stdin, the
report keeps 300 characters of an answer and a dead server's whole output tail, and `stop` returns
only once the servers' process group is gone (its workers hold the reserved port)."""

from __future__ import annotations

import json
import os
import signal
import sys

from ayna_fab.hostprog import preflipcheck as preflight
from tests.polling import wait_until
from tests.ports import reserved_port
from tests.stdin_pipe import stdin_a_pipe

# Writes what it was started with to $SEEN, then answers $STATUS with $BODY (or exits with $EXIT
# after printing $OUT).
SERVER = """
import http.server, json, os, sys
devnull = os.stat(os.devnull)
stdin = os.fstat(0)
json.dump({"cwd": os.getcwd(), "runtime": os.environ.get("XDG_RUNTIME_DIR"),
           "stdin_is_devnull": (stdin.st_dev, stdin.st_ino) == (devnull.st_dev, devnull.st_ino)},
          open(os.environ["SEEN"] + ".part", "w"))
os.rename(os.environ["SEEN"] + ".part", os.environ["SEEN"])
if "EXIT" in os.environ:
    print(os.environ["OUT"], flush=True)
    sys.exit(int(os.environ["EXIT"]))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(int(os.environ.get("STATUS", "200"))); self.end_headers()
        self.wfile.write(os.environ.get("BODY", '{"release": "v7"}').encode())
    def log_message(self, *a): pass
http.server.HTTPServer.allow_reuse_address = True
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def server():
    port = reserved_port()
    return [{"name": "s0", "url": f"http://127.0.0.1:{port}/health",
             "argv": [sys.executable, "-c", SERVER, str(port)]}]


def seen(path):
    """What the server wrote of its start, once it has."""
    wait_until(path.exists, 20)
    return json.loads(path.read_text())


def answering(url):
    wait_until(lambda: preflight.health.probe(url)[0] is not None, 20)


def test_the_servers_run_in_the_release_with_a_runtime_dir_of_their_own_and_nothing_on_stdin(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    env = dict(os.environ, SEEN=str(tmp_path / "seen"), XDG_RUNTIME_DIR=str(tmp_path))
    with stdin_a_pipe():                 # the call's stdin: the laptop's, never the servers'
        started = preflight.start(server(), env, str(release))
    try:
        assert seen(tmp_path / "seen") == {"cwd": str(release), "runtime": started.runtime,
                                           "stdin_is_devnull": True}
    finally:
        preflight.stop(started)


def test_a_check_that_starts_the_servers_itself_starts_them_in_the_release(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    env = dict(os.environ, SEEN=str(tmp_path / "seen"))
    ok, report = preflight.check(server(), env, str(release), "v7", 20)
    assert ok, report
    assert seen(tmp_path / "seen")["cwd"] == str(release)


def test_an_answer_that_is_not_healthy_is_reported_with_its_first_300_characters(tmp_path):
    s = server()
    env = dict(os.environ, SEEN=str(tmp_path / "seen"), STATUS="300", BODY="x" * 400)
    started = preflight.start(s, env, str(tmp_path))
    answering(s[0]["url"])
    ok, report = preflight.check(s, env, str(tmp_path), "v7", 0, started=started)
    assert (ok, report["s0"]["status"], report["s0"]["body"]) == (False, 300, "x" * 300)


def test_a_5xx_answer_is_reported_with_its_first_300_characters(tmp_path):
    env = dict(os.environ, SEEN=str(tmp_path / "seen"), STATUS="503", BODY="x" * 400)
    ok, report = preflight.check(server(), env, str(tmp_path), "v7", 20)
    assert (ok, report["s0"]["status"], report["s0"]["body"]) == (False, 503, "x" * 300)


def test_a_dead_server_s_output_is_reported_from_its_first_character(tmp_path):
    env = dict(os.environ, SEEN=str(tmp_path / "seen"), EXIT="3", OUT="boom")
    ok, report = preflight.check(server(), env, str(tmp_path), "v7", 20)
    assert (ok, report["s0"]["body"]) == (False, "\ns0 exited 3:\nboom")


def test_stop_returns_only_once_the_servers_process_group_is_gone(tmp_path, monkeypatch):
    """The group's workers (gunicorn's, uvicorn's) hold the listening socket after their master is
    reaped: here the group is said to live for two more looks after the kill."""
    started = preflight.start(server(), dict(os.environ, SEEN=str(tmp_path / "seen")), str(tmp_path))
    seen(tmp_path / "seen")
    killpg = os.killpg
    looks = []

    def lingering(pgid, sig):
        if sig == signal.SIGKILL:
            return killpg(pgid, sig)
        looks.append(pgid)
        if len(looks) == 3:
            raise ProcessLookupError

    monkeypatch.setattr(preflight.os, "killpg", lingering)
    preflight.stop(started)
    assert looks == [started.procs[0][0].pid] * 3
