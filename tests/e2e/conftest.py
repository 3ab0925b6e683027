"""Sandbox hosts for end-to-end tests, booted with the same code as `fab sandbox.up`.

The tests' sandbox has its own directory, names (aynatest*) and ports (2301..),
so it never disturbs a sandbox a person is using on the same machine.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ayna_fab.remote import ssh
from ayna_fab.sandbox import manager, rootfs
from ayna_fab.sandbox.settings import BASE_REQUIREMENTS, SandboxSettings
from tests.prereqs import require_sandbox

E2E_HOSTS = int(os.environ.get("AYNA_FAB_TEST_HOSTS", "2"))
# Two test runs on one machine must not share names or ports.
E2E_PREFIX = os.environ.get("AYNA_FAB_TEST_PREFIX", "aynatest")
E2E_PORT_BASE = int(os.environ.get("AYNA_FAB_TEST_PORT_BASE", "2300"))
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "uavcrew"
DEMO_ENV = REPO / "examples" / "uavcrew.sandbox.env"
CORPUS_WHEELS = tuple(sorted((REPO / "tests" / "corpus" / "wheelhouse").glob("*.txt")))   # the vendored projects'
FAB = Path(sys.executable).with_name("fab")
# The run's hosts boot from a root filesystem built afresh, once per run, into a directory of
# the run's own, while this machine's 127.0.0.1:5432 and :6379 are taken, as on a developer's
# machine that runs PostgreSQL and Redis (test_sandbox.py checks what came of it).
# AYNA_FAB_TEST_ROOTFS_CACHE names a cache to reuse instead, for quicker local runs.
REUSED_ROOTFS = os.environ.get("AYNA_FAB_TEST_ROOTFS_CACHE")
RUN_ROOTFS_CACHE = Path(REUSED_ROOTFS or f"/var/tmp/ayna-fab-test-rootfs-{E2E_PREFIX}")


# The session's hosts are shared, so modules run as a story: bare hosts first, then setup,
# then deploys on set-up hosts.
MODULE_ORDER = ("test_sandbox", "test_envfile", "test_host_setup", "test_deploy", "test_install", "test_ops",
                "test_host_trust",
                "test_faults", "test_proxy", "test_soak",
                "test_corpus", "test_realworld",
                "test_fleet", "test_daytwo_stages",
                "test_hostile", "test_hooks", "test_daytwo_secrets", "test_pyports")


def pytest_collection_modifyitems(items):
    def rank(item):
        if "/tests/unit/" in str(item.fspath):
            return -1  # fast tests first
        name = item.module.__name__.rsplit(".", 1)[-1]
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)
    items.sort(key=rank)  # stable: keeps the order within each module


@dataclass
class Sandbox:
    settings: SandboxSettings
    hosts: list[manager.HostState]

    def endpoint(self, index: int, user: str = "root") -> ssh.Endpoint:
        return manager.endpoint(self.hosts[index], self.settings, user=user)

    def run(self, index: int, command: str, timeout: float = 120, user: str = "root") -> tuple[int, str, str]:
        client = ssh.connect(self.endpoint(index, user=user))
        try:
            return ssh.run(client, command, timeout=timeout)
        finally:
            client.close()

    def check(self, index: int, command: str, timeout: float = 120, user: str = "root") -> str:
        code, out, err = self.run(index, command, timeout, user)
        assert code == 0, f"{command!r} on {self.hosts[index].name} exited {code}: {err or out}"
        return out

    def unit(self, index: int, project: str, service: str) -> str:
        """The unit that runs service now: the active slot of web, api or celery (blue when
        neither is), or beat's one unit."""
        if service == "beat":
            return f"{project}-beat.service"
        names = [f"{project}-{service}-{slot}.service" for slot in ("blue", "green")]
        _, out, _ = self.run(index, "systemctl is-active " + " ".join(names))
        active = [n for n, state in zip(names, out.split()) if state == "active"]
        return active[0] if active else names[0]

    def main_pid(self, index: int, project: str, service: str) -> str:
        """The main process of the unit that runs service now."""
        return self.check(index, f"systemctl show -p MainPID --value {self.unit(index, project, service)}").strip()


def prefix_apart(letter: str) -> str:
    """A sandbox prefix of this run (10 characters at most) none of whose host names is one of the
    session's (E2E_PREFIX): the letter stands where those names have their number, or, for a
    10-character E2E_PREFIX, replaces its last character (with the next letter if they are equal)."""
    if E2E_PREFIX[9:] == letter:
        letter = chr(ord(letter) + 1)
    return E2E_PREFIX[:9] + letter


