"""Backup and restore commands for a project's PostgreSQL database. Built as data; nothing runs here.

The database's address and password are read from DATABASE_URL in
shared/.env.{env} on the host, by the host program: they never leave the host,
and the password reaches pg_dump, pg_restore and psql only through a private
pgpass file that is deleted afterwards (never argv, never any output).
"""

from __future__ import annotations

from ayna_fab import backup as rules
from ayna_fab.config import Project
from ayna_fab.layout import Layout

from .ops import host_program


def _args(layout: Layout, project: Project) -> dict:
    return {"root": layout.root, "env_file": layout.env_file, "project": project.name,
            "django_dir": project.django_dir}


def take_backup(layout: Layout, project: Project, release_name: str | None, keep: int | None):
    """pg_dump to shared/backups/{project}-{time}-{release}.dump (mode 0600, written under a
    temporary name and renamed), then keep only the newest `keep` (None: prune nothing).

    release_name is the release whose schema the data has: the live one, before a migrate;
    None reads `current` on the host. The command's stdout ends with one JSON line:
    {"backup": NAME, "bytes": N, "pruned": [...], "release": ..., "path": ..., "seconds": ...}.
    """
    rules.check_release(release_name)
    keep = None if keep is None else rules.check_keep(keep)
    return host_program("backup", {**_args(layout, project), "release": release_name, "keep": keep},
                        "backup", hint="is PostgreSQL up, and DATABASE_URL in the host's .env right?")


def list_backups(layout: Layout, project: Project):
    """This project's backups on the host, newest first, with their sizes and modes."""
    return host_program("list", _args(layout, project), "backups", changes=False)


def restore(layout: Layout, project: Project, name: str, units: list[str], *, keep: int, lock: dict,
            safety: bool = True):
    """Under the deploy lock: back up the database as it is now (unless safety=False), stop the
    project's units, replace the database with backup `name` in one transaction, start again the
    units that were running. Runs to its end on the host even if the connection drops."""
    rules.check_name(name, project.name)
    return host_program("restore", {**_args(layout, project), "name": name, "units": list(units),
                                    "keep": rules.check_keep(keep), "lock": lock, "safety": safety},
                        "restore")
