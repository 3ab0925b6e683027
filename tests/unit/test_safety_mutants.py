"""The safety mechanisms the README leans on, each driven through its real code so that breaking it
fails a test: cleanup keeps releases still in use, verify refuses processes of another release,
health fails fast on a 5xx, SIGTERM is handled like Ctrl-C, env-check compares the ports.

Only what needs a server is faked: which processes a unit has (real processes of this test, found
through /proc as on a host) and systemd's answers about the unit.
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

from ayna_fab.errors import OperationFailed
from ayna_fab.hostprog import finish, health, store, units
from ayna_fab.hostprog import switchover as activate
from ayna_fab.ops.runner import EACH, Operation, Phase, RunState, reason, run
from ayna_fab.provision.envcheck import problems

UNIT = "demo-web.service"


@pytest.fixture
def root(tmp_path):
    """A project directory with releases v1..v3, v3 live (real paths: /proc reports them resolved)."""
    base = os.path.realpath(tmp_path)
    for n in (1, 2, 3):
        os.makedirs(os.path.join(store.release_dir(base, n), "bin"))
        store.write_json(os.path.join(store.release_dir(base, n), store.META), {"state": "good"})
    store.flip(base, 3)
    return base


@pytest.fixture
def procs():
    """Real processes, killed at the end."""
    started = []

    def start(argv, cwd):
        p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL)
        started.append(p)
        # Popen returns once the child is forked: until it has exec'd, its files and directory are still
        # this test's, so wait (bounded) for its program to be the one asked for.
        program = os.path.realpath(shutil.which(argv[0]))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if os.path.realpath(f"/proc/{p.pid}/exe") == program:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        return p

    yield start
    for p in started:
        p.kill()
        p.wait()


def unit_runs(monkeypatch, *pids):
    """systemd's part: the unit is active, its cgroup holds exactly these processes."""
    monkeypatch.setattr(units, "pids", lambda unit: list(pids) if unit == UNIT else [])
    monkeypatch.setattr(units, "pids_of_cgroup", lambda cgroup: list(pids))
    monkeypatch.setattr(units, "states", lambda names: {u: {"state": "active", "restarts": 0, "cgroup": "/x",
                                                              "up": None} for u in names})


def sleeper_of(rel):
    """A copy of `sleep` inside a release: a process running it maps a file of that release."""
    path = os.path.join(rel, "bin", "sleep")
    shutil.copy2(shutil.which("sleep"), path)
    return path


# --- cleanup never removes a release a process still runs from -----------------------------------

def test_cleanup_keeps_a_release_whose_files_a_unit_still_runs(root, procs, monkeypatch):
    p = procs([sleeper_of(store.release_dir(root, 1)), "60"], cwd=root)
    unit_runs(monkeypatch, p.pid)
    out = finish.record(root, "t1", {}, {}, None, [1, 2], [UNIT])
    assert out["removed"] == [2]
    assert out["kept_in_use"] == {"v1": [p.pid]}
    assert os.path.isdir(store.release_dir(root, 1)) and not os.path.exists(store.release_dir(root, 2))


def test_cleanup_keeps_a_release_a_unit_still_has_as_its_working_directory(root, procs, monkeypatch):
    p = procs(["sleep", "60"], cwd=store.release_dir(root, 2))
    unit_runs(monkeypatch, p.pid)
    out = finish.record(root, "t1", {}, {}, None, [1, 2], [UNIT])
    assert out["removed"] == [1] and out["kept_in_use"] == {"v2": [p.pid]}
    assert os.path.isdir(store.release_dir(root, 2))


# --- verify refuses every process that is not wholly of the new release ---------------------------

def verify_v3(root):
    """verify's verdict on v3 (a short deadline: a stale process never becomes right by waiting)."""
    ok, report = activate.verify([UNIT], store.release_dir(root, 3), time.monotonic() + 0.3)
    return ok, report[UNIT]["stale"]


def test_verify_passes_a_process_wholly_of_the_new_release(root, procs, monkeypatch):
    p = procs([sleeper_of(store.release_dir(root, 3)), "60"], cwd=store.release_dir(root, 3))
    unit_runs(monkeypatch, p.pid)
    assert verify_v3(root) == (True, [])


def test_verify_refuses_a_process_still_in_the_old_release(root, procs, monkeypatch):
    p = procs(["sleep", "60"], cwd=store.release_dir(root, 2))
    unit_runs(monkeypatch, p.pid)
    assert verify_v3(root) == (False, [[p.pid, store.release_dir(root, 2)]])


def test_verify_refuses_a_process_whose_directory_is_outside_the_new_release(root, procs, monkeypatch):
    elsewhere = os.path.join(root, "elsewhere")
    os.mkdir(elsewhere)
    p = procs([sleeper_of(store.release_dir(root, 3)), "60"], cwd=elsewhere)
    unit_runs(monkeypatch, p.pid)
    assert verify_v3(root) == (False, [[p.pid, elsewhere]])


def test_verify_refuses_a_process_in_the_new_release_running_the_old_ones_files(root, procs, monkeypatch):
    p = procs([sleeper_of(store.release_dir(root, 2)), "60"], cwd=store.release_dir(root, 3))
    unit_runs(monkeypatch, p.pid)
    assert verify_v3(root) == (False, [[p.pid, "files of v2"]])


