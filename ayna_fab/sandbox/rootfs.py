"""The hosts' shared, read-only root filesystem: built once with debootstrap, then cached.

Hosts never write to it: each boots through an overlay of its own. A stamp file
records the recipe, so changing the package list or the customisation rebuilds it.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ayna_fab import local

from . import commands
from .settings import PACKAGES, WHEELHOUSE_MOUNT, SandboxSettings

# Bump when customise() changes, so cached root filesystems are rebuilt.
RECIPE_VERSION = 1
STAMP = ".ayna-fab-rootfs"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

SSHD_CONFIG = """\
# ayna-fab sandbox: a host as a provider hands it over. Keys only; root by key only.
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
"""

PIP_CONF = f"""\
# No internet here: packages come from the wheelhouse, as from a company's private index.
[global]
no-index = true
find-links = {WHEELHOUSE_MOUNT}
"""

UV_TOML = f"""\
# No internet here: packages come from the wheelhouse, as from a company's private index.
no-index = true
find-links = ["{WHEELHOUSE_MOUNT}"]
"""


def recipe() -> str:
    return f"recipe={RECIPE_VERSION} packages={','.join(PACKAGES)}"


def is_current(root: Path) -> bool:
    try:
        return (root / STAMP).read_text().strip() == recipe()
    except OSError:
        return False


def ensure(settings: SandboxSettings, say: Callable[[str], None]) -> bool:
    """Make sure an up-to-date root filesystem exists; True if it had to be built."""
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.cache_dir / "rootfs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `up`s at once build it once
        root = settings.rootfs_dir
        if is_current(root):
            return False
        say(f"building the {root.name} root filesystem with debootstrap (about a minute, once)")
        started = time.monotonic()
        tmp = root.with_name(root.name + ".building")
        shutil.rmtree(tmp, ignore_errors=True)
        local.run(commands.debootstrap(tmp, settings.mirror), step="sandbox rootfs", timeout=1800,
                  hint=f"check that {settings.mirror} is reachable (set AYNA_FAB_DEBIAN_MIRROR)")
        customise(tmp)
        (tmp / STAMP).write_text(recipe() + "\n")
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
        say(f"root filesystem ready in {time.monotonic() - started:.0f}s")
        return True


def customise(root: Path) -> None:
    """What every host shares: strict sshd, offline package index, the machine's CA bundle."""
    if CA_BUNDLE.exists():  # so TLS inside hosts trusts what the controller trusts
        shutil.copy2(CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # each host gets keys of its own at boot
    (root / "etc/ssh/sshd_config.d/ayna-sandbox.conf").write_text(SSHD_CONFIG)
    (root / "etc/pip.conf").write_text(PIP_CONF)
    (root / "etc/uv").mkdir(exist_ok=True)
    (root / "etc/uv/uv.toml").write_text(UV_TOML)
    (root / "etc/machine-id").write_text("")  # each host gets its own identity
    (root / "etc/hostname").unlink(missing_ok=True)
    (root / WHEELHOUSE_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
