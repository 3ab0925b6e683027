"""What one connection's channels cost with TCP_NODELAY off and on, side by side.

    AYNA_FAB_HOSTS=FILE .venv/bin/python benchmarks/ssh_channels.py [--host sandbox1] [--runs 7]

A deploy's pattern of channels on one connection, as the deploy user: a held channel (the lock's
holder), an SFTP put of 600 bytes, two commands back to back (`python3 -c pass`), then the held
channel ended. Each run does it on a new connection with Nagle's algorithm on (TCP_NODELAY off)
and off, alternating which goes first; prints the median milliseconds of each part.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ayna_fab.config import targets  # noqa: E402
from ayna_fab.config.model import load  # noqa: E402
from ayna_fab.remote import ssh  # noqa: E402
from ayna_fab.remote.transport import Command, Remote  # noqa: E402

PARTS = ("sftp put", "command 1", "command 2", "end held", "total")


def once(ep: ssh.Endpoint, nodelay: int) -> dict[str, float]:
    conn = ssh.connect(ep)
    conn.transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)
    r = Remote(ep.name, conn)
    try:
        held = conn.client.get_transport().open_session()
        held.exec_command("cat >/dev/null")
        time.sleep(0.05)
        a = time.perf_counter()
        r.put_bytes(b"x" * 600, "/tmp/ayna-fab-bench-put", step="bench")
        b = time.perf_counter()
        r.run(Command("python3 -c pass", "bench"))
        c = time.perf_counter()
        r.run(Command("python3 -c pass", "bench"))
        d = time.perf_counter()
        held.sendall(b"x")
        held.shutdown_write()
        held.recv_exit_status()
        e = time.perf_counter()
    finally:
        r.close()
    return dict(zip(PARTS, (b - a, c - b, d - c, e - d, e - a)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="sandbox1")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    cfg = load()
    ep = targets.endpoint(cfg, targets.resolve(cfg, args.host)[0])
    seen: dict[int, list[dict[str, float]]] = {0: [], 1: []}
    for i in range(args.runs):
        for nodelay in ((0, 1) if i % 2 == 0 else (1, 0)):
            seen[nodelay].append(once(ep, nodelay))
    print(f"median of {args.runs} on {args.host}, milliseconds")
    for part in PARTS:
        off, on = (statistics.median(r[part] for r in seen[n]) * 1000 for n in (0, 1))
        print(f"{part:<10} TCP_NODELAY off {off:6.1f}   on {on:6.1f}")


if __name__ == "__main__":
    main()
