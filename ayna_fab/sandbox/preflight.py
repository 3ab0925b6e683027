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
