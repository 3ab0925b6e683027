"""What the controller needs before any sandbox work starts, checked up front."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ayna_fab.errors import UsageError

# command -> the Debian package that provides it
TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
    "unshare": "util-linux",
}


def missing_tools(which=shutil.which) -> dict[str, str]:
    return {cmd: pkg for cmd, pkg in TOOLS.items() if which(cmd) is None}


def check(platform: str = sys.platform, euid: int | None = None, which=shutil.which,
          filesystems: Path = Path("/proc/filesystems")) -> None:
    if platform != "linux":
        raise UsageError(f"sandbox hosts need Linux (systemd-nspawn, network namespaces); this is {platform}",
                         step="sandbox preflight", hint="run the sandbox on a Debian machine or VM")
    if (os.geteuid() if euid is None else euid) != 0:
        raise UsageError("sandbox hosts need root: they create network namespaces, mounts and containers",
                         step="sandbox preflight", hint="run it as root, e.g. sudo -E fab sandbox.up")
    missing = missing_tools(which)
    if missing:
        pkgs = " ".join(sorted(set(missing.values())))
        raise UsageError(f"missing commands: {', '.join(sorted(missing))}", step="sandbox preflight",
                         hint=f"apt-get install -y {pkgs}")
    try:
        has_overlay = "overlay" in filesystems.read_text()
    except OSError:
        has_overlay = False
    if not has_overlay:
        raise UsageError("the kernel does not offer overlayfs, which gives each host its own writes",
                         step="sandbox preflight", hint="modprobe overlay")


# inotify instances a booted host takes (systemd, journald, logind, dbus, sshd, ...): 7 measured
# on an idle host, about 8 once its services run; the kernel's default limit, 128 per user, so
# holds about fifteen hosts beside whatever else root runs.
INOTIFY_PER_HOST = 10
INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")


def inotify_in_use(proc: Path = Path("/proc")) -> int:
    """inotify instances open on this machine now (all of them root's when the sandbox runs)."""
    count = 0
    for fd in proc.glob("[0-9]*/fd/*"):
        try:
            count += os.readlink(fd) == "anon_inode:inotify"
        except OSError:   # a process or descriptor gone meanwhile
            continue
    return count


def check_inotify(new_hosts: int, limit: int | None = None, in_use: int | None = None) -> None:
    """Room for the hosts about to boot: past the limit their systemd fails units (console-getty
    first) and the boot is reported degraded."""
    if new_hosts < 1:
        return
    limit = int(INOTIFY_LIMIT.read_text()) if limit is None else limit
    in_use = inotify_in_use() if in_use is None else in_use
    need = in_use + new_hosts * INOTIFY_PER_HOST
    if need > limit:
        raise UsageError(f"{new_hosts} more host(s) need about {new_hosts * INOTIFY_PER_HOST} inotify instances; "
                         f"{in_use} of the limit of {limit} are in use", step="sandbox preflight",
                         hint=f"sysctl -w fs.inotify.max_user_instances={max(1024, need)}")
