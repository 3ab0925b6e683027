"""Sandbox hosts for end-to-end tests, booted with the same code as `fab sandbox.up`.

The tests' sandbox has its own directory, names (aynatest*) and ports (2301..),
so it never disturbs a sandbox a person is using on the same machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from ayna_fab import ssh
from ayna_fab.sandbox import manager
from ayna_fab.sandbox.settings import SandboxSettings
from tests.prereqs import require_sandbox

E2E_HOSTS = int(os.environ.get("AYNA_FAB_TEST_HOSTS", "2"))


@dataclass
class Sandbox:
    settings: SandboxSettings
    hosts: list[manager.HostState]

    def endpoint(self, index: int, user: str = "root") -> ssh.Endpoint:
        return manager.endpoint(self.hosts[index], self.settings, user=user)

    def run(self, index: int, command: str, timeout: float = 120) -> tuple[int, str, str]:
        client = ssh.connect(self.endpoint(index))
        try:
            return ssh.run(client, command, timeout=timeout)
        finally:
            client.close()

    def check(self, index: int, command: str, timeout: float = 120) -> str:
        code, out, err = self.run(index, command, timeout)
        assert code == 0, f"{command!r} on {self.hosts[index].name} exited {code}: {err or out}"
        return out


def sandbox_settings(state_dir: Path, prefix: str, port_base: int) -> SandboxSettings:
    return SandboxSettings.from_env(state_dir=state_dir, prefix=prefix, ssh_port_base=port_base)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Sandbox:
    require_sandbox()
    settings = sandbox_settings(tmp_path_factory.mktemp("sandbox"), "aynatest", 2300)
    try:
        hosts = manager.up(settings, E2E_HOSTS, print)
        yield Sandbox(settings, hosts)
    finally:
        manager.down(settings, print)
