"""Commands for release operations: each runs one subcommand of hostscripts/release.py.

The program travels with the command (a heredoc), so hosts need nothing of
ayna-fab installed and every round trip is self-contained.
"""

from __future__ import annotations

import json

from ayna_fab.hostscripts import source
from ayna_fab.remote import Command

from . import q

# name -> (step shown to people, changes the host?)
SUBCOMMANDS = {
    "plan": ("plan", False), "stage": ("upload", True), "prepare": ("prepare", True),
    "activate": ("activate", True), "deactivate": ("deactivate", True), "finish": ("finish", True),
    "unlock": ("unlock", True), "status": ("status", False), "migrations": ("migrations", False),
}


def host_program(subcommand: str, args: dict, *, step: str | None = None, changes: bool | None = None,
                 hint: str | None = None) -> Command:
    name, default_changes = SUBCOMMANDS[subcommand]
    payload = json.dumps(args, sort_keys=True)
    script = f"python3 - {q(subcommand)} {q(payload)} <<'AYNA_FAB_PY'\n{source('release')}AYNA_FAB_PY\n"
    display = f"python3 - {q(subcommand)} {q(payload)}  # runs ayna_fab/hostscripts/release.py"
    return Command(script, step or name, default_changes if changes is None else changes, hint, display)


def parse(stdout: str) -> dict:
    """The JSON object a subcommand printed last; its @@step lines come before it."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no result in the host program's output: {stdout[-500:]!r}")
