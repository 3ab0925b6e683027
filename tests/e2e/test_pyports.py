"""A host's Python and ports, checked before anything changes: a project needing Python 3.12 is
refused on a Debian 12 host (3.11) and deployed on a Debian 13 one (3.13); a foreign listener on
the project's ports is refused by setup and by a deploy's plan, naming the port and its holder."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from ayna_fab.sandbox import manager
from ayna_fab.sandbox.settings import BASE_REQUIREMENTS
from tests.e2e.conftest import DEMO, E2E_PORT_BASE, Sandbox, fab, prefix_apart, sandbox_settings, write_inventory
from tests.polling import wait_until
from tests.prereqs import require_sandbox

pytestmark = pytest.mark.e2e
ROOT = "/opt/ayna/uavcrew"
# The demo's registry range: web +0, the pre-flip check's web +5 and api +6. The foreign listeners
# take the reserved ones: free on a host whether earlier modules left the demo live there or not.
WEB, PREFLIP_WEB, PREFLIP_API = 8130, 8135, 8136
# What setup and a deploy make on a host: a refusal must leave all of it as it was (the deploy
# lock too: taken by the plan, released by the refusal).
STATE = (f"id adonis 2>&1; ls -A /opt/ayna {ROOT} {ROOT}/releases {ROOT}/shared /etc/sudoers.d 2>&1; "
         f"readlink {ROOT}/current; ls /etc/systemd/system | grep uavcrew; "
         "systemctl list-units --all --no-legend 'uavcrew-*' 2>&1")


def foreign_listener(sb: Sandbox, port: int) -> str:
    """Another program (root's python3) listening on 127.0.0.1:port; returns its unit's name."""
    unit = f"foreign-{port}"
    sb.check(0, f"systemd-run --quiet --unit={unit} python3 -m http.server --bind 127.0.0.1 {port}")
    wait_until(lambda: f"127.0.0.1:{port} " in sb.check(0, "ss -ltnH"), timeout=30)
    return unit


@pytest.fixture(scope="module")
def inventory(sandbox, tmp_path_factory):
    return write_inventory(tmp_path_factory.mktemp("pyports") / "hosts.toml", sandbox)


def test_setup_refuses_a_port_another_program_holds_and_changes_nothing(sandbox, inventory):
    host = sandbox.hosts[0].name
    unit = foreign_listener(sandbox, PREFLIP_WEB)
    try:
        before = sandbox.check(0, STATE)
        r = fab("-H", host, "setup", hosts_file=inventory)
        out = r.stdout + r.stderr
        assert r.returncode == 2, out
        assert f"port {PREFLIP_WEB} (127.0.0.1): python3 (pid" in out and "user root" in out and "port_base" in out
        assert sandbox.check(0, STATE) == before
    finally:
        sandbox.check(0, f"systemctl stop {unit}")
    r = fab("-H", host, "setup", hosts_file=inventory)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_deploys_plan_refuses_a_port_the_pre_flip_check_needs_and_changes_nothing(sandbox, inventory):
    host = sandbox.hosts[0].name
    sandbox.check(0, "systemctl start uavcrew-web.socket")   # as the first deploy starts it (live later on)
    assert f"127.0.0.1:{WEB} " in sandbox.check(0, "ss -ltnH")
    unit = foreign_listener(sandbox, PREFLIP_API)
    try:
        before = sandbox.check(0, STATE)
        r = fab("-H", host, "deploy", hosts_file=inventory)
        out = r.stdout + r.stderr
        assert r.returncode == 1 and "failed at plan; the live site is untouched" in out, out
        assert f"port {PREFLIP_API} (127.0.0.1): a process of user root" in out
        assert f"port {WEB} " not in out   # the project's own socket, listening there, is not foreign
        assert sandbox.check(0, STATE) == before
    finally:
        sandbox.check(0, f"systemctl stop {unit}")


class NeedsPython312:
    """A git copy of the demo project that declares Python 3.12 (.python-version, as uv writes it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        shutil.copytree(DEMO, path, ignore=shutil.ignore_patterns(".venv", "__pycache__", "staticfiles"))
        (path / ".python-version").write_text("3.12\n")
        for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-qm", "needs 3.12")):
            subprocess.run(["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                           check=True, capture_output=True)


@pytest.fixture(scope="module")
def needs_312(tmp_path_factory):
    return NeedsPython312(tmp_path_factory.mktemp("py312") / "uavcrew")


@pytest.fixture(scope="module")
def trixie(tmp_path_factory, run_rootfs):
    """One Debian 13 host (python3 3.13), booted once."""
    require_sandbox()
    # Its wheelhouse is Python 3.13's: the demo's packages only (the corpus pins versions from
    # before 3.13 that have no wheel for it, and runs on the session's Debian 12 hosts).
    settings = replace(sandbox_settings(tmp_path_factory.mktemp("trixie"), prefix_apart("p"), E2E_PORT_BASE + 80),
                       suite="trixie", requirements=(BASE_REQUIREMENTS, DEMO / "wheelhouse-requirements.txt"))
    try:
        yield Sandbox(settings, manager.up(settings, 1, print))
    finally:
        manager.down(settings, print)


def test_a_project_needing_python_312_is_refused_on_debian_12_with_the_ways_out(sandbox, needs_312,
                                                                                 tmp_path_factory):
    inv = write_inventory(tmp_path_factory.mktemp("py312inv") / "hosts.toml", sandbox, source=needs_312.path)
    host = sandbox.hosts[0].name
    assert fab("-H", host, "setup", hosts_file=inv).returncode == 0
    before = sandbox.check(0, STATE)
    r = fab("-H", host, "deploy", hosts_file=inv)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "failed at plan; the live site is untouched" in out, out
    assert "the host's Python is 3.11." in out and "needs Python >=3.12 (.python-version: 3.12)" in out
    assert "/usr/bin/python3 satisfies >=3.12" in out and 'python = "3.11"' in out
    assert sandbox.check(0, STATE) == before


def test_the_same_project_deploys_on_debian_13_with_its_python(trixie, needs_312, tmp_path_factory):
    inv = write_inventory(tmp_path_factory.mktemp("trixieinv") / "hosts.toml", trixie, source=needs_312.path)
    host = trixie.hosts[0].name
    r = fab("-H", host, "setup", hosts_file=inv)
    assert r.returncode == 0, r.stdout + r.stderr
    r = fab("-H", host, "deploy", hosts_file=inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert trixie.check(0, f"{ROOT}/venv/bin/python --version").startswith("Python 3.13.")
    health = trixie.check(0, f"curl -sf -m 10 http://127.0.0.1:{WEB}/health/")
    assert '"release": "v1"' in health and '"database": "ok"' in health
