"""The deploy user's root rights: exactly the systemctl verbs deploys need on one project's units,
the project's journal reader (its units' logs, never the whole journal) and its env writer (its env
file, replaced with a text systemd loads, provision/envwriter.py); status queries need no root.
"""

from __future__ import annotations

import json

from ayna_fab.provision import envwriter

SYSTEMCTL = "/usr/bin/systemctl"
JOURNALCTL = "/usr/bin/journalctl"
VERBS = ("start", "stop", "restart", "reload", "reload-or-restart")


def path(project: str) -> str:
    return f"/etc/sudoers.d/ayna-{project}"


def journal_reader(project: str) -> str:
    """The program, root's, through which the deploy user reads the project's units' journal."""
    return f"/usr/local/lib/ayna-fab/journal-{project}"


def render(project: str, user: str, units: list[str]) -> str:
    alias = "AYNA_" + project.upper().replace("-", "_")
    commands = [f"{SYSTEMCTL} {verb} {unit}" for unit in sorted(units) for verb in VERBS]
    commands.append(journal_reader(project))    # any arguments: the reader checks each one
    commands.append(f'{envwriter.path(project)} ""')  # no arguments at all: the text comes on stdin
    body = ", \\\n    ".join(commands)
    return (f"# Managed by ayna-fab for {project}: what {user} may run as root, and nothing more.\n"
            f"Cmnd_Alias {alias} = \\\n    {body}\n"
            f"{user} ALL=(root) NOPASSWD: {alias}\n")


def render_journal_reader(project: str, units: list[str], journalctl: str = JOURNALCTL) -> str:
    """journalctl over some of the project's units and nothing else: the deploy user runs it with
    sudo instead of being in systemd-journal, which reads every service's logs (sshd, sudo, the
    databases, other projects). Each argument must be one of four forms; the rest are fixed."""
    return f'''#!/usr/bin/python3 -I
# Managed by ayna-fab for {project}: its units' journal, for its deploy user through sudo.
import os, re, sys
UNITS = {json.dumps(sorted(units))}
SINCE = re.compile(r"[A-Za-z0-9 :+.-]{{1,40}}")
LINES = re.compile(r"[0-9]{{1,7}}")
argv, units = [{json.dumps(journalctl)}, "--no-pager", "--quiet", "--output=short-iso"], []
for arg in sys.argv[1:]:
    key, _, value = arg.partition("=")
    if key == "--unit" and value in UNITS:
        units.append(arg)
    elif (key == "--since" and SINCE.fullmatch(value)) or (key == "--lines" and LINES.fullmatch(value)) \\
            or arg == "--follow":
        argv.append(arg)
    else:
        sys.exit(f"refused: {{arg!r}}; only --unit= (one of {{', '.join(UNITS)}}), --since=, --lines=, --follow")
if not units:
    sys.exit("name at least one unit: --unit=" + " or --unit=".join(UNITS))
os.execve(argv[0], argv + units, {{"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "SYSTEMD_COLORS": "0"}})
'''
