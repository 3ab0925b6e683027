"""Every local command the sandbox runs, built as argument lists (no I/O here).

Keeping them pure lets `--dry-run`-style listings and unit tests see exactly
what would run on the controller.
"""

from __future__ import annotations

from pathlib import Path

from .settings import PACKAGES, SUITE, WHEELHOUSE_MOUNT

Argv = list[str]


def debootstrap(target: Path, mirror: str, packages: tuple[str, ...] = PACKAGES) -> Argv:
    return ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
            SUITE, str(target), mirror]


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
    """Wheels for the hosts' Python (bookworm's 3.11), whatever Python the controller runs."""
    argv = [python, "-m", "pip", "download", "--quiet", "--dest", str(dest), "--only-binary=:all:",
            "--implementation", "cp", "--python-version", python_version]
    for tag in ("manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux_2_34"):
        argv += ["--platform", f"{tag}_{machine}"]
    for req in requirements:
        argv += ["-r", str(req)]
    return argv