def test_verify_does_not_pass_a_process_whose_program_is_not_loaded_yet(root, procs, monkeypatch):
    """Between fork and the new program's mapping (mid-exec) a process's files cannot be judged:
    it is not passed on that round."""
    p = procs([sleeper_of(store.release_dir(root, 3)), "60"], cwd=store.release_dir(root, 3))
    unit_runs(monkeypatch, p.pid)
    monkeypatch.setattr(units, "releases_used", lambda pid, d: None)
    assert verify_v3(root) == (False, [[p.pid, "a program not loaded yet"]])


# --- health fails fast on a 5xx once the new release answers -------------------------------------

class Answers(http.server.BaseHTTPRequestHandler):
    """Answers the statuses in server.statuses in turn (the last one from then on); counts probes."""

    def do_GET(self):
        s = self.server
        with s.counting:
            s.probes += 1
            status = s.statuses[min(s.probes, len(s.statuses)) - 1]
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b'{"release": "v3"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    servers = []

    def serve(*statuses):
        s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
        s.statuses, s.probes, s.counting = statuses, 0, threading.Lock()
        threading.Thread(target=s.serve_forever, daemon=True).start()
        servers.append(s)
        return s, [{"name": "web", "url": f"http://127.0.0.1:{s.server_address[1]}/health"}]

    yield serve
    for s in servers:
        s.shutdown()
        s.server_close()


def test_health_ends_at_the_first_5xx_when_failing_fast(endpoint):
    server, checks = endpoint(500, 200)
    ok, report = health.poll(checks, "v3", time.monotonic() + 60, fail_fast=True)
    assert (ok, report["web"]["status"], server.probes) == (False, 500, 1)


def test_health_waits_out_a_5xx_when_not_failing_fast(endpoint):
    # (a unit whose restart failed: the answer may still come from the old processes)
    server, checks = endpoint(500, 200)
    ok, report = health.poll(checks, "v3", time.monotonic() + 60, fail_fast=False)
    assert (ok, report["web"]["status"], server.probes) == (True, 200, 2)


# --- SIGTERM stops an operation as Ctrl-C does, and every host is put back -----------------------

class Host:
    """Just enough of a runner target for an operation that never calls a host."""

    name = "h1"
    dry_run = False
    state = RunState.NEW   # never asked for a lock

    def __init__(self):
        self.remote = SimpleNamespace(interrupted=None, dry_run=False, end_holder=lambda: None)

    def stop_if_interrupted(self):
        if self.remote.interrupted:
            raise KeyboardInterrupt(self.remote.interrupted)


class Terminated(Operation):
    """One phase, during which a SIGTERM arrives; recovery notes what it was told."""

    name = "deploy"

    def __init__(self):
        self.targets = [Host()]
        self.phases = [Phase("prepare", self.prepare, EACH), Phase("activate", self.activate, EACH)]
        self.events = []

    def prepare(self, op, t):
        self.events.append("prepare")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)   # ended by the SIGTERM's interrupt (a bound, if it never comes)
        self.events.append("prepare went on")

    def activate(self, op, t):
        self.events.append("activate")

    def recover(self, t, cause, phase):
        self.events.append(f"recover {t.name} at {phase}: {reason(cause)}")
        return OperationFailed(f"put back: {reason(cause)}", host=t.name, step=phase)


def operation_under_sigterm(write_fd):
    """In a child process (a SIGTERM left at its default ends it): run the operation, report."""
    op = Terminated()
    try:
        run(op, lambda line: None)
        op.events.append("no error")
    except OperationFailed as e:
        op.events.append(f"error: {e.message}")
    os.write(write_fd, "\n".join(op.events).encode())


def test_sigterm_stops_the_operation_and_every_host_is_put_back():
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: never returns into pytest
        code = 1
        try:
            os.close(read_fd)
            operation_under_sigterm(write_fd)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        said = f.read().decode().splitlines()
    _, status = os.waitpid(pid, 0)
    assert not os.WIFSIGNALED(status), f"the process died of signal {os.WTERMSIG(status)}"
    assert os.WEXITSTATUS(status) == 0
    assert said == ["prepare", "recover h1 at prepare: interrupted (SIGTERM)",
                    "error: put back: interrupted (SIGTERM)"]


# --- env-check compares the ports with the registry ----------------------------------------------

ENV = {"PROJECT_NAME": "demo", "DJANGO_SETTINGS_MODULE": "demo.settings", "SECRET_KEY": "s",
       "DATABASE_URL": "postgresql://demo@localhost/demo", "REDIS_URL": "redis://localhost/0",
       "WEB_PORT": "8130", "API_PORT": "8131"}


def test_env_check_passes_the_registrys_ports():
    assert problems(ENV, "demo", 8130, 8131) == []


def test_env_check_names_a_web_port_other_than_the_registrys():
    assert problems(dict(ENV, WEB_PORT="8140"), "demo", 8130, 8131) == [
        "WEB_PORT=8140 does not match the port registry (demo: 8130)"]


def test_env_check_names_an_api_port_other_than_the_registrys():
    assert problems(dict(ENV, API_PORT="8130"), "demo", 8130, 8131) == [
        "API_PORT=8130 does not match the port registry (demo: 8131)"]
