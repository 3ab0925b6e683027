"""Where the sandbox keeps its files and how its hosts are named and numbered.

Every knob has an environment variable so tests can run a sandbox of their own
beside a user's (other directory, name prefix and ports) without clashing.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ayna_fab.errors import UsageError

SUITE = "bookworm"
# The Debian releases a sandbox may boot, and the python3 each ships (the hosts' wheels are for it).
SUITES = {"bookworm": "3.11", "trixie": "3.13"}
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# What every sandbox host has, on top of debootstrap's minbase.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "ca-certificates",
    "python3", "python3-venv", "rsync", "curl", "procps", "iproute2", "less",
    "postgresql", "redis-server", "caddy",
)

# The root filesystem's build recipe (sandbox/rootfs.py): bump it when that build changes.
# The cache directory's name carries it, so a new recipe never disturbs hosts running
# from an older root filesystem.
ROOTFS_RECIPE = 3

WHEELHOUSE_MOUNT = "/srv/wheelhouse"
BASE_REQUIREMENTS = Path(__file__).with_name("wheelhouse-base.txt")
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{1,9}$")


@dataclass(frozen=True)
class SandboxSettings:
    """Paths and names for one sandbox (a set of hosts managed together)."""

    state_dir: Path = Path("/var/lib/ayna-fab/sandbox")
    cache_dir: Path = Path("/var/cache/ayna-fab")
    prefix: str = "aynasbx"          # netns and machine names: aynasbx1, aynasbx2, ...
    ssh_port_base: int = 2200        # host i answers SSH on 127.0.0.1:(base + i)
    mirror: str = DEFAULT_MIRROR
    requirements: tuple[Path, ...] = field(default=(BASE_REQUIREMENTS,))
    rootfs_cache_dir: Path | None = None  # where the root filesystem lives; default cache_dir
    suite: str = SUITE               # the Debian release every host of this sandbox runs

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise UsageError(f"sandbox prefix {self.prefix!r} must be 2-10 lowercase letters/digits",
                             hint="set AYNA_FAB_SANDBOX_PREFIX to something like 'aynasbx'")
        if not 1024 <= self.ssh_port_base <= 65000:
            raise UsageError(f"sandbox SSH port base {self.ssh_port_base} is outside 1024-65000",
                             hint="set AYNA_FAB_SANDBOX_PORT_BASE to e.g. 2200")
        if self.suite not in SUITES:
            raise UsageError(f"sandbox suite {self.suite!r} is not one the sandbox can boot",
                             hint="set AYNA_FAB_SANDBOX_SUITE to one of " + ", ".join(SUITES))

    @classmethod
    def from_env(cls, **overrides) -> "SandboxSettings":
        env = os.environ
        s = cls(
            state_dir=Path(env.get("AYNA_FAB_SANDBOX_DIR", cls.state_dir)),
            cache_dir=Path(env.get("AYNA_FAB_CACHE_DIR", cls.cache_dir)),
            rootfs_cache_dir=Path(env["AYNA_FAB_ROOTFS_CACHE_DIR"]) if env.get("AYNA_FAB_ROOTFS_CACHE_DIR") else None,
            prefix=env.get("AYNA_FAB_SANDBOX_PREFIX", cls.prefix),
            ssh_port_base=int(env.get("AYNA_FAB_SANDBOX_PORT_BASE", cls.ssh_port_base)),
            mirror=env.get("AYNA_FAB_DEBIAN_MIRROR") or detect_mirror(),
            suite=env.get("AYNA_FAB_SANDBOX_SUITE") or SUITE,
        )
        return replace(s, **overrides) if overrides else s

    # Names and paths derived from the settings; one place so up and down agree.
    def host_name(self, index: int) -> str:
        return f"sandbox{index}"

    def machine_name(self, index: int) -> str:
        return f"{self.prefix}{index}"

    def ssh_port(self, index: int) -> int:
        return self.ssh_port_base + index

    def host_dir(self, index: int) -> Path:
        return self.state_dir / "hosts" / self.host_name(index)

    @property
    def rootfs_cache(self) -> Path:
        return self.rootfs_cache_dir or self.cache_dir

    @property
    def rootfs_dir(self) -> Path:
        return self.rootfs_cache / f"rootfs-{self.suite}-{platform.machine()}-r{ROOTFS_RECIPE}"

    @property
    def python_version(self) -> str:
        """The hosts' python3 (major.minor): the wheelhouse holds wheels for it."""
        return SUITES[self.suite]

    @property
    def debs_dir(self) -> Path:
        """debootstrap's package cache: a rebuild downloads only what changed."""
        return self.cache_dir / "debs"

    @property
    def wheelhouse_dir(self) -> Path:
        return self.cache_dir / "wheelhouse"

    @property
    def key_path(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def hosts_file(self) -> Path:
        return self.state_dir / "hosts.toml"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"


def detect_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt already uses here (a machine may only reach its own)."""
    candidates = sorted(sources_dir.glob("sources.list.d/*.sources")) + [sources_dir / "sources.list"]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            m = re.match(r"^URIs:\s*(\S+)", line) or re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", line)
            if m and "security" not in m.group(1) and m.group(1).startswith(("http://", "https://")):
                return m.group(1).rstrip("/")
    return DEFAULT_MIRROR
