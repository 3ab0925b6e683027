"""Day-two commands that are plain shell: unit control and the journal. Built as data; nothing runs here.

manage, shell, migrate, backups and restore are host-program calls (commands/hostcalls.py).
Unit control goes through `sudo -n /usr/bin/systemctl VERB UNIT`, one unit per
call: the deploy user's sudoers entry allows exactly those command lines.
Logs go through the project's journal reader with sudo (its units only); unit facts need no root.
"""

from __future__ import annotations

import re

from ayna_fab.commands import hostcalls as host
from ayna_fab.hostprog import backups as backup_rules
from ayna_fab.provision import sudoers
from ayna_fab.remote.transport import Command

from . import q

SYSTEMCTL = "/usr/bin/systemctl"
UNIT_VERBS = ("start", "stop", "restart")
# journalctl --since/--until: dates, times, "yesterday", "-1h", "2 hours ago"; nothing else.
SINCE_RE = re.compile(r"[A-Za-z0-9 :+\-.]{1,40}")


# --- units ---------------------------------------------------------------------------------

def systemctl(verb: str, units: list[str]) -> Command:
    """VERB every unit at once (a slow warm shutdown must not hold up the rest), then report them
    (the services call's answer), in one round trip."""
    if verb not in UNIT_VERBS:
        raise ValueError(f"unknown verb {verb!r}")
    lines = ["rc=0", "pids="]
    for unit in units:
        lines.append(f"sudo -n {SYSTEMCTL} {verb} {q(unit)} & pids=\"$pids $!\"")
    lines += ["for p in $pids; do wait \"$p\" || rc=1; done", host.services(units).script, "exit $rc"]
    return Command("\n".join(lines), verb, hint="setup installs the sudoers rule these need: fab -H HOST setup")


def unit_facts(answer: dict) -> list[dict]:
    """The services call's answer as facts per unit: state, main PID, memory, uptime."""
    now = answer.get("now")
    facts = []
    for b in answer.get("units", []):
        active = b.get("ActiveState", "unknown")
        pid = int(b["MainPID"]) if b.get("MainPID", "").isdigit() and b["MainPID"] != "0" else None
        mem = int(b["MemoryCurrent"]) if b.get("MemoryCurrent", "").isdigit() else None
        if mem is not None and mem >= 2**63:    # systemd's "not set"
            mem = None
        if mem is None and active == "active":
            mem = b.get("Pss") or None
        entered = int(b["ActiveEnterTimestampMonotonic"]) if b.get(
            "ActiveEnterTimestampMonotonic", "").isdigit() else 0
        uptime = (now - entered) / 1e6 if active == "active" and now and entered else None
        facts.append({"unit": b.get("Id", "?"), "active": active, "sub": b.get("SubState", ""),
                      "pid": pid, "memory": mem, "uptime": uptime,
                      "since": b.get("ActiveEnterTimestamp") or None if active == "active" else None})
    return facts


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    for size, unit, smaller, sunit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m"), (60, "m", 1, "s")):
        if s >= size:
            return f"{s // size}{unit} {(s % size) // smaller}{sunit}"
    return f"{s}s"


def human_memory(n: int | None) -> str:
    return "-" if n is None else backup_rules.human_size(n)


# --- logs ----------------------------------------------------------------------------------

def check_since(value: str) -> str:
    if not SINCE_RE.fullmatch(value):
        raise ValueError(f"--since {value!r} is not a time journalctl knows "
                         "(e.g. '2026-01-02 03:04', 'today', '-1h', '2 hours ago')")
    return value


def logs(project: str, units: list[str], *, lines: int | None, since: str | None, follow: bool) -> Command:
    """journalctl over the units, through the project's journal reader (sudoers.journal_reader:
    the deploy user reads its units' journal, no other). With --follow on a pty, so closing the
    connection ends it."""
    argv = ["sudo", "-n", sudoers.journal_reader(project)]
    argv += [f"--unit={u}" for u in units]
    tail = None
    if since:
        argv.append(f"--since={check_since(since)}")
    if lines is not None and since and not follow:
        tail = int(lines)  # journalctl (252) starts --lines at the wrong end when --since is given too
    elif lines is not None and not since:
        argv.append(f"--lines={int(lines)}")
    if follow:
        argv.append("--follow")
    script = " ".join(q(a) for a in argv)
    if tail is not None:
        script = f"set -o pipefail; {script} | tail -n {tail}"
    return Command(script, "logs", changes=False)
