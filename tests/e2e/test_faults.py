"""The fault matrix: a deploy broken at each phase by each fault, on a real sandbox host.

For every cell, a deploy of a new commit is started as a person would (`fab` in a
process of its own); the test watches the host's own files from outside the
container until the phase begins, then injects the fault: the link cut at the
sandbox forwarder, the laptop killed (SIGKILL) or sent SIGTERM, the host-side
process of the step killed, the disk full under uv's cache, PostgreSQL stopped,
a release whose web will not serve under its unit, one whose worker will not start. Then, with no person acting, within 90 s:
`current` points at a complete release that passes its health check (the old one
unless the new one finished), no lock is left, `fab status` says so, and the next
`fab deploy` succeeds. docs/fault-matrix.md has the matrix.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ayna_fab.sandbox import forwarder
from tests.e2e.conftest import FAB, REPO, fab
from tests.e2e.fault_cells import MATRIX, SILENT, TOO_LATE_ONCE, cell_id
from tests.e2e.test_deploy import ROOT, Repo, health, inv, repo  # noqa: F401  (fixtures)

pytestmark = pytest.mark.e2e
GOOD_WITHIN = 90.0
PHASE_WAIT = 180.0


def host_path(sandbox, path: str) -> Path:
    """A path of the first sandbox host, read from outside the container (no round trip)."""
    return sandbox.hosts[0].merged / path.lstrip("/")


def current_number(sandbox) -> int | None:
    try:
        return int(os.readlink(host_path(sandbox, f"{ROOT}/releases/current")).rstrip("/").rsplit("v", 1)[1])
    except OSError:
        return None


def journal(sandbox) -> dict:
    try:
        return json.loads(host_path(sandbox, f"{ROOT}/activation.json").read_text())
    except (OSError, ValueError):
        return {}


def backups(sandbox) -> set[str]:
    d = host_path(sandbox, f"{ROOT}/shared/backups")
    return set(os.listdir(d)) if d.is_dir() else set()


class Cell:
    """One deploy with one fault; `when` says when the phase has begun (read on the host)."""

    def __init__(self, sandbox, inv: Path, repo: Repo, number: int) -> None:
        self.sandbox, self.inv, self.repo, self.number = sandbox, inv, repo, number
        self.before_backups = backups(sandbox)
        self.before_journal = journal(sandbox).get("started")

    def phase_begun(self, phase: str) -> bool:
        root, n = ROOT, self.number
        exists = lambda p: host_path(self.sandbox, p).exists()  # noqa: E731
        j = journal(self.sandbox)
        new_journal = j.get("started") != self.before_journal and j.get("number") == n
        return {
            "plan": exists(f"{root}/.deploy-lock/owner.json"),
            "upload": exists(f"{root}/releases/v{n}"),   # the upload travels with the stage call
            "install": exists(f"{root}/releases/v{n}/.venv"),
            "check/migrate": bool(backups(self.sandbox) - self.before_backups),   # the pre-migrate dump
            "activate": new_journal,
            "after flip": new_journal and current_number(self.sandbox) == n,
            "health": new_journal and j.get("phase") in ("health", "verify", "record", "done"),
            # the new slot answered: the live one is stopping while verify runs
            "handover": new_journal and j.get("phase") in ("verify", "record", "done"),
            "record": new_journal and j.get("phase") in ("record", "done"),
        }[phase]

    def start(self) -> subprocess.Popen:
        env = {**os.environ, "AYNA_FAB_HOSTS": str(self.inv)}
        self.out = open(self.inv.parent / f"fab-{self.number}.log", "w+")
        return subprocess.Popen([str(FAB), "-H", "sandbox1", "deploy"], cwd=REPO, env=env, stdout=self.out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_for(self, phase: str, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + PHASE_WAIT
        while not self.phase_begun(phase):
            assert proc.poll() is None, f"fab ended before {phase}: {self.output()}"
            assert time.monotonic() < deadline, f"{phase} never began: {self.output()}"
            time.sleep(0.02)
        self.assert_within(phase, proc)

    def assert_within(self, phase: str, proc: subprocess.Popen) -> None:
        """The fault is about to land in `phase`: fab still runs and the host has not gone past it.
        Checked the instant before the fault: a fault that would land too late fails its cell."""
        later = TOO_LATE_ONCE.get(phase)
        assert proc.poll() is None, f"fab had ended before the fault at {phase}: {self.output()}"
        assert later is None or not self.phase_begun(later), \
            f"the host was already at {later} when the fault meant for {phase} was due: {self.output()}"

    def output(self) -> str:
        self.out.flush()
        self.out.seek(0)
        return self.out.read()


def kill_host_call(sandbox, call: str) -> str:
    """SIGKILL every host-program process running `call` (for activate: the call and its worker)."""
    script = ("import os,signal\n"
              "for p in os.listdir('/proc'):\n"
              " try:\n"
              "  a=open(f'/proc/{p}/cmdline','rb').read().split(b'\\0')\n"
              " except OSError: continue\n"
              f" if len(a)>4 and a[0].endswith(b'python3') and a[1]==b'-c' and a[3]==b'{call}':\n"
              "  os.kill(int(p),signal.SIGKILL); print(p)\n")
    return sandbox.check(0, "python3 -c " + shlex.quote(script))


def worker_fails_under_unit(repo: Repo, branch: str) -> None:
    """A branch whose Celery worker exits at once when systemd starts it: the pre-flip check (web
    and api) passes, the restart's verify finds the worker unit not active."""
    repo.git("checkout", "-q", "-b", branch, "main")
    app = repo.path / "src/web/config/celery.py"
    text = app.read_text()
    marker = 'app = Celery("uavcrew")'
    assert marker in text
    app.write_text(text.replace(marker, 'import sys\nif "INVOCATION_ID" in os.environ and "worker" in sys.argv:\n'
                                        '    raise SystemExit("this release\'s worker will not start")\n' + marker, 1))
    repo.git("commit", "-qam", "the worker will not start under its unit")
    repo.git("checkout", "-q", "main")


