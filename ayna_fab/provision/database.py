"""The project's PostgreSQL role and database, created to match DATABASE_URL (sandbox, first setup).

The SQL carries a password, so it is fed to psql on stdin, never in a command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ayna_fab.errors import UsageError
from ayna_fab.hostprog import backups as rules

LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")
# Plain PostgreSQL identifiers only: nothing that needs quoting in SQL, psql or a shell.
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class Database:
    user: str
    password: str
    name: str
    host: str
    port: int

    @property
    def is_local(self) -> bool:
        return self.host in LOCAL_HOSTS


def from_url(url: str) -> Database:
    try:  # the host's one reading of DATABASE_URL: what it refuses, it refuses without quoting it
        rules.connection(url)
    except ValueError as exc:
        raise UsageError(str(exc), step="database",
                         hint="write DATABASE_URL=postgresql://USER:PASSWORD@localhost:5432/NAME") from None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg", "pgsql"):
        raise UsageError("DATABASE_URL is not a postgresql:// URL", step="database",
                         hint="write DATABASE_URL=postgresql://USER:PASSWORD@localhost:5432/NAME")
    name = unquote(parts.path.lstrip("/"))
    if not parts.username or not name:
        raise UsageError("DATABASE_URL must name a user and a database", step="database",
                         hint="write DATABASE_URL=postgresql://USER:PASSWORD@localhost:5432/NAME")
    user = unquote(parts.username)
    for what, value in (("user", user), ("database name", name)):
        if not NAME_RE.fullmatch(value):
            raise UsageError(f"DATABASE_URL's {what} is not a plain identifier", step="database",
                             hint="use letters, digits and underscores, starting with a letter")
    return Database(user, unquote(parts.password or ""), name, parts.hostname or "", parts.port or 5432)


def ident(name: str) -> str:
    return '"' + name + '"'  # from_url allows plain identifiers only


def literal(value: str) -> str:
    if "\0" in value:
        raise UsageError("a NUL byte in a database value", step="database")
    return "'" + value.replace("'", "''") + "'"


def ensure_sql(db: Database) -> str:
    """Idempotent: creates the role and the database only when missing; says what it did."""
    pw = f" PASSWORD {literal(db.password)}" if db.password else ""
    return "\n".join([
        f"SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {literal(db.user)}) AS need_role \\gset",
        "\\if :need_role",
        f"CREATE ROLE {ident(db.user)} LOGIN{pw};",
        f"\\echo 'changed: created PostgreSQL role {db.user}'",
        "\\endif",
        f"SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = {literal(db.name)}) AS need_db \\gset",
        "\\if :need_db",
        f"CREATE DATABASE {ident(db.name)} OWNER {ident(db.user)};",
        f"\\echo 'changed: created database {db.name}'",
        "\\endif",
        "",
    ])


def drop_sql(db: Database) -> str:
    """Drop the database and its role (fab remove --purge, after its last backup); says what it did.
    The units are stopped first; FORCE ends any session left."""
    return "\n".join([
        f"SELECT EXISTS (SELECT FROM pg_database WHERE datname = {literal(db.name)}) AS has_db \\gset",
        "\\if :has_db",
        f"DROP DATABASE {ident(db.name)} WITH (FORCE);",
        f"\\echo 'changed: dropped database {db.name}'",
        "\\endif",
        f"SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = {literal(db.user)}) AS has_role \\gset",
        "\\if :has_role",
        f"DROP ROLE {ident(db.user)};",
        f"\\echo 'changed: dropped PostgreSQL role {db.user}'",
        "\\endif",
        "",
    ])
