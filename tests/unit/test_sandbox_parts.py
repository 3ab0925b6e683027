"""The sandbox's pure parts: commands as data, settings, preflight, hosts file, forwarder."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ayna_fab.config import model as config
from ayna_fab.errors import UsageError
from ayna_fab.sandbox import commands, forwarder, hostsfile, keys, preflight, procs
from ayna_fab.sandbox.settings import SandboxSettings, detect_mirror
from tests.ports import reserved_port


def test_nspawn_boots_systemd_in_the_hosts_own_namespace_with_a_read_only_wheelhouse():
    argv = commands.nspawn_boot(Path("/r/merged"), "aynasbx1", "sandbox1", Path("/c/wheelhouse"))
    assert argv[0] == "systemd-nspawn" and "--boot" in argv
    assert "--network-namespace-path=/run/netns/aynasbx1" in argv
    assert "--bind-ro=/c/wheelhouse:/srv/wheelhouse" in argv
    assert "--hostname=sandbox1" in argv and "--directory=/r/merged" in argv


def test_overlay_mount_keeps_the_shared_rootfs_as_the_lower_layer():
    argv = commands.mount_overlay(Path("/c/rootfs"), Path("/h/upper"), Path("/h/work"), Path("/h/merged"))
    assert argv[-1] == "/h/merged"
    assert "lowerdir=/c/rootfs,upperdir=/h/upper,workdir=/h/work" in argv


def test_wheels_are_fetched_for_the_hosts_python_not_the_controllers():
    argv = commands.pip_download("/usr/bin/python3", Path("/wh"), [Path("a.txt")], "x86_64")
    assert argv[:4] == ["/usr/bin/python3", "-m", "pip", "download"]
    assert "--only-binary=:all:" in argv
    assert argv[argv.index("--python-version") + 1] == "3.11"
    assert "manylinux_2_17_x86_64" in argv and argv[-2:] == ["-r", "a.txt"]


def test_settings_derive_every_name_from_index_and_prefix(tmp_path):
    s = SandboxSettings(state_dir=tmp_path, prefix="aynatest", ssh_port_base=2300)
    assert (s.host_name(3), s.machine_name(3), s.ssh_port(3)) == ("sandbox3", "aynatest3", 2303)
    assert s.host_dir(3) == tmp_path / "hosts" / "sandbox3"


@pytest.mark.parametrize("prefix", ["", "A", "has-dash", "x" * 11, "a;rm", "1abc"])
def test_hostile_or_odd_prefixes_are_refused(prefix):
    with pytest.raises(UsageError, match="sandbox prefix"):
        SandboxSettings(prefix=prefix)


def test_port_base_outside_range_is_refused():
    with pytest.raises(UsageError, match="port base"):
        SandboxSettings(ssh_port_base=80)


def test_mirror_is_read_from_deb822_and_one_line_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    assert detect_mirror(tmp_path) == "http://mirror.example/debian"
    other = tmp_path / "old"
    other.mkdir()
    (other / "sources.list").write_text("deb [arch=amd64] http://m2.example/debian bookworm main\n")
    assert detect_mirror(other) == "http://m2.example/debian"
    assert detect_mirror(tmp_path / "none").startswith("http")


def test_preflight_names_the_fix_for_each_missing_prerequisite(tmp_path):
    fs = tmp_path / "filesystems"
    fs.write_text("nodev\toverlay\n")
    with pytest.raises(UsageError, match="need Linux"):
        preflight.check(platform="darwin", euid=0, filesystems=fs)
    with pytest.raises(UsageError, match="need root") as info:
        preflight.check(platform="linux", euid=1000, filesystems=fs)
    assert "sudo" in str(info.value)
    with pytest.raises(UsageError) as info:
        preflight.check(platform="linux", euid=0, which=lambda c: None if c == "systemd-nspawn" else "/bin/x",
                        filesystems=fs)
    assert "apt-get install -y systemd-container" in str(info.value)
    fs.write_text("nodev\tproc\n")
    with pytest.raises(UsageError, match="overlayfs"):
        preflight.check(platform="linux", euid=0, which=lambda c: "/bin/x", filesystems=fs)
    fs.write_text("nodev\toverlay\n")
    preflight.check(platform="linux", euid=0, which=lambda c: "/bin/x", filesystems=fs)


def test_hosts_file_written_by_the_sandbox_loads_as_an_inventory(tmp_path):
    text = hostsfile.render([("sandbox1", 2201), ("sandbox2", 2202)], tmp_path / "id_ed25519",
                            tmp_path / "known_hosts")
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    cfg = config.load(path)
    assert [h.port for h in cfg.hosts.values()] == [2201, 2202]
    assert cfg.groups["sandbox"] == ("sandbox1", "sandbox2")
    assert cfg.hosts["sandbox1"].known_hosts == tmp_path / "known_hosts"


def test_known_hosts_names_non_default_ports_in_brackets():
    assert keys.known_hosts_line("127.0.0.1", 2201, "ssh-ed25519 AAAA root@x\n") == \
        "[127.0.0.1]:2201 ssh-ed25519 AAAA"
    assert keys.known_hosts_line("h.example", 22, "ssh-ed25519 AAAA") == "h.example ssh-ed25519 AAAA"


def test_a_process_record_does_not_match_a_reused_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        rec = procs.ProcRecord(proc.pid, procs.start_time_of(proc.pid))
        assert procs.is_alive(rec)
        assert not procs.is_alive(procs.ProcRecord(proc.pid, rec.start_time + 1))
        assert procs.stop(rec, grace=5) is False  # SIGTERM was enough
        assert not procs.is_alive(rec)
    finally:
        proc.kill()
        proc.wait()


# --- the forwarder, run as its own process on loopback (no namespace needed) ---------------

@pytest.fixture
def echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    def _echo(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    stop.set()
    srv.close()


@pytest.fixture
def fwd(tmp_path, echo_server):
    port = reserved_port()
    control = tmp_path / "ctl.sock"
    proc = subprocess.Popen([sys.executable, "-m", "ayna_fab.sandbox.forwarder", "--listen", f"127.0.0.1:{port}",
                             "--target", f"127.0.0.1:{echo_server}", "--control", str(control)])
    for _ in range(100):
        if control.exists():
            break
        time.sleep(0.05)
    yield port, control
    proc.terminate()
    proc.wait(5)


def _roundtrip(sock: socket.socket, payload: bytes) -> float:
    t = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        got += sock.recv(65536)
    assert got == payload
    return time.perf_counter() - t


def test_forwarder_passes_bytes_through_unchanged(fwd):
    port, _ = fwd
    with socket.create_connection(("127.0.0.1", port)) as s:
        blob = bytes(range(256)) * 4096  # 1 MiB, every byte value
        s.sendall(blob)
        got = b""
        while len(got) < len(blob):
            got += s.recv(1 << 16)
        assert got == blob


def test_forwarder_delay_is_at_least_the_rtt_asked_for(fwd):
    port, control = fwd
    with socket.create_connection(("127.0.0.1", port)) as s:
        base = min(_roundtrip(s, b"x") for _ in range(3))
        assert forwarder.request(control, "rtt 120") == {"ok": True, "rtt_ms": 120.0}
        slow = min(_roundtrip(s, b"x") for _ in range(3))
    assert slow >= 0.12 and slow > base


def test_forwarder_cut_resets_live_connections_and_accepts_new_ones(fwd):
    port, control = fwd
    s = socket.create_connection(("127.0.0.1", port))
    _roundtrip(s, b"hello")
    assert forwarder.request(control, "stats")["live"] == 1
    assert forwarder.request(control, "cut")["cut"] == 1
    s.settimeout(5)
    with pytest.raises(OSError):
        s.sendall(b"more")
        if not s.recv(10):
            raise ConnectionResetError("closed")
    s.close()
    with socket.create_connection(("127.0.0.1", port)) as s2:
        _roundtrip(s2, b"again")


def test_forwarder_rejects_unknown_requests(fwd):
    _, control = fwd
    assert "error" in forwarder.request(control, "explode")


def test_forwarder_counts_bytes_connections_and_turns(fwd):
    port, control = fwd
    assert forwarder.request(control, "reset") == {"ok": True}
    with socket.create_connection(("127.0.0.1", port)) as s:
        for payload in (b"ab", b"cde", b"f"):  # three exchanges: two turns after the first answer
            _roundtrip(s, payload)
    stats = forwarder.request(control, "stats")
    assert (stats["bytes_up"], stats["bytes_down"], stats["connections"], stats["turns"]) == (6, 6, 1, 2)


def _nothing_arrives(sock: socket.socket, wait: float = 0.5) -> None:
    """Neither a byte nor an end of file nor a reset comes: the link is silent, not broken."""
    sock.settimeout(wait)
    with pytest.raises(socket.timeout):
        sock.recv(10)


def test_forwarder_silent_keeps_connections_open_forwards_nothing_and_cuts_them_after(fwd):
    port, control = fwd
    s = socket.create_connection(("127.0.0.1", port))
    _roundtrip(s, b"hello")
    assert forwarder.request(control, "silent on") == {"ok": True, "silent": True, "cut": 0}
    s.sendall(b"lost")
    _nothing_arrives(s)
    with socket.create_connection(("127.0.0.1", port)) as fresh:   # a new connection is never answered
        fresh.sendall(b"anyone?")
        _nothing_arrives(fresh)
        stats = forwarder.request(control, "stats")
        assert stats["silent"] is True and stats["live"] == 1 and stats["dropped"] >= len(b"lost")
        assert forwarder.request(control, "silent off")["cut"] == 1   # its stream lost bytes
    s.settimeout(5)
    with pytest.raises(OSError):
        s.sendall(b"more")
        if not s.recv(10):
            raise ConnectionResetError("closed")
    s.close()
    with socket.create_connection(("127.0.0.1", port)) as s2:
        _roundtrip(s2, b"again")


def test_sandbox_link_asks_the_hosts_forwarder_for_silence(monkeypatch):
    from types import SimpleNamespace

    from invoke import Context
    from invoke.exceptions import Exit

    from ayna_fab.cli.tasks import sandbox as task
    from ayna_fab.sandbox import manager
    asked = []
    monkeypatch.setattr(manager.State, "load", classmethod(
        lambda cls, path: SimpleNamespace(hosts={"sandbox1": SimpleNamespace(control="/ctl")})))
    monkeypatch.setattr(forwarder, "request", lambda control, line: asked.append((control, line)) or {"ok": True})
    task.link(Context(), name="sandbox1", silent="on")
    task.link(Context(), name="sandbox1", silent="off")
    assert asked == [("/ctl", "silent on"), ("/ctl", "silent off")]
    with pytest.raises(Exit) as exit_:
        task.link(Context(), name="sandbox1", silent="maybe")
    assert exit_.value.code == 2 and len(asked) == 2


def test_a_sandbox_too_big_for_the_inotify_limit_is_refused_with_the_sysctl_that_fixes_it():
    import pytest

    from ayna_fab.errors import UsageError
    from ayna_fab.sandbox import preflight

    preflight.check_inotify(10, limit=128, in_use=20)   # 120 of 128
    preflight.check_inotify(0, limit=128, in_use=500)   # nothing new boots
    with pytest.raises(UsageError, match="32 more host.* 16 of the limit of 128") as e:
        preflight.check_inotify(32, limit=128, in_use=16)
    assert e.value.hint == "sysctl -w fs.inotify.max_user_instances=1024"


def test_inotify_instances_in_use_are_counted_from_proc(tmp_path):
    from ayna_fab.sandbox import preflight

    (tmp_path / "1/fd").mkdir(parents=True)
    (tmp_path / "1/fd/3").symlink_to("anon_inode:inotify")
    (tmp_path / "1/fd/4").symlink_to("/dev/null")
    (tmp_path / "22/fd").mkdir(parents=True)
    (tmp_path / "22/fd/5").symlink_to("anon_inode:inotify")
    assert preflight.inotify_in_use(tmp_path) == 2