def sandbox_settings(state_dir: Path, prefix: str, port_base: int) -> SandboxSettings:
    return SandboxSettings.from_env(state_dir=state_dir, prefix=prefix, ssh_port_base=port_base,
                                    rootfs_cache_dir=RUN_ROOTFS_CACHE,
                                    requirements=(BASE_REQUIREMENTS, DEMO / "wheelhouse-requirements.txt",
                                                  *CORPUS_WHEELS))


@dataclass
class RootfsBuild:
    """The run's root filesystem: built by this run or reused, and who held which port meanwhile."""

    cache: Path
    built: bool
    held: dict[int, str] = field(default_factory=dict)


@contextmanager
def ports_taken(*ports: int):
    """Keep 127.0.0.1:port taken for each port: by this process, or by whatever holds it already."""
    held: dict[int, str] = {}
    with ExitStack() as stack:
        for port in ports:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
                held[port] = "this test run"
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                held[port] = "another program on this machine"
        yield held


@pytest.fixture(scope="session")
def run_rootfs():
    require_sandbox()
    if REUSED_ROOTFS:
        yield RootfsBuild(RUN_ROOTFS_CACHE, built=False)
        return
    shutil.rmtree(RUN_ROOTFS_CACHE, ignore_errors=True)
    settings = sandbox_settings(Path(tempfile.mkdtemp(prefix="ayna-fab-rootfs-state-")), E2E_PREFIX, E2E_PORT_BASE)
    with ports_taken(rootfs.POSTGRES_PORT, rootfs.REDIS_PORT) as held:
        print(f"127.0.0.1 ports taken while the run's root filesystem is built: {held}")
        rootfs.ensure(settings, print)
    try:
        yield RootfsBuild(RUN_ROOTFS_CACHE, built=True, held=held)
    finally:
        shutil.rmtree(RUN_ROOTFS_CACHE, ignore_errors=True)


def write_inventory(path: Path, sandbox: Sandbox, *, source: Path = DEMO, env_file: Path | None = DEMO_ENV,
                    known_hosts: Path | None = None, extra_project: str = "", keep_releases: int = 5) -> Path:
    """A hosts.toml for the tests' sandbox: uavcrew on every host, group `sandbox`."""
    s = sandbox.settings
    lines = ["[defaults]", f'identity_file = "{s.key_path}"',
             f'known_hosts = "{known_hosts or s.known_hosts_path}"', f"keep_releases = {keep_releases}", "",
             "[projects.uavcrew]", f'source = "{source}"', 'env = "production"', "create_database = true"]
    if env_file:
        lines.append(f'env_file = "{env_file}"')
    lines += [extra_project, ""]
    for hs in sandbox.hosts:
        lines += [f"[hosts.{hs.name}]", 'hostname = "127.0.0.1"', f"port = {hs.ssh_port}",
                  'projects = ["uavcrew"]', ""]
    lines += ["[groups]", "sandbox = [" + ", ".join(f'"{h.name}"' for h in sandbox.hosts) + "]", ""]
    path.write_text("\n".join(lines))
    return path


def fab(*args: str, hosts_file: Path, timeout: float = 900, input: str | None = None) -> subprocess.CompletedProcess:
    """Run ayna-fab's CLI as a person would, from the repository root."""
    env = {**os.environ, "AYNA_FAB_HOSTS": str(hosts_file)}
    return subprocess.run([str(FAB), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, input=input if input is not None else "")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory, run_rootfs) -> Sandbox:
    require_sandbox()
    settings = sandbox_settings(tmp_path_factory.mktemp("sandbox"), E2E_PREFIX, E2E_PORT_BASE)
    try:
        hosts = manager.up(settings, E2E_HOSTS, print)
        yield Sandbox(settings, hosts)
    finally:
        manager.down(settings, print)


@pytest.fixture(scope="session")
def first_setup(sandbox, tmp_path_factory):
    """`setup` of every bare sandbox host, once, through the CLI; its output is kept for the tests."""
    inventory = write_inventory(tmp_path_factory.mktemp("setup") / "hosts.toml", sandbox)
    return [fab("-H", hs.name, "setup", hosts_file=inventory) for hs in sandbox.hosts]
