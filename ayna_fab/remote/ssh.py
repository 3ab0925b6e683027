"""SSH connections with strict host-key checking, for paramiko and Fabric alike.

Fabric's Connection accepts any host key, even a changed one (it sets
AutoAddPolicy and never reads known_hosts). Every connection ayna-fab opens goes
through here instead: known_hosts loaded, unknown keys rejected.

A host behind a bastion names it in hosts.toml (`gateway`): the bastion is reached first,
as its own strict connection, and the host through a direct-tcpip channel of it, with its
own strict check. No hop forwards the SSH agent. ~/.ssh/config is not read at all: Fabric
would apply its ProxyJump through a connection that accepts any key, and its HostName,
User, Port and IdentityFile would quietly override hosts.toml.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Config, Connection

from ayna_fab.errors import AynaFabError, OperationFailed, UsageError

# Seconds between SSH keepalive messages on every connection ayna-fab opens: an idle connection
# (a long host call) still has traffic, so a NAT entry or a stateful firewall does not drop it
# silently. The host's holder has its own liveness rule (hostprog/wire.SILENT_AFTER).
KEEPALIVE = 15

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
    gateway: "Endpoint | None" = None   # a bastion to reach this host through

    @property
    def known_hosts_path(self) -> Path:
        return Path(os.path.expanduser(self.known_hosts))

    @property
    def key_name(self) -> str:
        """How known_hosts names this host ([host]:port when the port is not 22)."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


class StrictConnection(Connection):
    """A Connection that also closes the gateway connection it was given (Fabric leaves it open)."""

    def close(self):
        super().close()
        if isinstance(self.gateway, Connection):
            self.gateway.close()


def _config() -> Config:
    """Fabric's configuration without ~/.ssh/config or /etc/ssh/ssh_config (see the module's note)."""
    return Config(lazy=True, ssh_config=paramiko.SSHConfig())


def connection(ep: Endpoint, gateway: Connection | None = None) -> Connection:
    """A Fabric Connection (not yet open) that trusts only the keys in ep.known_hosts; through
    `gateway` (an open strict connection to ep's bastion) when given."""
    kwargs = connect_kwargs(ep)
    timeout = kwargs.pop("timeout")
    conn = StrictConnection(host=ep.hostname, user=ep.user, port=ep.port, connect_timeout=timeout,
                            connect_kwargs=kwargs, config=_config(), forward_agent=False,
                            gateway=gateway if gateway is not None else False)
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    path = ep.known_hosts_path
    if path.exists():
        conn.client.load_system_host_keys(str(path))  # read-only: never written back
    return conn


def connect_kwargs(ep: Endpoint) -> dict:
    kw: dict = {"timeout": ep.timeout, "banner_timeout": ep.timeout, "auth_timeout": ep.timeout}
    if ep.identity_file:
        kw.update(key_filename=str(os.path.expanduser(ep.identity_file)), allow_agent=False,
                  look_for_keys=False)
    return kw


def _gateway(ep: Endpoint) -> Connection | None:
    """ep's bastion, connected strictly; its failures say that it is ep's gateway."""
    if ep.gateway is None:
        return None
    try:
        return connect(ep.gateway)
    except AynaFabError as exc:
        raise type(exc)(f"through its gateway {ep.gateway.name}: {exc.message}", host=ep.name,
                        step="connect", hint=exc.hint) from exc


def connect(ep: Endpoint) -> Connection:
    """Open a strict connection, turning paramiko's exceptions into messages that say what to do."""
    conn = connection(ep, _gateway(ep))
    try:
        conn.open()
    except paramiko.BadHostKeyException as exc:
        conn.close()
        raise UsageError(
            f"HOST KEY CHANGED for {ep.key_name}: it offered {exc.key.get_name()} "
            f"{fingerprint(exc.key)}, but known_hosts ({ep.known_hosts_path}) has another key. "
            "Someone may be intercepting the connection, or the server was rebuilt. Nothing was run.",
            host=ep.name, step="connect",
            hint=f"if the server really was rebuilt: ssh-keygen -R '{ep.key_name}' -f {ep.known_hosts_path}, "
                 f"then: fab -H {ep.name} trust") from exc
    except paramiko.AuthenticationException as exc:
        conn.close()
        raise UsageError(f"{ep.user}@{ep.key_name} refused our key: {exc}", host=ep.name, step="connect",
                         hint="check identity_file in hosts.toml and the user's authorized_keys") from exc
    except paramiko.SSHException as exc:
        conn.close()
        if "not found in known_hosts" in str(exc):
            raise UsageError(
                f"{ep.key_name} is not in {ep.known_hosts_path}; refusing an unknown host key",
                host=ep.name, step="connect",
                hint=f"check and record its key with: fab -H {ep.name} trust") from exc
        raise OperationFailed(f"SSH to {ep.user}@{ep.key_name} failed: {exc}", host=ep.name,
                              step="connect") from exc
    except (OSError, EOFError, socket.timeout) as exc:
        conn.close()
        raise OperationFailed(f"cannot reach {ep.key_name}: {exc}", host=ep.name, step="connect",
                              hint="is the host up and the port right?") from exc
    conn.transport.set_keepalive(KEEPALIVE)
    no_delay(getattr(conn.transport, "sock", None))
    return conn


def no_delay(sock) -> None:
    """Send each SSH packet at once (TCP_NODELAY, as OpenSSH's client does). Without it every
    channel a call opens waits about 40 ms (Nagle's algorithm holding a small packet until the
    host's delayed acknowledgement of the last one) on any link, however near. A bastion's
    channel is no socket: its own connection got this when it was opened."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _GatewayTransport(paramiko.Transport):
    """A Transport over a bastion's channel, closing the bastion's connection with itself."""

    gateway: Connection | None = None

    def close(self):
        super().close()
        if self.gateway is not None:
            self.gateway.close()


def transport(ep: Endpoint) -> paramiko.Transport:
    """A Transport to ep, not yet started (to read its host key): directly, or through its
    gateway, which is itself connected strictly (an unknown bastion is refused here too)."""
    gateway = _gateway(ep)
    if gateway is None:
        return paramiko.Transport((ep.hostname, ep.port))
    try:
        channel = gateway.transport.open_channel("direct-tcpip", (ep.hostname, ep.port), ("", 0),
                                                 timeout=ep.timeout)
    except Exception:
        gateway.close()
        raise
    t = _GatewayTransport(channel)
    t.gateway = gateway
    return t


def fingerprint(key: paramiko.PKey) -> str:
    """SHA256:... as OpenSSH prints it, so people can compare with ssh-keygen -lf."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def run(conn: Connection, command: str, timeout: float | None = 60.0) -> tuple[int, str, str]:
    """Run one shell command; return (exit status, stdout, stderr)."""
    result = conn.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
    return result.exited, result.stdout, result.stderr
