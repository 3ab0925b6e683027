"""Bring sandbox hosts up and down: the only module here that changes the machine.

State (pids with start times, mounts, namespaces) is written to state.json as
each piece is made, so `down` can undo exactly what `up` did, even after a
crash half-way, and never touches anything it did not start.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
import sys

from ayna_fab import local
from ayna_fab.remote import ssh
from ayna_fab.errors import OperationFailed, UsageError

from . import cgroups, commands, forwarder, hostsfile, keys, preflight, procs, rootfs, wheelhouse
from .settings import SandboxSettings

Say = Callable[[str], None]
BOOT_TIMEOUT = 120.0


@dataclass
class HostState:
    """What `up` made for one host; each field is filled as soon as it exists."""

    index: int
    name: str
    machine: str
    ssh_port: int
    dir: str
    mounted: bool = False
    netns: bool = False
    nspawn: dict | None = None
    forwarder: dict | None = None
    db_forwarder: dict | None = None  # --shared-db: this host's socket to the first host's PostgreSQL

    @property
    def merged(self) -> Path:
        return Path(self.dir) / "merged"

    @property
    def control(self) -> Path:
        return Path(self.dir) / "forwarder.sock"


@dataclass
class State:
    hosts: dict[str, HostState] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "State":
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        return cls(hosts={k: HostState(**v) for k, v in raw.get("hosts", {}).items()})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"hosts": {k: asdict(v) for k, v in self.hosts.items()}}, indent=2))
        tmp.replace(path)


def _proc(d: dict | None) -> procs.ProcRecord | None:
    return procs.ProcRecord.from_dict(d) if d else None


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


SHARED_DB_DIR = "/srv/ayna-db"
MAX_HOSTS = 32   # the fleet benchmark's largest fleet; each host is a container, its forwarder and an SSH port
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def up(settings: SandboxSettings, count: int, say: Say, shared_db: bool = False,
       rebuild: bool = False) -> list[HostState]:
    """Ensure hosts sandbox1..count are running, their services answering; return their states.

    shared_db: every host gets a PostgreSQL socket at /srv/ayna-db/.s.PGSQL.5432 that reaches
    the first host's server, so a group shares one database (DATABASE_URL ...?host=/srv/ayna-db).
    rebuild: build the root filesystem afresh even if the cached one passes its check.
    """
    if not 1 <= count <= MAX_HOSTS:
        raise UsageError(f"--count must be between 1 and {MAX_HOSTS}, not {count}", step="sandbox up")
    preflight.check()
    rootfs.ensure(settings, say, rebuild=rebuild)
    wheelhouse.ensure(settings, say)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.state_dir, 0o700)
    keys.ensure_keypair(settings.key_path, "ayna-fab-sandbox")
    state = State.load(settings.state_file)

    preflight.check_inotify(sum(1 for i in range(1, count + 1) if not (
        (hs := state.hosts.get(settings.host_name(i))) and _running(hs))))
    started: list[HostState] = []
    for i in range(1, count + 1):
        name = settings.host_name(i)
        hs = state.hosts.get(name)
        if hs and _running(hs):
            continue
        if hs:  # a leftover from a crash or a reboot: clear it before starting afresh
            _teardown(hs, settings, say)
            del state.hosts[name]
            state.save(settings.state_file)
        hs = HostState(index=i, name=name, machine=settings.machine_name(i), ssh_port=settings.ssh_port(i),
                       dir=str(settings.host_dir(i)))
        state.hosts[name] = hs
        try:
            _start(hs, settings, state)
        except Exception:
            state.save(settings.state_file)
            raise
        started.append(hs)
    _write_access_files(settings, state)
    if started:
        say(f"booting {', '.join(h.name for h in started)}")
        with ThreadPoolExecutor(max_workers=len(started)) as pool:
            list(pool.map(lambda h: _wait_ready(h, settings), started))
    hosts = [state.hosts[settings.host_name(i)] for i in range(1, count + 1)]
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        list(pool.map(lambda h: check_services(h, settings), hosts))
    if shared_db:
        for hs in hosts:
            if not (hs.db_forwarder and procs.is_alive(_proc(hs.db_forwarder))):
                _start_db_forwarder(hs, hosts[0], state, settings)
    return hosts


def _start_db_forwarder(hs: HostState, db_host: HostState, state: State, settings: SandboxSettings) -> None:
    """A socket file in hs's filesystem (outside its tmpfs /run), forwarding to db_host's PostgreSQL."""
    sock_dir = hs.merged / SHARED_DB_DIR.lstrip("/")
    sock_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(sock_dir, 0o755)
    fwd = [sys.executable, "-m", "ayna_fab.sandbox.forwarder", "--listen-unix", str(sock_dir / ".s.PGSQL.5432"),
           "--netns", f"/run/netns/{db_host.machine}", "--target", "127.0.0.1:5432",
           "--control", str(Path(hs.dir) / "dbforwarder.sock")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    rec = procs.start_detached(fwd, Path(hs.dir) / "dbforwarder.log", env=env)
    hs.db_forwarder = rec.to_dict()
    state.save(settings.state_file)


def _start(hs: HostState, settings: SandboxSettings, state: State) -> None:
    hdir = Path(hs.dir)
    shutil.rmtree(hdir, ignore_errors=True)
    for sub in ("upper", "work", "merged"):
        (hdir / sub).mkdir(parents=True)
    local.run(commands.mount_overlay(settings.rootfs_dir, hdir / "upper", hdir / "work", hs.merged),
              step=f"{hs.name}: mount overlay")
    hs.mounted = True
    state.save(settings.state_file)
    _personalise(hs, settings)

    local.run(commands.netns_add(hs.machine), step=f"{hs.name}: network namespace",
              hint=f"a namespace {hs.machine} may be left over: ip netns delete {hs.machine}")
    hs.netns = True
    state.save(settings.state_file)
    local.run(commands.netns_loopback_up(hs.machine), step=f"{hs.name}: network namespace")

    groups = cgroups.create(hs.machine)
    rec = procs.start_detached(commands.nspawn_boot(hs.merged, hs.machine, hs.name, settings.wheelhouse_dir),
                               hdir / "console.log", before_exec=lambda: cgroups.enter(groups))
    hs.nspawn = rec.to_dict()
    state.save(settings.state_file)

    fwd = [sys.executable, "-m", "ayna_fab.sandbox.forwarder", "--listen", f"127.0.0.1:{hs.ssh_port}",
           "--netns", f"/run/netns/{hs.machine}", "--target", "127.0.0.1:22", "--control", str(hs.control)]
    # The forwarder must import ayna_fab whatever the caller's working directory.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    rec = procs.start_detached(fwd, hdir / "forwarder.log", env=env)
    hs.forwarder = rec.to_dict()
    state.save(settings.state_file)
    _wait_forwarder(hs)


def _personalise(hs: HostState, settings: SandboxSettings) -> None:
    """Per-host identity, written through the overlay so only this host sees it."""
    m = hs.merged
    if CA_BUNDLE.exists():  # so TLS inside hosts trusts what the controller trusts
        shutil.copy2(CA_BUNDLE, m / "etc/ssl/certs/ca-certificates.crt")
    (m / "etc/hostname").write_text(hs.name + "\n")
    (m / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {hs.name}\n::1 localhost\n")
    (m / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
    hostkey = Path(hs.dir) / "ssh_host_ed25519_key"
    keys.ensure_keypair(hostkey, f"root@{hs.name}")
    for src in (hostkey, hostkey.with_suffix(".pub")):
        dst = m / "etc/ssh" / src.name
        shutil.copy2(src, dst)
    os.chmod(m / "etc/ssh/ssh_host_ed25519_key", 0o600)
    auth = m / "root/.ssh/authorized_keys"
    auth.write_text(settings.key_path.with_suffix(".pub").read_text())
    os.chmod(auth, 0o600)


def _wait_forwarder(hs: HostState, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if forwarder.request(hs.control, "ping").get("ok"):
                return
        except OSError:
            pass
        if not procs.is_alive(_proc(hs.forwarder)):
            break
        time.sleep(0.05)
    raise OperationFailed(f"the SSH forwarder did not start; see {Path(hs.dir) / 'forwarder.log'}",
                          host=hs.name, step="sandbox up")


def endpoint(hs: HostState, settings: SandboxSettings, user: str = "root") -> ssh.Endpoint:
    return ssh.Endpoint(name=hs.name, hostname="127.0.0.1", port=hs.ssh_port, user=user,
                        identity_file=settings.key_path, known_hosts=settings.known_hosts_path, timeout=5.0)


def _wait_ready(hs: HostState, settings: SandboxSettings) -> None:
    """Ready means: sshd lets root in by key with the recorded host key, and systemd says running."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not procs.is_alive(_proc(hs.nspawn)):
            raise OperationFailed(f"the container exited while booting; see {Path(hs.dir) / 'console.log'}",
                                  host=hs.name, step="sandbox boot")
        try:
            client = ssh.connect(endpoint(hs, settings))
        except OperationFailed as exc:
            last = exc
            time.sleep(0.3)
            continue
        try:
            left = max(5, int(deadline - time.monotonic()))
            code, out, _ = ssh.run(client, f"timeout {left} systemctl is-system-running --wait", timeout=left + 5)
            status = out.strip()
            if status == "running":
                return
            _, failed, _ = ssh.run(client, "systemctl --failed --no-legend --plain")
            raise OperationFailed(f"systemd reports {status!r}; failed units:\n{failed.strip()}",
                                  host=hs.name, step="sandbox boot",
                                  hint=f"see {Path(hs.dir) / 'console.log'}")
        finally:
            client.close()
    raise OperationFailed(f"not reachable over SSH after {BOOT_TIMEOUT:.0f}s ({last})", host=hs.name,
                          step="sandbox boot", hint=f"see {Path(hs.dir) / 'console.log'}")