FAULTS = {
    "link cut": lambda c, p: forwarder.request(c.sandbox.hosts[0].control, "cut"),
    "SIGKILL": lambda c, p: p.send_signal(signal.SIGKILL),
    "SIGTERM": lambda c, p: p.send_signal(signal.SIGTERM),
}

@pytest.fixture(scope="module")
def faults_inv(inv):
    return inv


@pytest.fixture(scope="module")
def started(sandbox, faults_inv, repo):
    """The matrix starts from a healthy, recorded release (the deploy story ran before)."""
    r = fab("-H", "sandbox1", "deploy", hosts_file=faults_inv)
    assert r.returncode == 0, r.stdout + r.stderr
    return {"cells": []}


def next_number(sandbox) -> int:
    counter = host_path(sandbox, f"{ROOT}/releases/.counter")
    return int(counter.read_text().strip()) + 1


@pytest.mark.parametrize("expected", MATRIX, ids=[cell_id(c) for c in MATRIX])
def test_a_fault_at_any_phase_leaves_a_good_state_within_90_s(sandbox, faults_inv, repo, started, expected):
    phase, fault = expected.phase, expected.fault
    live_before = current_number(sandbox)
    if fault == "unit will not serve":
        repo.health_fails_under_unit(f"faults-{phase}")   # passes the pre-flip check, fails under its unit
        repo.git("checkout", "-q", f"faults-{phase}")
    elif fault == "unit will not start":
        worker_fails_under_unit(repo, f"faults-{phase}")   # the Celery worker exits at once under systemd
        repo.git("checkout", "-q", f"faults-{phase}")
    else:
        repo.git("checkout", "-q", "main")
        repo.mode("dependency-change" if fault == "disk full" else "code-change",
                  text=f"fault cell {phase} {fault}")
        if phase == "check/migrate":   # a migration pending: the deploy backs up and migrates
            repo.add_migration(f"fault_{fault.replace(' ', '_').lower()}")
    cell = Cell(sandbox, faults_inv, repo, next_number(sandbox))
    undo = None
    if fault == "disk full":   # uv's cache on a full file system: the install cannot write a wheel
        cache = "/opt/ayna/.uv-cache"
        sandbox.check(0, f"mkdir -p /tmp/full && mount -t tmpfs -o size=64k tmpfs {cache} && "
                         f"chown adonis: {cache} && dd if=/dev/zero of={cache}/ballast bs=4k 2>/dev/null; true")
        undo = lambda: sandbox.check(0, f"umount {cache}")  # noqa: E731
    proc = cell.start()
    try:
        if fault not in ("unit will not serve", "unit will not start", "disk full"):
            cell.wait_for(phase, proc)
            injected = time.monotonic()
            if fault == "step killed":
                killed = kill_host_call(sandbox, "activate" if phase in ("after flip", "health", "handover")
                                        else "prepare")
                assert killed.split(), f"no host process of the step was running at {phase}: {cell.output()}"
            elif fault == "PostgreSQL stopped":
                sandbox.check(0, "systemctl stop postgresql")
                undo = lambda: sandbox.check(0, "systemctl start postgresql")  # noqa: E731
            else:
                FAULTS[fault](cell, proc)
        else:
            injected = time.monotonic()
        try:
            rc = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"fab did not end: {cell.output()}")
    finally:
        repo.git("checkout", "-q", "main")
        if undo:
            undo()
        if proc.poll() is None:   # this cell failed on the way: its deploy must not outlive it
            proc.kill()
            proc.wait()
    said = cell.output()
    # Exactly the table's exit: a SIGKILL cell's fab dies by the signal (so it was alive when it
    # landed); a SIGTERM cell's fab exits with a code of its own (the signal was handled).
    assert rc == expected.exit, f"fab exited {rc} after {fault} at {phase}, the table says {expected.exit}:\n{said}"
    assert "Traceback" not in said, said

    # With no person acting: a good state within 90 s.
    good, last = False, None
    while time.monotonic() - injected < GOOD_WITHIN:
        live = current_number(sandbox)
        locked = host_path(sandbox, f"{ROOT}/.deploy-lock").exists()
        served = {health(sandbox, s).get("release") for s in ("web", "api")}
        last = (live, locked, served)
        if live is not None and not locked and served == {f"v{live}"}:
            good = True
            break
        time.sleep(1)
    seconds = round(time.monotonic() - injected, 1)
    assert good, f"no good state {GOOD_WITHIN} s after {fault} at {phase}: (live, locked, serving) = {last}\n{said}"
    live = current_number(sandbox)
    want = {"old": live_before, "new": cell.number}[expected.left]
    assert live == want, f"v{live} serves after {fault} at {phase}; the table says the {expected.left} release, v{want}"
    complete = json.loads(host_path(sandbox, f"{ROOT}/releases/v{live}/.ayna-release.json").read_text())
    assert complete["state"] == "active", complete

    status = fab("-H", "sandbox1", "status", "--json", hosts_file=faults_inv)
    assert status.returncode == 0, status.stdout + status.stderr
    row = next(r for r in json.loads(status.stdout) if r["project"] == "uavcrew")
    assert (row["release"], row["lock"], row["activation"]) == (f"v{live}", None, None), row
    assert set(row["health"].values()) == {"ok"}, row
    # One slot of each service runs, and it runs the live release: the other slot was stopped.
    for service in ("web", "api", "celery"):
        slots = [f"uavcrew-{service}-{slot}.service" for slot in ("blue", "green")]
        states = sandbox.check(0, "systemctl is-active " + " ".join(slots) + " || true").split()
        assert states.count("active") == 1, (service, states)
        running = slots[states.index("active")]
        link = sandbox.check(0, f"readlink {ROOT}/releases/{running.split('-')[-1].removesuffix('.service')}").strip()
        assert link == f"v{live}", (running, link)

    repo.mode("code-change", text=f"after {phase} {fault}")
    nxt = fab("-H", "sandbox1", "deploy", hosts_file=faults_inv)
    assert nxt.returncode == 0, f"the next deploy after {fault} at {phase} failed:\n{nxt.stdout}{nxt.stderr}"
    started["cells"].append({"phase": phase, "fault": fault, "left": f"v{live}",
                             "new": f"v{cell.number}", "seconds_to_good": seconds, "fab_exit": rc})
    print(json.dumps(started["cells"][-1]))


