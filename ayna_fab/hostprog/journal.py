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
from dataclasses import fields

from . import calls, store

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
    """The journal if it belongs to the operation holding token. One that cannot be acted on (it
    does not parse, or its call is not an activation's: a hand edit, a truncated file) is set
    aside and reported in the deploy log, never fatal: the caller goes on as with no journal."""
    data = read(root)
    if data is None:
        if os.path.exists(path(root)) and _unparsable(root):
            set_aside(root, "it does not parse as JSON")
        return None
    if data.get("token") != token:
        return None
    problem = _problem(data)
    if problem:
        set_aside(root, problem)
        return None
    return data


def _unparsable(root):
    try:
        with open(path(root)) as f:
            json.load(f)
        return False
    except ValueError:
        return True
    except OSError:
        return False   # unreadable now is not proof of a bad file


ACTIVATE_FIELDS = {f.name for f in fields(calls.Activate)}


def _problem(data):
    """Why a journal cannot be acted on, or None."""
    call = data.get("call")
    if not isinstance(call, dict) or set(call) != ACTIVATE_FIELDS:
        return "its call is not an activation's"
    if not isinstance(data.get("number"), int) or not isinstance(data.get("steps", []), list):
        return "its release number or steps are malformed"
    return None


def set_aside(root, why):
    """Move an unusable journal out of the way (kept beside it for a person) and say so in the log."""
    aside = f"{path(root)}.unusable-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    try:
        os.replace(path(root), aside)
    except OSError:
        return
    store.append_log(root, {"event": "activation-journal", "result": "set-aside", "file": aside,
                            "reason": f"{NAME} was set aside: {why}; check the live release (fab status)",
                            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

