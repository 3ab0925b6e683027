"""The deploy lock: one per project, a directory made atomically, with its holder's record.

Taken by deploys, rollbacks, migrate and restore; its token is the proof of
ownership every later call of the same operation presents. Liveness is judged
here, on the host, never from the laptop's pid or hostname: every call of the
operation touches the record (a heartbeat), and a step that runs long marks
itself in the lock (`working`) for as long as its process lives. A lock with a
live worker is never released, not even by force: the work ends first.
"""

import json
import os
import shutil
import time
from contextlib import contextmanager

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
        return holder(root) or {}
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


def _start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def mark_working(root, what):
    """Mark this process as doing `what` under the lock (the mark dies with the process)."""
    pid = os.getpid()
    try:
        with open(os.path.join(path(root), f"worker-{pid}.json"), "w") as f:
            json.dump({"pid": pid, "start": _start_time(pid), "what": what, "since": time.time()}, f)
    except OSError:
        pass


@contextmanager
def working(root, what):
    """Mark this process as doing `what` under the lock, for as long as it runs."""
    pid = os.getpid()
    marker = os.path.join(path(root), f"worker-{pid}.json")
    try:
        with open(marker, "w") as f:
            json.dump({"pid": pid, "start": _start_time(pid), "what": what, "since": time.time()}, f)
    except OSError:
        marker = None
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
    found = []
    try:
        names = [n for n in os.listdir(path(root)) if n.startswith("worker-")]
    except OSError:
        return found
    for name in names:
        try:
            with open(os.path.join(path(root), name)) as f:
                w = json.load(f)
        except (OSError, ValueError):
            continue
        if w.get("start") and _start_time(w["pid"]) == w["start"]:
            found.append({"pid": w["pid"], "what": w.get("what"), "seconds": round(time.time() - w["since"])})
    return found


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
    return {**h, "idle_seconds": idle, "workers": workers(root)}


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
