"""A TCP forwarder from the controller's loopback into a host's network namespace.

It listens in the controller's namespace, then enters the host's namespace, so
every connection it makes lands on the host's own loopback. It can add a
round-trip delay (half each way, without capping throughput) to simulate a far
server, and cut every live connection to simulate a dropped link. The kernel
here has no netem, hence a forwarder of our own.

With --listen-unix it listens on a Unix socket instead: the sandbox puts one in
every host's filesystem, forwarding to the first host's PostgreSQL, so a group
of hosts shares one database as a fleet does.

Control: a Unix socket taking one line per request: `ping`, `rtt MS`, `cut`,
`block on|off` (cut everything and refuse new connections: the host is
unreachable), `silent on|off` (a silent partition, as a closed lid or a dropped NAT
entry makes: connections stay open, nothing is forwarded and nothing is reset, new
connections are never answered; off cuts the connections that lost bytes, whose
streams cannot go on), `stats` (including the traffic counted since start: bytes each way,
connections, and turns), `reset` (zero the traffic counters); each answered with one
JSON line.

A turn is counted each time the client speaks again after the server has spoken on
that connection: the client (usually) waited for that answer, so on a far link every
turn costs about one round trip. It is measured from outside (SSH is encrypted), so it
is an estimate: an SSH client that keeps speaking while output streams in (window
adjustments) adds turns that cost nothing. Run as
`python -m ayna_fab.sandbox.forwarder --listen 127.0.0.1:2201 --netns PATH
--target 127.0.0.1:22 --control PATH`.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import socket
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000
CHUNK = 64 * 1024


def enter_netns(path: str) -> None:
    """Move this process into a network namespace; sockets opened before stay where they were."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "setns"):
            os.setns(fd, CLONE_NEWNET)
        else:  # Python 3.11
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Traffic:
    """Bytes each way, connections and turns (see the module's docstring), since start or reset."""

    def __init__(self) -> None:
        self.bytes_up = self.bytes_down = self.connections = self.turns = 0

    def up(self, side: dict, n: int) -> None:
        self.bytes_up += n
        if side["last"] == "down":
            self.turns += 1
        side["last"] = "up"

    def down(self, side: dict, n: int) -> None:
        self.bytes_down += n
        side["last"] = "down"

    def as_dict(self) -> dict:
        return {"bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
                "connections": self.connections, "turns": self.turns}


