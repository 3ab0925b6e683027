"""The activation journal: what an activation set out to do and how far it got.

One file per project (activation.json in its directory), written by the detached
worker that carries an activation to its end (switchover.py) and read by whoever
comes later: the call that follows it, a laptop that reattaches, `status`, and the
host itself when the operation's controller went away (holder.py, plan). It holds
the whole call, so a worker that died can be finished by someone else.
"""

import json
import os
import time

NAME = "activation.json"


def path(root):
    return os.path.join(root, NAME)


def read(root):
    """The journal, or None (never written, or unreadable)."""
    try:
        with open(path(root)) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def write(root, data):
    """Replace the journal atomically: a reader sees the old one or the new one, never half."""
    tmp = f"{path(root)}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, sort_keys=True)
    os.replace(tmp, path(root))


def update(root, **changes):
    data = read(root) or {}
    data.update(changes, updated=time.time())
    write(root, data)
    return data


def add_step(root, name, seconds, ok=True):
    """Record a finished step: followers relay it as an `@@step` line."""
    data = read(root) or {}
    data.setdefault("steps", []).append([name, round(seconds, 3), bool(ok)])
    data["updated"] = time.time()
    write(root, data)


def of(root, token):
    """The journal if it belongs to the operation holding token."""
    data = read(root)
    return data if data and data.get("token") == token else None

