"""A host's SSH key, as `fab trust` shows and records it: what known_hosts holds for the host,
the key the host offers, and the line that records it."""

from __future__ import annotations

import paramiko

from ayna_fab.errors import OperationFailed
from ayna_fab.remote import ssh

# The signature algorithms that carry an ssh-rsa key (known_hosts names the key, not the algorithm).
_KEY_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def recorded(ep: ssh.Endpoint) -> dict[str, paramiko.PKey]:
    """The keys known_hosts records for the host, by type ({} for a host never trusted)."""
    known = paramiko.HostKeys()
    if ep.known_hosts_path.exists():
        known.load(str(ep.known_hosts_path))
    return dict(known.lookup(ep.key_name) or {})


def offered(ep: ssh.Endpoint, prefer: list[str] = ()) -> paramiko.PKey:
    """The host's key, asking first for the types known_hosts records (as an SSH client does), so a
    host that still has its recorded key shows it, and one that lost it shows what it has instead."""
    try:
        transport = ssh.transport(ep)  # through the host's gateway, if it has one
        try:
            wanted = {alg for kind in prefer for alg in _KEY_ALGORITHMS.get(kind, (kind,))}
            options = transport.get_security_options()
            options.key_types = ([t for t in options.key_types if t in wanted]
                                 + [t for t in options.key_types if t not in wanted])
            transport.start_client(timeout=ep.timeout)
            return transport.get_remote_server_key()
        finally:
            transport.close()
    except (OSError, paramiko.SSHException, EOFError) as exc:
        raise OperationFailed(f"cannot read the host key of {ep.key_name}: {exc}", host=ep.name,
                              step="trust", hint="is the host up and the port right?") from exc


def record(ep: ssh.Endpoint, key: paramiko.PKey) -> None:
    """Append the key to known_hosts, making its directory if need be."""
    ep.known_hosts_path.parent.mkdir(parents=True, exist_ok=True)
    with open(ep.known_hosts_path, "a") as f:
        f.write(f"{ep.key_name} {key.get_name()} {key.get_base64()}\n")
