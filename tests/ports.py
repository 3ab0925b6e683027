"""Ports for servers a test starts: found free and kept reserved until the server takes them.

A port found free and then closed can be taken by anyone before the server binds it. A socket
bound with SO_REUSEADDR that never listens keeps other binds (and the kernel's choice of ports for
outgoing connections) off the port, refuses connections like a closed port, and still lets a server
that binds with SO_REUSEADDR (http.server, the sandbox forwarder, the pre-flip check's servers)
take it. Reservations last as long as the test process.
"""

from __future__ import annotations

import socket

_reserved: list[socket.socket] = []


def reserved_port() -> int:
    """A 127.0.0.1 port nothing listens on, reserved for a server that binds with SO_REUSEADDR."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    _reserved.append(sock)
    return sock.getsockname()[1]
