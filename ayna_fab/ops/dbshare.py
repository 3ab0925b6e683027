"""Which hosts of a fleet deploy migrate, and the refusal of a fleet that only seems to share a database.

Hosts whose database is "shared" (the default) share one, migrated once on the database host
(migrate_host, else the first of them); hosts with database = "own" each back up and migrate
their own. Before anything is built, the plan's answers (hostprog/dbwhere.py: where each host's
DATABASE_URL points, resolved on the host) must agree with that: a "shared" host whose database
is not the database host's would go live on a database nobody migrated, so the deploy is refused
with the setting that says otherwise.
"""

from __future__ import annotations

from ayna_fab.config.targets import database_host, database_of
from ayna_fab.errors import UsageError


def migrators(targets: list) -> list:
    """The HostRuns that migrate, in target order: each "own" host, and the shared hosts' database host."""
    shared = [t for t in targets if database_of(t.host, t.project) != "own"]
    chosen = database_host(targets[0].project, shared) if shared else None
    return [t for t in targets if t is chosen or database_of(t.host, t.project) == "own"]


def refuse_unshared(targets: list) -> None:
    """UsageError if a "shared" host's database is not its database host's (as each host resolves it)."""
    shared = [t for t in targets if database_of(t.host, t.project) != "own"]
    if len(shared) < 2:
        return
    chosen = database_host(targets[0].project, shared)
    mine = chosen.plan.get("database_at")
    others = [t for t in shared if t is not chosen and mine and t.plan.get("database_at")
              and t.plan["database_at"] != mine]
    if not others:
        return
    name = chosen.project.name
    listed = "; ".join(f"{t.name}: {t.plan['database_at']}" for t in others)
    raise UsageError(
        f"{', '.join(t.name for t in others)} do not use the database of {chosen.name} ({mine}), where this "
        f"fleet's migrations would run once: {listed}. They would go live on a database nobody migrated",
        host=others[0].name, step="plan",
        hint=f'if each host has a database of its own, set database = "own" under [projects.{name}] (or on '
             "those hosts) and each host backs up and migrates its own; else point their DATABASE_URL at "
             f"{chosen.name}'s database")
