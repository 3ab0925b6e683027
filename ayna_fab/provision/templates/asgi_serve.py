"""uvicorn as the api unit runs it, with its shutdown waiting a moment before closing connections.

A uvicorn worker told to stop closes at once every connection with no request in progress. One it
accepted from the shared socket an instant before, whose request it has not read yet, counts as
such: its client gets a reset although nothing was wrong with the release (seen under load, on a
restart, about once in a few thousand requests). This program stops accepting first, lets GRACE
seconds pass so those requests are read (they then finish like every request in flight), and only
then goes on with uvicorn's own shutdown. New connections meanwhile wait in the socket, which
systemd holds, for the next process.

systemd passes the api unit two sockets: the shared one (--fd 3) and the slot's own (a Unix
socket, where an activation asks this slot's health). uvicorn takes one descriptor; this program
hands it the others too (passed_sockets), whichever of uvicorn's two ways it starts.

Setup installs this file as /usr/local/lib/ayna-fab/asgi-serve (provision/asgiserve.py; root's,
where only root writes); the api unit runs it with the release venv's python. The laptop never
imports it. uvicorn's workers are started by `spawn`, which imports this file
again in each of them, so the change reaches every worker.
"""

import asyncio
import os
import socket
import sys

import uvicorn.server
import uvicorn.supervisors

GRACE = 0.5   # seconds: a request in the network stack of this host is read well within it

_uvicorns_shutdown = uvicorn.server.Server.shutdown


async def _shutdown(self, sockets=None):
    for server in self.servers:      # stop accepting (uvicorn's own shutdown does it again: harmless)
        server.close()
    await asyncio.sleep(GRACE)       # connections accepted just before: their requests are read now
    await _uvicorns_shutdown(self, sockets)


uvicorn.server.Server.shutdown = _shutdown


def passed_sockets(config):
    """The sockets systemd passed this process besides config.fd (LISTEN_FDS; none in a worker,
    which gets its sockets from the supervisor)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    return [socket.socket(fileno=os.dup(fd)) for fd in range(3, 3 + count) if fd != config.fd]


_uvicorns_startup = uvicorn.server.Server.startup


async def _startup(self, sockets=None):
    if sockets is None and self.config.fd is not None:   # one process: it listens on every passed socket
        others = passed_sockets(self.config)
        if others:
            sockets = [socket.socket(fileno=os.dup(self.config.fd))] + others
    await _uvicorns_startup(self, sockets)


uvicorn.server.Server.startup = _startup

_multiprocess_init = uvicorn.supervisors.Multiprocess.__init__


def _multiprocess(self, config, *args, **kwargs):
    """Workers: the supervisor hands each the sockets it is given; it is given them all."""
    if "sockets" in kwargs:
        kwargs["sockets"] = list(kwargs["sockets"]) + passed_sockets(config)
    elif args:
        args = (*args[:-1], list(args[-1]) + passed_sockets(config))
    _multiprocess_init(self, config, *args, **kwargs)


uvicorn.supervisors.Multiprocess.__init__ = _multiprocess

if __name__ == "__main__":
    from uvicorn.main import main

    sys.exit(main())