class Forwarder:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.rtt_ms = 0.0
        self.live: set[asyncio.StreamWriter] = set()
        self.accepted = 0
        self.cuts = 0
        self.blocked = False
        self.silent = False
        self.dropped = 0                                # bytes dropped while silent
        self.holed: set[asyncio.StreamWriter] = set()   # connections that lost bytes to a silence
        self.traffic = Traffic()

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.blocked:  # an unreachable host: connections are dropped at once
            client_w.transport.abort()
            return
        if self.silent:
            await self._unanswered(client_r, client_w)
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        pair = (client_w, server_w)
        self.live.update(pair)
        self.traffic.connections += 1
        side = {"last": None}  # who spoke last on this connection
        try:
            hole = lambda: self.holed.update(pair)  # noqa: E731
            up = asyncio.create_task(self._pipe(client_r, server_w, lambda n: self.traffic.up(side, n), hole))
            down = asyncio.create_task(self._pipe(server_r, client_w, lambda n: self.traffic.down(side, n), hole))
            pending = {up, down}
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(not t.result() for t in done):  # a reset on one side resets the other
                    for t in pending:
                        t.cancel()
                    for w in pair:
                        w.transport.abort()
                    break
        finally:
            for w in pair:
                self.live.discard(w)
                self.holed.discard(w)
                w.close()

    async def _unanswered(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """A connection made while the link is silent: never answered, never reset; what it
        sends is dropped until it gives up or the silence ends (then it is cut)."""
        self.holed.add(client_w)
        try:
            while data := await client_r.read(CHUNK):
                self.dropped += len(data)
        except (ConnectionError, OSError):
            pass
        finally:
            self.holed.discard(client_w)
            client_w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    count=lambda n: None, hole=lambda: None) -> bool:
        """Copy one direction, each chunk held back rtt/2 from when it arrived (order kept);
        while the link is silent, drop what comes (hole marks the connection as having lost it).

        Returns True on a clean end of stream, False when either side broke.
        """
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        sender = asyncio.create_task(deliver())
        holed = False
        try:
            while True:
                data = await reader.read(CHUNK)
                if self.silent or holed:   # dropped, end of stream included: no FIN, no reset
                    holed = True
                    hole()
                    self.dropped += len(data)
                    while not data and self.silent:
                        await asyncio.sleep(0.1)
                    if self.silent:
                        continue
                    return False   # the link is back, but this stream has a hole: it cannot go on
                if data:
                    count(len(data))
                queue.put_nowait((time.monotonic() + self.rtt_ms / 2000.0, data))
                if not data:
                    break
            await sender
            return True
        except (ConnectionError, OSError):
            return False
        finally:
            sender.cancel()

    def cut(self) -> int:
        """Drop every live connection at once, as a broken link would (no FIN, a reset)."""
        n = len(self.live) // 2
        for w in list(self.live):
            w.transport.abort()
        self.live.clear()
        for w in list(self.holed):
            w.transport.abort()
        self.holed.clear()
        self.cuts += 1
        return n

    def set_silent(self, on: bool) -> int:
        """Start or end a silent partition; its end cuts the connections that lost bytes to it
        (how many is returned), as a peer whose packets were lost would reset them."""
        self.silent = on
        if on:
            return 0
        holed = [w for w in self.holed if w in self.live]
        for w in list(self.holed):
            w.transport.abort()
        self.holed.clear()
        return len(holed) // 2

    async def control(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            line = (await r.readline()).decode().strip().split()
            if not line:
                reply = {"error": "empty request"}
            elif line[0] == "ping":
                reply = {"ok": True}
            elif line[0] == "rtt" and len(line) == 2:
                self.rtt_ms = max(0.0, float(line[1]))
                reply = {"ok": True, "rtt_ms": self.rtt_ms}
            elif line[0] == "cut":
                reply = {"ok": True, "cut": self.cut()}
            elif line[0] == "block" and len(line) == 2 and line[1] in ("on", "off"):
                self.blocked = line[1] == "on"
                reply = {"ok": True, "blocked": self.blocked, "cut": self.cut() if self.blocked else 0}
            elif line[0] == "silent" and len(line) == 2 and line[1] in ("on", "off"):
                reply = {"ok": True, "silent": line[1] == "on", "cut": self.set_silent(line[1] == "on")}
            elif line[0] == "stats":
                reply = {"ok": True, "rtt_ms": self.rtt_ms, "live": len(self.live) // 2,
                         "accepted": self.accepted, "cuts": self.cuts, "blocked": self.blocked,
                         "silent": self.silent, "dropped": self.dropped, **self.traffic.as_dict()}
            elif line[0] == "reset":
                self.traffic = Traffic()
                reply = {"ok": True}
            else:
                reply = {"error": f"unknown request {' '.join(line)!r}"}
        except ValueError as exc:
            reply = {"error": str(exc)}
        w.write((json.dumps(reply) + "\n").encode())
        await w.drain()
        w.close()


async def serve(listen: socket.socket, control_sock: socket.socket, fwd: Forwarder) -> None:
    if listen.family == socket.AF_UNIX:
        server = await asyncio.start_unix_server(fwd.handle, sock=listen)
    else:
        server = await asyncio.start_server(fwd.handle, sock=listen)
    ctl = await asyncio.start_unix_server(fwd.control, sock=control_sock)
    async with server, ctl:
        await asyncio.gather(server.serve_forever(), ctl.serve_forever())


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", help="HOST:PORT in the controller's namespace")
    where.add_argument("--listen-unix", help="a Unix socket path to listen on (mode 0666)")
    p.add_argument("--netns", help="path of the network namespace to connect from")
    p.add_argument("--target", default="127.0.0.1:22", help="HOST:PORT inside that namespace")
    p.add_argument("--control", required=True, help="path of the control Unix socket")
    p.add_argument("--rtt-ms", type=float, default=0.0)
    args = p.parse_args(argv)

    if args.listen_unix:
        path = Path(args.listen_unix)
        path.unlink(missing_ok=True)
        listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listen.bind(str(path))
        os.chmod(path, 0o666)  # any user of the host may connect, as to PostgreSQL's own socket
    else:
        listen = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listen.bind(_split(args.listen))
    listen.listen(128)
    control_path = Path(args.control)
    control_path.unlink(missing_ok=True)
    control_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control_sock.bind(str(control_path))
    os.chmod(control_path, 0o600)
    control_sock.listen(8)
    if args.netns:
        enter_netns(args.netns)
    fwd = Forwarder(*_split(args.target))
    fwd.rtt_ms = args.rtt_ms
    try:
        asyncio.run(serve(listen, control_sock, fwd))
    except KeyboardInterrupt:
        pass


def request(control_path: Path, line: str, timeout: float = 5.0) -> dict:
    """Send one control request to a running forwarder and return its JSON answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(control_path))
        s.sendall((line + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return json.loads(data.decode())


if __name__ == "__main__":
    main()
