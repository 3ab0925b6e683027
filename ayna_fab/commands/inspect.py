"""Read-only commands that gather a host's state in one round trip."""

from __future__ import annotations

import json

from ayna_fab.hostscripts import source
from ayna_fab.remote import Command

from . import q


def facts(user: str, dirs: list[str], units: list[str], env: str) -> Command:
    args = json.dumps({"user": user, "dirs": dirs, "units": units, "env": env})
    return Command(f"python3 - {q(args)} <<'AYNA_FAB_PY'\n{source('facts')}AYNA_FAB_PY\n",
                   "inspect host", changes=False)
