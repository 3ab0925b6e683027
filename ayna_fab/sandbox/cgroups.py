"""A cgroup of its own for each sandbox host.

The controller need not run systemd, and nspawn with --keep-unit leaves the
container in the cgroup of whoever started it. Two containers started from one
shell would then share a cgroup, and their systemd instances would create the
same unit cgroups (system.slice/ssh.service, ...) in one place and trip over
each other (units failing with status 219/CGROUP). So each host's nspawn is
moved into ayna-fab/<machine> in every cgroup hierarchy systemd uses, before it
starts.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = "ayna-fab"


def hierarchies(root: Path = ROOT) -> list[Path]:
    """The hierarchies systemd tracks processes in: unified (v2), or name=systemd + unified (hybrid)."""
    if (root / "cgroup.controllers").exists():
        return [root]
    return [h for h in (root / "systemd", root / "unified") if (h / "cgroup.procs").exists()]


def paths(machine: str, root: Path = ROOT) -> list[Path]:
    return [h / PARENT / machine for h in hierarchies(root)]


def create(machine: str, root: Path = ROOT) -> list[Path]:
    dirs = paths(machine, root)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def enter(dirs: list[Path]) -> None:
    """Move the calling process into dirs; meant for a child between fork and exec."""
    for d in dirs:
        with open(d / "cgroup.procs", "w") as f:
            f.write(str(os.getpid()))


def remove(machine: str, root: Path = ROOT) -> None:
    """Remove the host's cgroups, innermost first (cgroup directories go by rmdir only)."""
    for top in paths(machine, root):
        if not top.exists():
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
        try:
            top.parent.rmdir()  # ayna-fab/, once no host is left in it
        except OSError:
            pass
