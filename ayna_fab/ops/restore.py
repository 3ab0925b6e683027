"""Restoring a database from a backup: every host must have the backup before any host changes,
then each host restores under the deploy lock, and its answer says what state it left."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ayna_fab.commands import hostcalls as hostcmd
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Config, Host, Project
from ayna_fab.config.targets import endpoint
from ayna_fab.errors import NeedsAttention, OperationFailed, UsageError
from ayna_fab.hostprog import backups as rules
from ayna_fab.ops import answers, lockrecord as lock
from ayna_fab.remote.transport import Remote


@dataclass(frozen=True)
class Planned:
    """One host's restore, decided before anything changes."""

    host: Host
    project: Project
    backup: dict        # the backup as the host listed it
    live: str | None    # the live release, for the question asked first


def check_names(backup: str, jobs: list[tuple[Host, Project]]) -> None:
    """A malformed name fails here, before any connection."""
    if backup == "latest":
        return
    for _, proj in jobs:
        try:
            rules.check_name(backup, proj.name)
        except ValueError as exc:
            raise UsageError(str(exc), step="restore") from None


def plan(cfg: Config, jobs: list[tuple[Host, Project]], backup: str) -> list[Planned]:
    """The backup named (or the newest, for 'latest') on every host; UsageError if a host lacks it."""
    plans = []
    for host, proj in jobs:
        with Remote.open(endpoint(cfg, host)) as s:
            found = answers.read(host, s.run(hostcmd.backups(Layout.of(cfg, proj), proj), check=False), "restore")
        names = [b["name"] for b in found["backups"]]
        name = names[0] if backup == "latest" and names else backup
        chosen = next((b for b in found["backups"] if b["name"] == name), None)
        if chosen is None:
            raise UsageError(f"no backup {backup!r} in {found['dir']}; there: "
                             + (", ".join(names[:10]) or "none"), host=host.name, step="restore",
                             hint=f"fab -H {host.name} backup --list")
        plans.append(Planned(host, proj, chosen, found["current"]))
    return plans


def restore_one(cfg: Config, host: Host, proj: Project, name: str, say: Callable[[str], None],
                backup_text: Callable[[dict], str]) -> None:
    """Restore `name` on one host; an error says whether the data and the units are as they were."""
    command = hostcmd.restore(Layout.of(cfg, proj), proj, name, keep=rules.keep_for(proj, cfg.defaults),
                              lock=lock.owner("restore", f"fab restore --backup {name}"))
    with Remote.open(endpoint(cfg, host)) as s:
        r = answers.read(host, s.run(command, check=False, timeout=None), "restore")
    if r["safety"]:
        say(f"[{host.name}] {'backup':<13} {backup_text(r['safety'])}: the data as it was")
    undo = f"; to undo: {rules.restore_hint(host.name, r['safety']['backup'])}" if r.get("safety") else ""
    down = [u for u in r["stopped"] if u not in r["started"]]
    if not r["restored"]:
        problem = OperationFailed if not down else NeedsAttention
        raise problem("restore failed and was rolled back: the database is as it was"
                      + (f"; units not running: {', '.join(down)}" if down else "") + "\n    "
                      + "\n    ".join(r["errors"]), host=host.name, step="restore",
                      hint=f"fab -H {host.name} start" if down else None)
    if r["errors"]:
        raise NeedsAttention(f"restored {name}, but: " + "; ".join(r["errors"]), host=host.name,
                             step="restore", hint=f"fab -H {host.name} services; fab -H {host.name} logs")
    say(f"[{host.name}] {proj.name}: restored {name}; started {len(r['started'])} unit(s) again{undo}")
