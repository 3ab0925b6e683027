"""The plan call: take the lock (settling an operation whose laptop is gone first) and read the releases."""

import hashlib
import os
import platform
import shutil
import subprocess
import sys

from . import calls, dbwhere, dumps, lock, ports, store, units
from .holder import abandon
from .interpreter import PYTHON
from .wire import Refused


def plan(a: calls.Plan):
    root = a.root
    if not os.path.isdir(store.releases_dir(root)):
        raise Refused("no-layout", f"{store.releases_dir(root)} does not exist")
    took_over = None
    if a.lock is not None:
        holder = lock.take(root, a.lock)
        if holder is not None and lock.orphaned(root):
            # its laptop's connection is gone and nothing of it runs: the host settles it, and
            # this operation goes on (holder.py)
            took_over = abandon(root, holder.get("token"), why="its laptop's connection was gone")
            took_over["holder"] = holder
            holder = lock.take(root, a.lock)
        if holder is not None:
            raise Refused("locked", "another operation holds the lock", holder=holder)
        lock.mark_holding(root)   # this process: main.py keeps it as the holder (holder.py)
    rels = store.listing(root)
    st = os.statvfs(root)
    return {"releases": rels, "current": store.current_number(root), "next": store.next_number(root, rels),
            "env_file": os.path.exists(a.env_file), "uv": shutil.which("uv") is not None,
            "disk_free": st.f_bavail * st.f_frsize, "units": {u: units.state(u) for u in a.units},
            # for the laptop's plan-time refusals (ayna_fab/ops/planchecks.py): the database's engine
            # (a backup must be possible before migrate) and setup's uv config (Layout.uv_config)
            "database": dumps.engine(a.env_file), "uv_config": _digest(os.path.join(root, UV_CONFIG)),
            "took_over": took_over, "python": python_version(),
            # whether locked packages without a wheel for this machine can be built here
            "machine": platform.machine(), "compiler": shutil.which("cc") is not None,
            # where the database lives, for a fleet deploy's check that its hosts share one (ops/dbshare.py)
            "database_at": dbwhere.where(a.env_file),
            # who listens on the project's ports (provision/hostports.py judges)
            "ports": ports.listeners(calls.Ports(ports=a.ports, sockets=a.sockets))}


def python_version():
    """PYTHON's version ("3.11.2"), or None when the host has none."""
    if os.path.realpath(sys.executable) == os.path.realpath(PYTHON):
        return "%d.%d.%d" % sys.version_info[:3]
    try:
        p = subprocess.run([PYTHON, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                           capture_output=True, text=True)
    except OSError:
        return None
    return p.stdout.strip() or None


UV_CONFIG = "uv.toml"   # in the project's directory; Layout.uv_config names the same file


def _digest(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None
