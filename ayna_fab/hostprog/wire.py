"""The host side of the wire: how the host program answers the laptop.

stdout carries, as the call goes: `@@start NAME` as a step begins, output of the programs it
runs (for people: uv's lines during an install), `@@step NAME SECONDS ok|failed [JSON]` as a step
ends (the optional JSON says what the step made); and last one `@@result JSON` line. Every line
is written and flushed as it happens, so the laptop shows each step as it ends.
ayna_fab/remote/hostcall.py parses exactly this. A call sent in its short form (the program from
the host's cache) that finds no program there writes only MISSING on stderr and exits
MISSING_EXIT: nothing of it ran, and the laptop sends the whole program (remote.Remote.run).
Program output relayed with text() and the values in every @@ line are masked (envfile.MASK) on
their way out; the protocol's own words and keys never are.
"""

import json
import sys

from .envfile import MASK

START = "@@start "
STEP = "@@step "
RESULT = "@@result "
MISSING = "@@program-missing"
MISSING_EXIT = 75

# The holder's stdin (holder.py): the laptop writes HEARTBEAT every HEARTBEAT_EVERY seconds while
# its operation holds the lock, and DONE then end of file once the operation has ended its way.
# A silent partition (a closed lid, a dropped NAT entry) sends no reset and sshd's own keepalive
# is off by default, so the holder takes SILENT_AFTER seconds without a byte as the laptop gone:
# a silent link frees the lock about a minute later, while a live link whose heartbeats queue
# behind an upload or a long round trip has 50 s of slack (docs/ARCHITECTURE.md, the holder).
HEARTBEAT = b"\n"
HEARTBEAT_EVERY = 10.0
SILENT_AFTER = 60.0
DONE = b"done\n"


class Refused(Exception):
    """A call that cannot be done as asked: reported as {"error": code, "detail": text}."""

    def __init__(self, code, detail, **extra):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra


def _write(line):
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except OSError:  # the connection is gone; the work goes on all the same
        pass


def text(line):
    """One line of program output for people (manage.py migrate's), relayed masked."""
    _write(MASK.text(line.rstrip("\n")))


def start(name):
    """A step begins: the laptop shows it running once it has taken a while."""
    _write(f"{START}{name}")


def step(name, seconds, ok=True, detail=None):
    tail = f" {json.dumps(MASK.data(detail), sort_keys=True)}" if detail is not None else ""
    _write(f"{STEP}{name} {seconds:.3f} {'ok' if ok else 'failed'}{tail}")


def result(obj):
    _write(RESULT + json.dumps(MASK.data(obj), sort_keys=True))