# --- a silent partition: no reset reaches either side ---------------------------------------------

SILENT_WITHIN = 120.0   # the promise: a laptop gone silent holds the lock for at most 2 minutes


def last_log(sandbox) -> dict:
    lines = host_path(sandbox, f"{ROOT}/logs/deploys.jsonl").read_text().splitlines()
    return json.loads(lines[-1]) if lines else {}


def test_a_link_gone_silent_during_install_frees_the_lock_within_2_minutes(sandbox, faults_inv, repo, started):
    """A closed lid or a dropped NAT entry sends no reset: the forwarder drops everything both ways
    and `fab` is left hanging. The host's holder, hearing no heartbeat for its real limit
    (hostprog/wire.SILENT_AFTER), abandons the deploy once its prepare has ended: the old release
    stays live, the new one is marked failed, the lock is freed, all before `fab` itself gives up.
    The time counts from the silence to the lock's removal (the host's files, read from outside:
    the link carries nothing then, the test's own SSH neither)."""
    control = sandbox.hosts[0].control
    live_before = current_number(sandbox)
    repo.git("checkout", "-q", "main")
    repo.mode("code-change", text="fault cell install silent")
    cell = Cell(sandbox, faults_inv, repo, next_number(sandbox))
    proc = cell.start()
    try:
        cell.wait_for("install", proc)
        assert forwarder.request(control, "silent on")["silent"] is True
        injected = time.monotonic()
        # The host's files only: every SSH connection, a new one too, is silent now.
        while host_path(sandbox, f"{ROOT}/.deploy-lock").exists() and time.monotonic() - injected < SILENT_WITHIN:
            time.sleep(0.5)
        seconds = round(time.monotonic() - injected, 1)
        freed = not host_path(sandbox, f"{ROOT}/.deploy-lock").exists()
        hanging = proc.poll() is None
    finally:
        proc.kill()   # the lid never opens again
        proc.wait()
        forwarder.request(control, "silent off")
    said = cell.output()
    assert freed, f"the lock was still held {SILENT_WITHIN} s after the link went silent\n{said}"
    assert hanging, f"fab ended by itself: the host must not have needed it to\n{said}"
    assert current_number(sandbox) == live_before
    assert {health(sandbox, s).get("release") for s in ("web", "api")} == {f"v{live_before}"}
    state = json.loads(host_path(sandbox, f"{ROOT}/releases/v{cell.number}/.ayna-release.json").read_text())
    assert state["state"] == "failed", state
    settled = last_log(sandbox)
    assert settled["result"] == "abandoned" and "fell silent" in settled["reason"], settled

    status = fab("-H", "sandbox1", "status", "--json", hosts_file=faults_inv)
    assert status.returncode == 0, status.stdout + status.stderr
    row = next(r for r in json.loads(status.stdout) if r["project"] == "uavcrew")
    assert (row["release"], row["lock"], row["activation"]) == (f"v{live_before}", None, None), row

    repo.mode("code-change", text="after install silent")
    nxt = fab("-H", "sandbox1", "deploy", hosts_file=faults_inv)
    assert nxt.returncode == 0, f"the next deploy after a silent link failed:\n{nxt.stdout}{nxt.stderr}"
    started["cells"].append({"phase": "install", "fault": "silent link", "left": f"v{live_before}",
                             "new": f"v{cell.number}", "seconds_to_good": seconds, "fab_exit": "hanging, killed"})
    print(json.dumps(started["cells"][-1]))


def test_a_laptop_late_by_40_s_keeps_its_lock_and_its_deploy_goes_through(sandbox, faults_inv, repo, started):
    """The other side of the holder's silence rule: a live laptop whose heartbeats come late (here
    `fab` stopped for 40 s during install, as beats queued behind an upload on a slow link would
    be) is not taken for gone: 40 s plus one beat's interval stays inside wire.SILENT_AFTER."""
    repo.git("checkout", "-q", "main")
    repo.mode("code-change", text="fault cell install late laptop")
    cell = Cell(sandbox, faults_inv, repo, next_number(sandbox))
    proc = cell.start()
    try:
        cell.wait_for("install", proc)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(40)
        proc.send_signal(signal.SIGCONT)
        rc = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()
    said = cell.output()
    assert rc == 0, said
    assert current_number(sandbox) == cell.number
    assert last_log(sandbox)["result"] == "ok", last_log(sandbox)