# What every sandbox host serves to the projects deployed on it.
SERVICES = (
    commands.Service("PostgreSQL", rootfs.POSTGRES_PORT, "postgresql@15-main",
                     f"pg_isready -q -h 127.0.0.1 -p {rootfs.POSTGRES_PORT}"),
    commands.Service("Redis", rootfs.REDIS_PORT, "redis-server",
                     f"redis-cli -h 127.0.0.1 -p {rootfs.REDIS_PORT} ping | grep -qx PONG"),
)
SERVICES_TIMEOUT = 30


def check_services(hs: HostState, settings: SandboxSettings, timeout: int = SERVICES_TIMEOUT) -> None:
    """PostgreSQL and Redis answer on their standard ports inside the host, or `up` fails here.

    A deploy would otherwise fail much later, at migrate, with the cause out of sight.
    """
    client = ssh.connect(endpoint(hs, settings))
    try:
        code, out, _ = ssh.run(client, commands.probe_services(SERVICES, timeout), timeout=timeout + 10)
        if code == 0:
            return
        name = (out.strip().splitlines() or ["?"])[-1]
        svc = next((s for s in SERVICES if s.name == name), SERVICES[0])
        _, state, _ = ssh.run(client, f"systemctl is-active {svc.unit}")
    finally:
        client.close()
    raise OperationFailed(
        f"{svc.name} does not answer on 127.0.0.1:{svc.port} inside the host (unit {svc.unit}: {state.strip()})",
        host=hs.name, step="sandbox services",
        hint=f"see `journalctl -u {svc.unit}` on the host; to rebuild the hosts' root filesystem: "
             "fab sandbox.down, then fab sandbox.up --rebuild (with the same AYNA_FAB_* settings)")


