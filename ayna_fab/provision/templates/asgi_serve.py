"""uvicorn as the api unit runs it, with its shutdown waiting a moment before closing connections.

A uvicorn worker told to stop closes at once every connection with no request in progress. One it
accepted from the shared socket an instant before, whose request it has not read yet, counts as
such: its client gets a reset although nothing was wrong with the release (seen under load, on a
restart, about once in a few thousand requests). This program stops accepting first, lets GRACE
seconds pass so those requests are read (they then finish like every request in flight), and only
then goes on with uvicorn's own shutdown. New connections meanwhile wait in the socket, which
systemd holds, for the next process.

Setup installs this file as /usr/local/lib/ayna-fab/asgi-serve (provision/asgiserve.py; root's,
where only root writes); the api unit runs it with the release venv's python. The laptop never
imports it. uvicorn's workers are started by `spawn`, which imports this file
again in each of them, so the change reaches every worker.
"""

import asyncio
import sys

import uvicorn.server

GRACE = 0.5   # seconds: a request in the network stack of this host is read well within it

_uvicorns_shutdown = uvicorn.server.Server.shutdown


async def _shutdown(self, sockets=None):
    for server in self.servers:      # stop accepting (uvicorn's own shutdown does it again: harmless)
        server.close()
    await asyncio.sleep(GRACE)       # connections accepted just before: their requests are read now
    await _uvicorns_shutdown(self, sockets)


uvicorn.server.Server.shutdown = _shutdown

if __name__ == "__main__":
    from uvicorn.main import main

    sys.exit(main())
