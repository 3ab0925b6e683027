"""The pre-flip check: the new release's web and api started privately, on the project's reserved
ports (+5 web, +6 api), with the real env file and database, until their health endpoints pass
and report the new release; then stopped. A release that fails here never serves a user.

The Celery worker and beat are never started twice (a second beat would run every schedule twice).
"""

import os
import signal
import socket
import subprocess
import tempfile
import time

from . import health


def _port_free(url):
    """Nothing listens there (SO_REUSEADDR, as the servers bind: closed connections in TIME_WAIT
    from an earlier check do not count)."""
    port = int(url.split(":")[2].split("/")[0])
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _stop(procs):
    for p, _ in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for p, _ in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def check(servers, env, cwd, expect, timeout):
    """(ok, report): each server's health, or why it failed (its output's tail when it died)."""
    busy = [s["url"] for s in servers if not _port_free(s["url"])]
    if busy:
        return False, {s["name"]: {"status": None, "release": None, "ok": False,
                                   "body": f"the reserved port of {s['url']} is in use on the host"}
                       for s in servers if s["url"] in busy}
    env = dict(env, XDG_RUNTIME_DIR=tempfile.mkdtemp(prefix="ayna-preflight."))
    procs = []
    try:
        for s in servers:
            log = tempfile.TemporaryFile("w+")
            procs.append((subprocess.Popen(s["argv"], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True), log))
        deadline = time.monotonic() + timeout
        report = {}
        pending = list(zip(servers, procs))
        while pending:
            still = []
            for s, (p, log) in pending:
                status, body = health.probe(s["url"])
                served = health.release_of(body)
                ok = status is not None and 200 <= status < 300 and served in (None, expect)
                report[s["name"]] = {"status": status, "release": served, "ok": ok, "body": body[:300]}
                if ok:
                    continue
                if p.poll() is not None or (status is not None and status >= 500):
                    log.seek(0)
                    tail = "\n".join(log.read().strip().splitlines()[-15:])
                    report[s["name"]]["body"] = (body[:300] if status else "") + (
                        f"\n{s['name']} exited {p.returncode}:\n{tail}" if p.poll() is not None else "")
                    return False, report
                still.append((s, (p, log)))
            pending = still
            if pending and time.monotonic() > deadline:
                return False, report
            if pending:
                time.sleep(0.2)
        return True, report
    finally:
        _stop(procs)
        for _, log in procs:
            log.close()
        subprocess.run(["rm", "-rf", env["XDG_RUNTIME_DIR"]])
