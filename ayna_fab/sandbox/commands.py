"""Every local command the sandbox runs, built as argument lists (no I/O here).

Keeping them pure lets `--dry-run`-style listings and unit tests see exactly
what would run on the controller.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .settings import PACKAGES, SUITE, WHEELHOUSE_MOUNT

Argv = list[str]


class Service(NamedTuple):
    """A service every sandbox host runs: its name, port, unit and a shell probe that exits 0."""

    name: str
    port: int
    unit: str
    probe: str


def probe_services(services: tuple[Service, ...], timeout: int) -> str:
    """A host-side shell loop: exit 0 once every service answers, else print the first
    that still does not after timeout seconds and exit 1."""
    checks = "".join(f'[ -z "$failed" ] && {{ {s.probe}; }} >/dev/null 2>&1 || failed="${{failed:-{s.name}}}"; '
                     for s in services)
    return (f"for i in $(seq {timeout * 5}); do failed=''; {checks}"
            f'[ -z "$failed" ] && exit 0; sleep 0.2; done; echo "$failed"; exit 1')


def debootstrap(target: Path, mirror: str, packages: tuple[str, ...] = PACKAGES,
                cache_dir: Path | None = None, suite: str = SUITE) -> Argv:
    """debootstrap's first stage: download and unpack, no package script runs yet."""
    argv = ["debootstrap", "--foreign", "--variant=minbase", f"--include={','.join(packages)}"]
    if cache_dir is not None:
        argv.append(f"--cache-dir={cache_dir}")
    return argv + [suite, str(target), mirror]


def second_stage(target: Path) -> Argv:
    """debootstrap's second stage (package scripts) in a new network namespace, loopback up.

    Nothing the building machine listens on is seen there: Debian's postgresql picks
    the first free port for its cluster, which is then 5432 whatever runs here.
    """
    return ["unshare", "--net", "--", "sh", "-c",
            'ip link set lo up && exec chroot "$1" /debootstrap/debootstrap --second-stage',
            "second-stage", str(target)]


def mount_overlay(lower: Path, upper: Path, work: Path, merged: Path) -> Argv:
    return ["mount", "-t", "overlay", "overlay",
            "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)]


def umount(path: Path) -> Argv:
    return ["umount", str(path)]


def netns_add(name: str) -> Argv:
    return ["ip", "netns", "add", name]


def netns_loopback_up(name: str) -> Argv:
    return ["ip", "-n", name, "link", "set", "lo", "up"]


def netns_delete(name: str) -> Argv:
    return ["ip", "netns", "delete", name]


def nspawn_boot(root: Path, machine: str, hostname: str, wheelhouse: Path) -> Argv:
    """Boot real systemd as PID 1, in the given network namespace, wheelhouse read-only.

    --register=no/--keep-unit: the controller need not run systemd/machined itself.
    SIGTERM to this process makes nspawn ask the container's systemd to power off.
    """
    return ["systemd-nspawn", "--quiet", "--boot",
            f"--directory={root}", f"--machine={machine}", f"--hostname={hostname}",
            "--register=no", "--keep-unit", "--console=read-only",
            f"--network-namespace-path=/run/netns/{machine}",
            f"--bind-ro={wheelhouse}:{WHEELHOUSE_MOUNT}"]


def ssh_keygen(path: Path, comment: str) -> Argv:
    return ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]


def pip_download(python: str, dest: Path, requirements: list[Path], machine: str,
                 python_version: str = "3.11") -> Argv:
    """Wheels for the hosts' Python (the suite's: bookworm's 3.11), whatever Python the controller runs."""
    argv = [python, "-m", "pip", "download", "--quiet", "--dest", str(dest), "--only-binary=:all:",
            "--implementation", "cp", "--python-version", python_version]
    for tag in ("manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux_2_34"):
        argv += ["--platform", f"{tag}_{machine}"]
    for req in requirements:
        argv += ["-r", str(req)]
    return argv