def _running(hs: HostState) -> bool:
    return bool(hs.nspawn and hs.forwarder and procs.is_alive(_proc(hs.nspawn))
                and procs.is_alive(_proc(hs.forwarder)))


def _write_access_files(settings: SandboxSettings, state: State) -> None:
    lines, entries = [], []
    for hs in sorted(state.hosts.values(), key=lambda h: h.index):
        pub = (Path(hs.dir) / "ssh_host_ed25519_key.pub").read_text()
        lines.append(keys.known_hosts_line("127.0.0.1", hs.ssh_port, pub))
        entries.append((hs.name, hs.ssh_port))
    keys.write_known_hosts(settings.known_hosts_path, lines)
    settings.hosts_file.write_text(hostsfile.render(entries, settings.key_path, settings.known_hosts_path))


def down(settings: SandboxSettings, say: Say) -> list[str]:
    """Stop every host this sandbox started and remove what it made; return their names."""
    state = State.load(settings.state_file)
    names = sorted(state.hosts, key=lambda n: state.hosts[n].index)
    if names:
        preflight.check()
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        list(pool.map(lambda n: _teardown(state.hosts[n], settings, say), names))
    for n in names:
        del state.hosts[n]
    state.save(settings.state_file)
    _write_access_files(settings, state)
    return names


def _teardown(hs: HostState, settings: SandboxSettings, say: Say) -> None:
    """Undo, in reverse, each piece recorded for this host; safe to run on a half-made host."""
    for rec in (hs.forwarder, hs.db_forwarder):
        if rec:
            procs.stop(_proc(rec), grace=3)
    if hs.nspawn:
        if procs.stop(_proc(hs.nspawn), grace=30):  # SIGTERM: systemd in the container powers off
            say(f"{hs.name}: did not power off within 30s; killed")
    cgroups.remove(hs.machine)
    if hs.mounted and is_mounted(hs.merged):
        local.run(commands.umount(hs.merged), step=f"{hs.name}: unmount")
    if hs.netns and Path(f"/run/netns/{hs.machine}").exists():
        local.run(commands.netns_delete(hs.machine), step=f"{hs.name}: delete network namespace")
    # nspawn may leave its (empty) mount-propagation directory behind when not registered.
    propagate = Path("/run/systemd/nspawn/propagate") / hs.machine
    if propagate.is_dir():
        shutil.rmtree(propagate, ignore_errors=True)
    shutil.rmtree(hs.dir, ignore_errors=True)


def status(settings: SandboxSettings) -> list[dict]:
    """One row per recorded host: is it running, where, and what it uses."""
    state = State.load(settings.state_file)
    rows = []
    for hs in sorted(state.hosts.values(), key=lambda h: h.index):
        running = _running(hs)
        rows.append({
            "name": hs.name, "running": running, "ssh": f"127.0.0.1:{hs.ssh_port}",
            "netns": hs.machine,
            "memory_mib": round(container_memory(_proc(hs.nspawn).pid) / 2**20, 1) if running else None,
        })
    return rows


def container_memory(nspawn_pid: int) -> int:
    """Proportional set size, in bytes, of every process in the container's PID namespace."""
    try:
        children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
        init = int(children[0])
        ns = os.readlink(f"/proc/{init}/ns/pid")
    except (OSError, IndexError, ValueError):
        return 0
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns/pid") != ns:
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total
