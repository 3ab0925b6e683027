"""A project's command run with a timeout that ends everything it started (standard library only).

Used on the host (hooks) and on the laptop (build steps, laptop hooks). The command runs in a
session of its own, so its process group is its own, with its output in a temporary file,
never a pipe: a descendant that outlives it cannot hold the caller waiting for end of file.

Its process group is not the whole of what it starts: a child may call setsid, and a child
whose parent exits is handed to the nearest child subreaper, normally init, where no parent
chain leads back to the command. So on Linux the command's own process is made a child
subreaper (prctl, kept across exec): while it lives, every descendant, setsid or orphaned,
stays under it in /proc. At the timeout the tree is read from /proc while its root lives, sent
SIGTERM, given a grace, then frozen (SIGSTOP, which no process can fork past) to the last
descendant and killed. Processes are known by pid and start time, so a reused pid is never hit.
Where /proc or prctl is missing (macOS) the process group alone is ended.

The runner itself is no subreaper: a process running hooks also runs other work (backups in a
thread, the holder), whose children it must not mistake for a hook's. A cgroup (systemd-run
--user --scope) would hold the tree more surely, but the deploy user need not have a user
manager (no lingering, no login session over a forced-command key), and this needs nothing. What a command leaves
running after it ends on its own is its business; only a timeout (or an interrupt) ends it.
"""

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36
POLL = 0.05     # seconds between looks at a tree that is ending
ROUNDS = 100    # freeze passes before a tree that keeps forking is killed as far as it is known


@dataclass
class Ended:
    """How a command ended: its exit code (negative: its signal), its output (stdout and stderr
    as they came), whether its timeout ended it, and how long it ran."""

    code: int
    output: str
    timed_out: bool
    seconds: float


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()   # looked up here, never between fork and exec


def _become_subreaper():   # in the child, between fork and exec
    _PRCTL(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def run(argv, *, cwd=None, env=None, timeout=None, grace=5.0):
    """Run argv to its end or its timeout; an exception while waiting (Ctrl-C) ends its tree and
    goes on. Raises OSError when argv cannot start."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_become_subreaper if _PRCTL else None)
        timed_out = False
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            end_tree(proc, grace)
        except BaseException:
            end_tree(proc, 0)
            raise
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return Ended(proc.returncode, text, timed_out, time.monotonic() - started)


# --- ending a tree -------------------------------------------------------------------------------

def _stat(pid):
    """(parent pid, start time) of a live process, None for one gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[1]), int(fields[19])


def _processes():
    """Every live process: {pid: (parent pid, start time)}."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                found[int(name)] = st
    return found


def _grow(tree):
    """tree ({pid: start time}) with every live descendant of its live members added; the members
    that are gone dropped."""
    procs = _processes()
    tree = {pid: t for pid, t in tree.items() if procs.get(pid, (None, None))[1] == t}
    added = True
    while added:
        added = False
        for pid, (ppid, t) in procs.items():
            if ppid in tree and pid not in tree:
                tree[pid] = t
                added = True
    return tree


def _signal(tree, sig):
    for pid, t in tree.items():
        st = _stat(pid)
        if st is not None and st[1] == t:
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def end_tree(proc, grace):
    """End proc's process group and every descendant it has (see the module's docstring), reap it."""
    def group(sig):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass

    root = _stat(proc.pid) if os.path.isdir("/proc/self") else None
    tree = _grow({proc.pid: root[1]}) if root else {}
    group(signal.SIGTERM)
    _signal(tree, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (proc.poll() is None or tree):
        time.sleep(POLL)
        if tree:
            tree = _grow(tree)
    if tree:
        for _ in range(ROUNDS):   # frozen, a tree cannot grow: kill it once it stops growing
            frozen = set(tree)
            _signal(tree, signal.SIGSTOP)
            tree = _grow(tree)
            if set(tree) <= frozen:
                break
    group(signal.SIGKILL)
    _signal(tree, signal.SIGKILL)
    proc.wait()
    _gone(tree)


def _gone(tree, bound=5.0):
    """Wait (bounded) until the killed members have died: SIGKILL is delivered when the kernel next
    runs them, so on a loaded machine they can still look alive just after it was sent, and a
    caller that reports the step ended must not leave them running behind it."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline and any((_stat(pid) or (None, None))[1] == t for pid, t in tree.items()):
        time.sleep(POLL / 5)
