"""SSH connections with strict host-key checking, for paramiko and Fabric alike.

Fabric's Connection accepts any host key, even a changed one (it sets
AutoAddPolicy and never reads known_hosts). Every connection ayna-fab opens goes
through here instead: known_hosts loaded, unknown keys rejected.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ayna_fab.errors import OperationFailed, UsageError

# paramiko logs every failed handshake with a traceback; our own messages say what matters.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to log in; everything a connection needs and nothing else."""

    name: str                 # the name in hosts.toml, used in every message
    hostname: str
    port: int = 22
    user: str = "root"
    identity_file: Path | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts")
    timeout: float = 10.0

    @property
    def known_hosts_path(self) -> Path:
        return Path(os.path.expanduser(self.known_hosts))

    @property
    def key_name(self) -> str:
        """How known_hosts names this host ([host]:port when the port is not 22)."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def strict_client(ep: Endpoint) -> paramiko.SSHClient:
    """A client that trusts only the keys in ep.known_hosts (not yet connected)."""
    client = paramiko.SSHClient()
    path = ep.known_hosts_path
    if path.exists():
        client.load_system_host_keys(str(path))  # read-only: never written back
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def connect_kwargs(ep: Endpoint) -> dict:
    kw: dict = {"timeout": ep.timeout, "banner_timeout": ep.timeout, "auth_timeout": ep.timeout}
    if ep.identity_file:
        kw.update(key_filename=str(os.path.expanduser(ep.identity_file)), allow_agent=False,
                  look_for_keys=False)
    return kw


def connect(ep: Endpoint, **extra) -> paramiko.SSHClient:
    """Open a strict connection, turning paramiko's exceptions into messages that say what to do."""
    client = strict_client(ep)
    try:
        client.connect(ep.hostname, port=ep.port, username=ep.user, **{**connect_kwargs(ep), **extra})
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise UsageError(
            f"HOST KEY CHANGED for {ep.key_name}: it offered {exc.key.get_name()} "
            f"{exc.key.get_fingerprint().hex()}, known_hosts ({ep.known_hosts_path}) has another key. "
            "Someone may be intercepting the connection, or the server was rebuilt. Nothing was run.",
            host=ep.name, step="connect",
            hint=f"if the server really was rebuilt: ssh-keygen -R '{ep.key_name}' -f {ep.known_hosts_path}, "
                 "then trust the new key") from exc
    except paramiko.SSHException as exc:
        client.close()
        if "not found in known_hosts" in str(exc):
            raise UsageError(
                f"{ep.key_name} is not in {ep.known_hosts_path}; refusing an unknown host key",
                host=ep.name, step="connect",
                hint=f"check the fingerprint, then record it: ssh-keyscan -p {ep.port} {ep.hostname} "
                     f">> {ep.known_hosts_path}") from exc
        raise OperationFailed(f"SSH to {ep.user}@{ep.key_name} failed: {exc}", host=ep.name,
                              step="connect") from exc
    except (OSError, socket.timeout) as exc:
        client.close()
        raise OperationFailed(f"cannot reach {ep.key_name}: {exc}", host=ep.name, step="connect",
                              hint="is the host up and the port right?") from exc
    return client


def run(client: paramiko.SSHClient, command: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run one shell command; return (exit status, stdout, stderr)."""
    _, out, err = client.exec_command(command, timeout=timeout)
    stdout = out.read().decode(errors="replace")
    stderr = err.read().decode(errors="replace")
    return out.channel.recv_exit_status(), stdout, stderr
