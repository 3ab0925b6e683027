"""The hosts' shared, read-only root filesystem: built once with debootstrap, then cached.

Hosts never write to it: each boots through an overlay of its own. The root filesystem
must not depend on the machine that builds it, so every choice a package would take
from that machine is made here instead:

- ports: Debian's postgresql creates its cluster on the first *free* port, seen from
  the builder's network. The packages are therefore configured (debootstrap's second
  stage) in a network namespace of their own, with nothing bound, and the ports are then
  written explicitly (PostgreSQL 5432, Redis 6379) and checked;
- locale and time zone: the build runs with LANG/LC_ALL=C.UTF-8 and TZ=Etc/UTC, which
  initdb records in the cluster, and the files that name them are written;
- hostname, machine-id, /etc/resolv.conf, ssh host keys: debootstrap copies or makes
  them from the builder; they are removed or replaced, and each host gets its own at boot;
- file modes: the build runs with umask 022 whatever the caller's.

The directory's name carries the recipe's version, so a new recipe never touches a root
filesystem that hosts may still run from; older ones are removed once no overlay uses them.
A cache is checked whenever it is used (stamp, ports, locale, time zone), and one that
fails is rebuilt with one line saying why.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from ayna_fab import local
from ayna_fab.errors import UsageError

from . import commands
from .settings import PACKAGES, ROOTFS_RECIPE as RECIPE_VERSION, WHEELHOUSE_MOUNT, SandboxSettings

STAMP = ".ayna-fab-rootfs"
POSTGRES_PORT = 5432
REDIS_PORT = 6379
LOCALE = "C.UTF-8"
TIME_ZONE = "Etc/UTC"

# The environment of every build command: nothing taken from the caller's.
BUILD_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": LOCALE, "LC_ALL": LOCALE,
    "TZ": TIME_ZONE, "DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NONINTERACTIVE_SEEN": "true",
}

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

RESOLV_CONF = "# sandbox hosts have no network beyond their own loopback, so no resolver\n"

Builder = Callable[[Path, SandboxSettings], None]


def recipe() -> str:
    return f"recipe={RECIPE_VERSION} packages={','.join(PACKAGES)}"


# ---- checking a cache ---------------------------------------------------------------------

def _setting(path: Path, pattern: str) -> str | None:
    """The last value a config file sets with pattern (one group), or None."""
    found = None
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(pattern, line)
        if m:
            found = m.group(1)
    return found


def _postgres_conf(root: Path) -> Path | None:
    confs = sorted(root.glob("etc/postgresql/*/main/postgresql.conf"))
    return confs[-1] if confs else None


def codename(root: Path) -> str | None:
    """The Debian release the root filesystem holds (os-release's VERSION_CODENAME)."""
    try:
        return _setting(root / "etc/os-release", r"^VERSION_CODENAME=(\S+)")
    except OSError:
        return None


def problem(root: Path, suite: str | None = None) -> str | None:
    """Why the root filesystem at root cannot be used as it is (for suite, when given), or None if it can."""
    if not root.is_dir():
        return "it does not exist"
    if suite is not None and codename(root) != suite:
        return f"it holds Debian {codename(root) or 'of no known release'}, not {suite}"
    try:
        stamp = (root / STAMP).read_text().strip()
    except OSError:
        stamp = None
    if stamp is None:
        return "it has no stamp (a build that did not finish?)"
    services = service_problem(root)
    if stamp != recipe():
        made = re.match(r"recipe=(\S+)", stamp)
        old = f"recipe {made.group(1)}" if made else "another recipe"
        return f"it was made by an earlier build ({old}, now {RECIPE_VERSION})" + (f": {services}" if services else "")
    return services


def service_problem(root: Path) -> str | None:
    """What in root's configuration would not listen, or not behave, as the sandbox expects."""
    conf = _postgres_conf(root)
    if conf is None:
        return "it has no PostgreSQL cluster"
    try:
        port = _setting(conf, r"^\s*port\s*=\s*(\d+)")
        tz = _setting(conf, r"^\s*timezone\s*=\s*'([^']*)'")
        lc = _setting(conf, r"^\s*lc_messages\s*=\s*'([^']*)'")
        redis = _setting(root / "etc/redis/redis.conf", r"^\s*port\s+(\d+)")
    except OSError as exc:
        return f"its service configuration cannot be read ({exc})"
    if port != str(POSTGRES_PORT):
        return f"its PostgreSQL listens on {port}, not {POSTGRES_PORT}"
    if redis != str(REDIS_PORT):
        return f"its Redis listens on {redis}, not {REDIS_PORT}"
    if tz != TIME_ZONE:
        return f"its PostgreSQL time zone is {tz!r}, not {TIME_ZONE!r}"
    if lc != LOCALE:
        return f"its PostgreSQL locale is {lc!r}, not {LOCALE!r}"
    return None


# ---- using a cache ------------------------------------------------------------------------

def overlay_lowers(mountinfo: Path = Path("/proc/self/mountinfo")) -> set[str]:
    """Every directory an overlay mount on this machine uses as a lower layer."""
    lowers: set[str] = set()
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        if not right.startswith("overlay "):
            continue
        for opt in right.split()[-1].split(","):
            if opt.startswith("lowerdir="):
                lowers.update(opt[len("lowerdir="):].split(":"))
    return lowers


def ensure(settings: SandboxSettings, say: Callable[[str], None], *, rebuild: bool = False,
           builder: Builder | None = None, in_use: Callable[[], set[str]] = overlay_lowers) -> bool:
    """Make sure a usable root filesystem exists; True if it had to be built.

    A cache that fails its check (an earlier recipe, a service on the wrong port, ...) is
    rebuilt, with one line saying why. Root filesystems of earlier recipes are removed
    once no host runs from them.
    """
    cache = settings.rootfs_cache
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "rootfs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `up`s at once build it once
        root = settings.rootfs_dir
        why = "a rebuild was asked for" if rebuild else problem(root, settings.suite)
        if why is None:
            _prune_older(root, in_use, say)
            return False
        if root.exists():
            if str(root) in in_use():
                raise UsageError(f"the cached root filesystem {root} cannot be used: {why}; "
                                 "sandbox hosts are running from it", step="sandbox rootfs",
                                 hint="stop them (fab sandbox.down, with the same AYNA_FAB_SANDBOX_* settings), "
                                      "then run sandbox.up again: it rebuilds by itself")
            say(f"rebuilding the root filesystem {root.name}: {why}")
        else:
            older = _older(root)
            reason = f"; the cached {older[0].name} is not used: {problem(older[0])}" if older else ""
            say(f"building the {root.name} root filesystem with debootstrap (a minute or two, once){reason}")
        started = time.monotonic()
        tmp = root.with_name(root.name + ".building")
        shutil.rmtree(tmp, ignore_errors=True)
        (builder or build)(tmp, settings)
        left = problem(tmp, settings.suite)
        if left is not None:
            raise UsageError(f"the root filesystem just built is not as the sandbox needs: {left}",
                             step="sandbox rootfs", hint=f"see {tmp}; report this as a bug")
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
        say(f"root filesystem ready in {time.monotonic() - started:.0f}s")
        _prune_older(root, in_use, say)
        return True


def _older(root: Path) -> list[Path]:
    """Root filesystems of other recipes for the same suite and machine, newest first."""
    base = root.name.rsplit("-r", 1)[0]
    found = [p for p in root.parent.glob(base + "*")
             if p.is_dir() and p != root and not p.name.endswith(".building")
             and (p.name == base or re.fullmatch(re.escape(base) + r"-r\d+", p.name))]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _prune_older(root: Path, in_use: Callable[[], set[str]], say: Callable[[str], None]) -> None:
    older = _older(root)
    if not older:
        return
    used = in_use()
    for path in older:
        if str(path) not in used:
            shutil.rmtree(path, ignore_errors=True)
            say(f"removed {path.name}, a root filesystem of an earlier recipe")


# ---- building -----------------------------------------------------------------------------

@contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def build(target: Path, settings: SandboxSettings) -> None:
    """debootstrap in two stages: download with the network, configure without it."""
    hint = f"check that {settings.mirror} is reachable (set AYNA_FAB_DEBIAN_MIRROR)"
    with _umask(0o022):
        settings.debs_dir.mkdir(parents=True, exist_ok=True)
        local.run(commands.debootstrap(target, settings.mirror, cache_dir=settings.debs_dir, suite=settings.suite),
                  step="sandbox rootfs", timeout=1800, hint=hint, env=BUILD_ENV)
        # Package scripts run here: in a network namespace of their own, nothing on this
        # machine's ports can push PostgreSQL's cluster off 5432.
        local.run(commands.second_stage(target), step="sandbox rootfs", timeout=1800, env=BUILD_ENV,
                  hint=f"see {target}/debootstrap/debootstrap.log")
        customise(target)
        (target / STAMP).write_text(recipe() + "\n")


def _set(path: Path, pattern: str, line: str) -> None:
    """Make the config file at path set one value, replacing every line that matches."""
    lines = path.read_text().splitlines()
    kept = [ln for ln in lines if not re.match(pattern, ln)]
    path.write_text("\n".join(kept + [line]) + "\n")


def customise(root: Path) -> None:
    """What every host shares, with nothing left that came from the building machine."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # each host gets keys of its own at boot
    (root / "etc/ssh/sshd_config.d/ayna-sandbox.conf").write_text(SSHD_CONFIG)
    (root / "etc/pip.conf").write_text(PIP_CONF)
    (root / "etc/uv").mkdir(exist_ok=True)
    (root / "etc/uv/uv.toml").write_text(UV_TOML)
    (root / "etc/machine-id").write_text("")  # each host gets its own identity
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
        dbus_id.symlink_to("/etc/machine-id")
    (root / "etc/hostname").unlink(missing_ok=True)
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    resolv.write_text(RESOLV_CONF)
    (root / "etc/timezone").write_text(TIME_ZONE + "\n")
    localtime = root / "etc/localtime"
    localtime.unlink(missing_ok=True)
    localtime.symlink_to(f"/usr/share/zoneinfo/{TIME_ZONE}")
    (root / "etc/default").mkdir(exist_ok=True)
    (root / "etc/default/locale").write_text(f"LANG={LOCALE}\n")
    conf = _postgres_conf(root)
    if conf is not None:
        _set(conf, r"^\s*#?\s*port\s*=", f"port = {POSTGRES_PORT}")
    redis = root / "etc/redis/redis.conf"
    if redis.exists():
        _set(redis, r"^\s*port\s", f"port {REDIS_PORT}")
    (root / WHEELHOUSE_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
