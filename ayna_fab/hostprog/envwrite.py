"""Replacing the project's env file, as the deploy user, under the operation's lock.

The file is root's (docs/security.md): the new text goes to the project's env writer, the one
program sudo lets the deploy user run on it, which checks it again and renames it into place.
The answer names the keys that differ, never a value.
"""

import subprocess
import sys

from . import calls, envfile, lock
from .wire import Refused


def _keys(data):
    try:
        return envfile.parse(data.decode("utf-8", "surrogateescape"))
    except ValueError as e:
        raise Refused("invalid", f"the new env file would not load in systemd: {e}")


def _current(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Refused("env", f"cannot read {path}: {e.strerror}")


def replace(a: calls.EnvWrite):
    lock.require(a.root, a.token)
    new = sys.stdin.buffer.read()
    after = _keys(new)
    envfile.MASK.add(envfile.secrets(after))   # the new values are as secret as the old ones
    old = _current(a.env_file)
    try:
        before = envfile.parse(old.decode("utf-8", "surrogateescape")) if old is not None else {}
    except ValueError:   # a file systemd refuses: every key of the new one counts as added
        before = {}
    keys = {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
            "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k])}
    if old == new:
        return {"written": False, "keys": keys}
    p = subprocess.run(["sudo", "-n", a.writer], input=new, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise Refused("writer", f"{a.writer} exited {p.returncode}: "
                      + p.stdout.decode("utf-8", "replace").strip()[-500:])
    return {"written": True, "keys": keys}
