"""The pre-flip check: the new release's web and api started privately, on the project's reserved
ports (+5 web, +6 api), with the real env file and database, until their health endpoints pass
and report the new release; then stopped. A release that fails here never serves a user.

The Celery worker and beat are never started twice (a second beat would run every schedule twice).
"""

import os
import shutil
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


class Started:
    """Servers of a release started privately, possibly ahead of the check (prepare.py starts them
    before Django's steps, so they import the app meanwhile)."""

    def __init__(self, procs, runtime):
        self.procs, self.runtime = procs, runtime
        self.stopped = False



def _die_with_parent():
    """In the server, before exec: killed when the call that started it dies (a killed prepare
    must not leave servers on the reserved ports, which would refuse the next check)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except Exception:
        pass


def start(servers, env, cwd):
    """Start each server on its reserved port: a Started, or the refusal report if a port is busy."""
    busy = [s["url"] for s in servers if not _port_free(s["url"])]
    if busy:
        return {s["name"]: {"status": None, "release": None, "ok": False,
                            "body": f"the reserved port of {s['url']} is in use on the host"}
                for s in servers if s["url"] in busy}
    runtime = tempfile.mkdtemp(prefix="ayna-preflight.")
    env = dict(env, XDG_RUNTIME_DIR=runtime)
    procs = []
    for s in servers:
        log = tempfile.TemporaryFile("w+")
        procs.append((subprocess.Popen(s["argv"], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       preexec_fn=_die_with_parent), log))
    return Started(procs, runtime)


def stop(started):
    """They served nothing but our probes: killed at once, with every process of their group.
    Once only: a reaped server's pid may name another process group by now."""
    if started.stopped:
        return
    started.stopped = True
    for p, _ in started.procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p, log in started.procs:
        p.wait()
        log.close()
    # The workers (same group) hold the listening socket too: the port is free once they are gone.
    deadline = time.monotonic() + 5
    for p, _ in started.procs:
        while time.monotonic() < deadline:
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
    shutil.rmtree(started.runtime, ignore_errors=True)


def check(servers, env, cwd, expect, timeout, started=None):
    """(ok, report): each server's health, or why it failed (its output's tail when it died).
    started: the servers, started ahead by `start`; else they are started here. Stopped either way."""
    if started is None:
        started = start(servers, env, cwd)
    if not isinstance(started, Started):
        return False, started
    try:
        deadline = time.monotonic() + timeout
        report = {}
        pending = list(zip(servers, started.procs))
        client_errors = health.ClientErrors()
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
                    if p.poll() is not None:   # it died by itself, before we stopped it
                        report[s["name"]]["exited"] = p.returncode
                    return False, report
                if client_errors.settled(s["name"], status, time.monotonic()):
                    report[s["name"]]["body"] = health.client_error_said(status, s["url"])
                    return False, report
                still.append((s, (p, log)))
            pending = still
            if pending and time.monotonic() > deadline:
                return False, report
            if pending:
                time.sleep(0.1)
        return True, report
    finally:
        stop(started)
