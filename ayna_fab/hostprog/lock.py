"""The deploy lock: one per project, a directory made atomically, with its holder's record.

Taken by deploys, rollbacks, migrate and restore; its token is the proof of
ownership every later call of the same operation presents. Liveness is judged
here, on the host, never from the laptop's pid or hostname: every call of the
operation touches the record (a heartbeat), and a step that runs long marks
itself in the lock (`working`) for as long as its process lives. A lock with a
live worker is never released, not even by force: the work ends first. Deploys
and rollbacks also keep a holder on the host for as long as the laptop's
connection lives (holder.py): when it closes, the host finishes or abandons the
operation itself.
"""

import json
import os
import shutil
import time
from contextlib import contextmanager

from .wire import Refused

LOCK = ".deploy-lock"
OWNER = "owner.json"


def path(root):
    return os.path.join(root, LOCK)


def holder(root):
    """The holder's record, {} if unreadable, or None when the project is not locked."""
    if not os.path.isdir(path(root)):
        return None
    try:
        with open(os.path.join(path(root), OWNER)) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def take(root, owner):
    """Take the lock for owner (a dict with a token); None on success, else the holder."""
    try:
        os.mkdir(path(root), 0o700)
    except FileExistsError:
        # Its taker writes the record just after making the directory: a moment's wait lets the
        # refusal name who holds the lock (a taker that died in between leaves none: {}).
        deadline = time.monotonic() + 1.0
        while True:
            h = holder(root)
            if h or time.monotonic() > deadline:
                return h or {}
            time.sleep(0.02)
    tmp = os.path.join(path(root), f"{OWNER}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(owner, f, sort_keys=True)
    os.replace(tmp, os.path.join(path(root), OWNER))
    return None


def holds(root, token):
    """Whether token holds the lock; touches the record (the operation is alive)."""
    h = holder(root)
    ok = bool(h) and token is not None and h.get("token") == token
    if ok:
        try:
            os.utime(os.path.join(path(root), OWNER))
        except OSError:
            pass
    return ok


def start_time(pid):
    """The process's start time (from /proc): with its pid, it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(pid, start):
    """Whether process pid, started at start, still runs (a pid reused since is another process)."""
    return start is not None and start_time(pid) == start


def _mark(root, kind, what, pid=None):
    """A marker file for process pid (this one by default) in the lock: it counts for as long as
    that process lives."""
    pid = pid or os.getpid()
    marker = os.path.join(path(root), f"{kind}-{pid}.json")
    try:
        with open(marker, "w") as f:
            json.dump({"pid": pid, "start": start_time(pid), "what": what, "since": time.time()}, f)
    except OSError:
        return None
    return marker


def _live(root, kind):
    """The processes marked as kind in the lock that still run: [{"pid", "what", "seconds"}]."""
    found = []
    try:
        names = [n for n in os.listdir(path(root)) if n.startswith(kind + "-")]
    except OSError:
        return found
    for name in names:
        try:
            with open(os.path.join(path(root), name)) as f:
                w = json.load(f)
        except (OSError, ValueError):
            continue
        if alive(w["pid"], w.get("start")):
            found.append({"pid": w["pid"], "what": w.get("what"), "seconds": round(time.time() - w["since"])})
    return found


def mark_working(root, what, pid=None):
    """Mark this process (or pid) as doing `what` under the lock (the mark dies with the process)."""
    _mark(root, "worker", what, pid)


@contextmanager
def working(root, what):
    """Mark this process as doing `what` under the lock, for as long as it runs."""
    marker = _mark(root, "worker", what)
    try:
        yield
    finally:
        if marker:
            try:
                os.unlink(marker)
            except OSError:
                pass


def workers(root):
    """The steps still running under the lock: [{"pid", "what", "seconds"}] of live processes."""
    return _live(root, "worker")


def mark_holding(root):
    """Mark this process as the holder's presence on the host: it lives as long as the laptop's
    connection (holder.py), so the host knows at once when the operation's controller is gone."""
    return _mark(root, "holder", "connection")


def unmark_holding(root):
    try:
        os.unlink(os.path.join(path(root), f"holder-{os.getpid()}.json"))
    except OSError:
        pass


def holders(root):
    return _live(root, "holder")


def had_holder(root):
    """Whether the operation ever kept a holder here (a lock from before holders has none)."""
    try:
        return any(n.startswith("holder-") for n in os.listdir(path(root)))
    except OSError:
        return False


def orphaned(root):
    """A lock whose operation is gone: its holder's connection closed and nothing of it runs."""
    return had_holder(root) and not holders(root) and not workers(root)


def inspect(root):
    """The holder's record with what the host knows of its liveness: seconds since the operation
    last touched it, and its steps still running. None when not locked."""
    h = holder(root)
    if h is None:
        return None
    try:
        idle = round(time.time() - os.stat(os.path.join(path(root), OWNER)).st_mtime)
    except OSError:
        idle = None
    return {**h, "idle_seconds": idle, "workers": workers(root), "connected": bool(holders(root)),
            "orphaned": orphaned(root)}


def release(root, token, force=False):
    """Remove the lock if token holds it (or force), unless a step of it still runs:
    "released", "not-locked", "held-by-other" or "busy"."""
    h = holder(root)
    if h is None:
        return "not-locked"
    if not force and h.get("token") != token:
        return "held-by-other"
    if [w for w in workers(root) if w["pid"] != os.getpid()]:
        return "busy"
    shutil.rmtree(path(root), ignore_errors=True)
    return "released"


def require(root, token):
    """Every changing call of an operation first checks that its lock is still its own."""
    if not holds(root, token):
        raise Refused("lock-lost", "this operation no longer holds the deploy lock (it was removed or "
                      "taken by another operation); stopping here", holder=holder(root))
