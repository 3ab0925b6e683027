"""`fab trust` against a real SSH handshake (a paramiko server on 127.0.0.1): a known host that
offers any other key, of the same type or another one, is a changed key, never a new host."""

from __future__ import annotations

import io
import socket
import threading

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519 as ed

from invoke.exceptions import Exit
from ayna_fab.cli.tasks import provisioning as host_tasks


@pytest.fixture
def server():
    """An SSH server that offers the host keys given, on a free local port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    keys: list[paramiko.PKey] = []

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            for key in keys:
                t.add_server_key(key)
            try:
                t.start_server(server=paramiko.ServerInterface())
            except (paramiko.SSHException, EOFError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield sock.getsockname()[1], keys
    sock.close()


def inventory(tmp_path, port, known_hosts):
    path = tmp_path / "hosts.toml"
    path.write_text(f'[defaults]\nknown_hosts = "{known_hosts}"\ndefault_target = "box"\n\n'
                    f'[hosts.box]\nhostname = "127.0.0.1"\nport = {port}\n')
    return path


def record(path, port, key):
    path.write_text(f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n")


def trust(monkeypatch, hosts_file):
    monkeypatch.setenv("AYNA_FAB_HOSTS", str(hosts_file))
    host_tasks.trust.body(None, yes=True)


def ed25519() -> paramiko.PKey:
    pem = ed.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem.decode()))


def test_a_new_host_is_recorded(tmp_path, server, monkeypatch):
    port, keys = server
    keys.append(ed25519())
    known = tmp_path / "known_hosts"
    trust(monkeypatch, inventory(tmp_path, port, known))
    assert known.read_text() == f"[127.0.0.1]:{port} ssh-ed25519 {keys[0].get_base64()}\n"
    trust(monkeypatch, inventory(tmp_path, port, known))   # again: already trusted, nothing added
    assert len(known.read_text().splitlines()) == 1


def test_the_recorded_key_is_found_among_several(tmp_path, server, monkeypatch):
    port, keys = server
    rsa = paramiko.RSAKey.generate(2048)
    keys.extend([ed25519(), rsa])       # a client prefers ed25519; known_hosts holds the RSA key
    known = tmp_path / "known_hosts"
    record(known, port, rsa)
    trust(monkeypatch, inventory(tmp_path, port, known))
    assert known.read_text().count("\n") == 1


@pytest.mark.parametrize("recorded_kind", ["same type", "another type"])
def test_a_known_host_offering_another_key_is_a_changed_key(tmp_path, server, monkeypatch, capsys, recorded_kind):
    port, keys = server
    keys.append(ed25519())
    known = tmp_path / "known_hosts"
    old = ed25519() if recorded_kind == "same type" else paramiko.RSAKey.generate(2048)
    record(known, port, old)
    before = known.read_text()
    with pytest.raises(Exit) as err:
        trust(monkeypatch, inventory(tmp_path, port, known))
    assert err.value.code == 2
    text = capsys.readouterr().err
    assert "HOST KEY CHANGED" in text and "ssh-keygen -R" in text
    assert "now offers ssh-ed25519" in text and f"has {old.get_name()} SHA256:" in text
    assert known.read_text() == before     # nothing recorded
