"""The sandbox is real: systemd as PID 1, private networks, real sshd, PostgreSQL and Redis."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from ayna_fab.errors import OperationFailed, UsageError
from ayna_fab.remote import ssh
from ayna_fab.sandbox import forwarder, manager, procs, rootfs
from ayna_fab.sandbox.settings import WHEELHOUSE_MOUNT
from tests.e2e.conftest import E2E_PORT_BASE, prefix_apart, sandbox_settings
from tests.prereqs import require_sandbox, skip_or_fail

pytestmark = pytest.mark.e2e


def test_systemd_is_pid1_and_running_on_every_host(sandbox):
    for i, hs in enumerate(sandbox.hosts):
        assert sandbox.check(i, "systemctl is-system-running").strip() == "running"
        assert sandbox.check(i, "ps -o comm= -p 1").strip() == "systemd"
        assert sandbox.check(i, "hostname").strip() == hs.name


def test_each_host_has_its_own_loopback_and_can_bind_the_same_port(sandbox):
    for i, hs in enumerate(sandbox.hosts):
        sandbox.check(i, f"mkdir -p /tmp/who && echo {hs.name} > /tmp/who/name && "
                         "systemd-run --unit=probe8100 --collect python3 -m http.server 8100 "
                         "--bind 127.0.0.1 --directory /tmp/who")
    try:
        for i, hs in enumerate(sandbox.hosts):
            out = sandbox.check(i, "for n in $(seq 50); do curl -fsS http://127.0.0.1:8100/name && exit 0; "
                                   "sleep 0.1; done; exit 1")
            assert out.strip() == hs.name  # each host answers on its own 8100, at the same time
    finally:
        for i in range(len(sandbox.hosts)):
            sandbox.run(i, "systemctl stop probe8100")


def test_hosts_have_no_route_out(sandbox):
    links = sandbox.check(0, "ip -o link show | awk -F': ' '{print $2}'").split()
    assert links == ["lo"]
    assert sandbox.check(0, "ip route show").strip() == ""


def test_postgresql_and_redis_answer_inside_a_host(sandbox):
    assert sandbox.check(0, "cd / && sudo -u postgres psql -tAc 'select 40 + 2'").strip() == "42"
    assert sandbox.check(0, "redis-cli ping").strip() == "PONG"
    assert sandbox.check(0, "systemctl is-active postgresql@15-main redis-server").split() == ["active"] * 2


def test_hosts_built_while_this_machine_holds_5432_and_6379_serve_on_those_ports(sandbox, run_rootfs):
    if not run_rootfs.built:
        skip_or_fail("AYNA_FAB_TEST_ROOTFS_CACHE reuses a root filesystem: this run did not build one")
    assert sorted(run_rootfs.held) == [5432, 6379]  # taken on this machine during the whole build
    root = sandbox.settings.rootfs_dir
    assert root.parent == run_rootfs.cache and rootfs.problem(root) is None
    for i, hs in enumerate(sandbox.hosts):
        assert sandbox.check(i, "cd / && sudo -u postgres psql -tAc 'show port'").strip() == "5432", hs.name
        sandbox.check(i, "pg_isready -h 127.0.0.1 -p 5432")
        assert sandbox.check(i, "redis-cli -h 127.0.0.1 -p 6379 ping").strip() == "PONG"
        assert sandbox.check(i, "cd / && sudo -u postgres psql -tAc 'show timezone'").strip() == "Etc/UTC"
        assert sandbox.check(i, "cd / && sudo -u postgres psql -tAc 'show server_encoding'").strip() == "UTF8"


def test_up_names_the_host_and_the_service_that_does_not_answer(sandbox):
    hs = sandbox.hosts[0]
    sandbox.check(0, "systemctl stop redis-server")
    try:
        with pytest.raises(OperationFailed) as exc:
            manager.check_services(hs, sandbox.settings, timeout=1)
        assert exc.value.host == hs.name and exc.value.step == "sandbox services"
        assert "Redis does not answer on 127.0.0.1:6379" in str(exc.value)
        assert "sandbox.up --rebuild" in exc.value.hint
    finally:
        sandbox.check(0, "systemctl start redis-server")
    manager.check_services(hs, sandbox.settings)  # answering again


def test_wheelhouse_is_read_only_and_pip_installs_from_it_offline(sandbox):
    code, _, err = sandbox.run(0, f"touch {WHEELHOUSE_MOUNT}/x")
    assert code != 0 and "Read-only" in err
    out = sandbox.check(0, "rm -rf /tmp/v && python3 -m venv /tmp/v && /tmp/v/bin/pip install -q uv "
                           "&& /tmp/v/bin/uv --version", timeout=300)
    assert out.startswith("uv ")


def test_host_is_handed_over_bare(sandbox):
    code, _, _ = sandbox.run(0, "id adonis")
    assert code != 0  # the deploy user is host setup's job
    assert sandbox.check(0, "ls /opt").strip() == ""


def test_unknown_host_key_is_refused(sandbox, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    ep = sandbox.endpoint(0)
    with pytest.raises(UsageError, match="not in .*refusing an unknown host key"):
        ssh.connect(ssh.Endpoint(**{**ep.__dict__, "known_hosts": empty}))


def test_changed_host_key_is_refused(sandbox, tmp_path):
    # Record host 2's key under host 1's address: what a man in the middle would present.
    other = (Path(sandbox.hosts[1].dir) / "ssh_host_ed25519_key.pub").read_text().split()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sandbox.hosts[0].ssh_port} {other[0]} {other[1]}\n")
    ep = sandbox.endpoint(0)
    with pytest.raises(UsageError, match="HOST KEY CHANGED"):
        ssh.connect(ssh.Endpoint(**{**ep.__dict__, "known_hosts": wrong}))


def test_password_login_is_refused_even_with_the_right_password(sandbox):
    sandbox.check(0, "id pwtest || useradd -m pwtest; echo 'pwtest:Correct-Horse-1' | chpasswd")
    transport = paramiko.Transport(("127.0.0.1", sandbox.hosts[0].ssh_port))
    try:
        transport.start_client(timeout=10)
        with pytest.raises(paramiko.BadAuthenticationType) as info:
            transport.auth_password("pwtest", "Correct-Horse-1")
        assert info.value.allowed_types == ["publickey"]
    finally:
        transport.close()
    with pytest.raises(paramiko.BadAuthenticationType):
        transport = paramiko.Transport(("127.0.0.1", sandbox.hosts[0].ssh_port))
        try:
            transport.start_client(timeout=10)
            transport.auth_password("root", "anything")
        finally:
            transport.close()


def _exec_times(client: paramiko.SSHClient, n: int = 5) -> list[float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        code, _, _ = ssh.run(client, "true")
        times.append(time.perf_counter() - t)
        assert code == 0
    return times


def test_forwarder_adds_the_latency_it_is_asked_for(sandbox):
    control = sandbox.hosts[0].control
    client = ssh.connect(sandbox.endpoint(0))
    try:
        base = _exec_times(client)
        assert forwarder.request(control, "rtt 200")["rtt_ms"] == 200
        slow = _exec_times(client)
    finally:
        forwarder.request(control, "rtt 0")
        client.close()
    # An exec needs at least one full round trip, so each one takes the whole delay at the least
    # (a lower bound: a busy machine only adds to it); the times without it are shown beside.
    assert min(slow) >= 0.2, (base, slow)


def test_forwarder_cut_drops_a_live_ssh_session(sandbox):
    control = sandbox.hosts[0].control
    conn = ssh.connect(sandbox.endpoint(0))
    try:
        assert ssh.run(conn, "echo alive")[1].strip() == "alive"
        transport = conn.client.get_transport()
        channel = transport.open_session()
        channel.exec_command("sleep 3; echo finished")  # in flight when the link goes
        assert forwarder.request(control, "cut")["cut"] >= 1
        deadline = time.monotonic() + 10
        while transport.is_active() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not transport.is_active()
        assert b"finished" not in channel.recv(100)  # the command's result never arrived
    finally:
        conn.close()
    assert sandbox.check(0, "echo back").strip() == "back"  # new connections still work


def _mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_down_leaves_nothing_behind(tmp_path, run_rootfs):
    require_sandbox()
    # apart from the session's hosts (E2E_PORT_BASE + i) and the fleet's (+ 50 + i)
    settings = sandbox_settings(tmp_path / "sbx", prefix_apart("d"), E2E_PORT_BASE + 70)
    hosts = manager.up(settings, 1, print)
    hs = hosts[0]
    nspawn, fwd = procs.ProcRecord.from_dict(hs.nspawn), procs.ProcRecord.from_dict(hs.forwarder)
    assert procs.is_alive(nspawn) and procs.is_alive(fwd)
    assert str(hs.merged) in _mounts()
    assert Path(f"/run/netns/{hs.machine}").exists()

    assert manager.down(settings, print) == [hs.name]

    assert not procs.is_alive(nspawn) and not procs.is_alive(fwd)
    assert str(settings.state_dir) not in _mounts()
    assert hs.machine not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not Path(hs.dir).exists()
    assert not Path(f"/run/systemd/nspawn/propagate/{hs.machine}").exists()
    with pytest.raises(OperationFailed):  # nothing listens on its SSH port any more
        ssh.connect(manager.endpoint(hs, settings))
    assert manager.State.load(settings.state_file).hosts == {}
    assert manager.down(settings, print) == []  # a second down is a no-op
