"""The deploy lock: one per project, a directory made atomically, with its holder's record.

Taken by deploys, rollbacks, migrate and restore; its token is the proof of
ownership every later call of the same operation presents.
"""

import json
import os
import shutil

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
    h = holder(root)
    return bool(h) and token is not None and h.get("token") == token


def release(root, token, force=False):
    """Remove the lock if token holds it (or force): "released", "not-locked" or "held-by-other"."""
    h = holder(root)
    if h is None:
        return "not-locked"
    if not force and h.get("token") != token:
        return "held-by-other"
    shutil.rmtree(path(root), ignore_errors=True)
    return "released"
