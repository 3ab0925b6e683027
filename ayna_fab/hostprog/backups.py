"""Database backups: what they are called, which to keep, and the commands that make and restore them.

Pure and standard-library only: the host program names, lists and prunes backups
by these rules (dumps.py), and the laptop checks a `--backup NAME` by the same
ones before it connects. One definition, no drift.

A backup is `{project}-{YYYYmmddTHHMMSSZ}-{release}.dump` in shared/backups:
pg_dump's custom format (compressed; pg_restore can drop and recreate exactly
what it holds), the host's UTC time it was taken, and the release that was live
(the schema the data belongs to), e.g. `uavcrew-20260102T030405Z-v7.dump`.
A SQLite database is backed up with SQLite's online backup API into a copy named the
same way but ending in `.sqlite3` (a database file sqlite3 opens as it is); both kinds
count towards keep_backups alike. Other engines have no backup support.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

SUFFIX = ".dump"
SUFFIXES = {"postgresql": SUFFIX, "sqlite": ".sqlite3"}   # engine -> the ending of its backups
SQLITE_SCHEMES = ("sqlite", "sqlite3")
STAMP = "%Y%m%dT%H%M%SZ"
NO_RELEASE = "none"          # a backup taken before the first deploy
DEFAULT_KEEP = 10
FLOOR_DAYS = 7               # no backup younger than this is pruned, whatever keep_backups says
NAME_RE = re.compile(r"(?P<project>[a-z][a-z0-9_-]{0,31})-(?P<stamp>[0-9]{8}T[0-9]{6}Z)"
                     r"-(?P<release>v[1-9][0-9]{0,8}|none)(?P<suffix>\.dump|\.sqlite3)")
RELEASE_RE = re.compile(r"v[1-9][0-9]{0,8}")
SCHEMES = ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "pgsql")


@dataclass(frozen=True)
class Backup:
    name: str
    project: str
    taken_at: datetime       # UTC, from the name: the files' mtimes may lie after a copy
    release: str             # vN, or "none"
    engine: str = "postgresql"   # from the name's ending: what it can be restored into


def name_for(project: str, when: datetime, release: str | None, engine: str = "postgresql") -> str:
    release = check_release(release) or NO_RELEASE
    stamp = when.astimezone(timezone.utc).strftime(STAMP)
    name = f"{project}-{stamp}-{release}{SUFFIXES[engine]}"
    if parse(name) is None:
        raise ValueError(f"{project!r} is not a project name")
    return name


def check_release(release: str | None) -> str | None:
    if release is None or release == NO_RELEASE or RELEASE_RE.fullmatch(release):
        return release
    raise ValueError(f"{release!r} is not a release name (vN)")


def parse(name: str) -> Backup | None:
    """The backup a file name describes, or None for anything else (never a path)."""
    m = NAME_RE.fullmatch(name)
    if not m:
        return None
    try:
        when = datetime.strptime(m["stamp"], STAMP).replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    engine = next(e for e, suffix in SUFFIXES.items() if suffix == m["suffix"])
    return Backup(name, m["project"], when, m["release"], engine)


def check_name(name: str, project: str) -> Backup:
    """A --backup NAME given by a person: one of this project's backup files, nothing else."""
    b = parse(name)
    if b is None:
        raise ValueError(f"{name!r} is not a backup name; names look like "
                         f"{project}-20260102T030405Z-v7{SUFFIX}")
    if b.project != project:
        raise ValueError(f"{name!r} is a backup of {b.project}, not of {project}")
    return b


def newest_first(names, project: str) -> list[Backup]:
    """This project's backups among names (other files ignored), newest first."""
    found = [b for b in map(parse, names) if b is not None and b.project == project]
    return sorted(found, key=lambda b: (b.taken_at, b.name), reverse=True)


def to_prune(names, project: str, keep: int, protect=(), just_taken: str | None = None, *,
             live: str | None = None, before_migrate=(), now: datetime | None = None) -> list[str]:
    """Backups beyond the newest `keep` of this project that retention may remove (kept_always
    says which it never does). The one just taken is kept and takes a place whatever its name's
    time says (a host clock set back must not prune it); protected ones (the backup being
    restored) are never pruned and take no place."""
    keep = check_keep(keep)
    places = keep - (1 if just_taken else 0)
    skip = set(protect) | {just_taken}
    found = [b for b in newest_first(names, project) if b.name not in skip]
    kept = kept_always(found, live, set(before_migrate), now)
    return [b.name for b in found[places:] if b.name not in kept]


def kept_always(found: list[Backup], live: str | None, before_migrate: set[str],
                now: datetime | None) -> set[str]:
    """What no count prunes: backups younger than FLOOR_DAYS (by now, when given), and the
    pre-migration backups (before_migrate: taken by deploys) that the last good deploy relies on,
    its own (the newest taken while another release was live) and every one taken since, while
    `live` stayed live. Those since are the failed deploys' dumps, which their failure messages
    named; the next deploy that succeeds frees them. found: newest first."""
    kept = {b.name for b in found if now is not None and now - b.taken_at < timedelta(days=FLOOR_DAYS)}
    before = [b for b in found if b.name in before_migrate]
    kept |= {b.name for b in before if live is not None and b.release == live}
    its_own = next((b for b in before if b.release != live), None)
    return kept | ({its_own.name} if its_own else set())


def check_keep(keep) -> int:
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep_backups must be a whole number of at least 1, not {keep!r}")
    return keep


def keep_for(project, defaults=None) -> int:
    """keep_backups of the project, else of [defaults], else 10."""
    value = getattr(project, "keep_backups", None)
    if value is None:
        value = getattr(defaults, "keep_backups", None)
    return check_keep(DEFAULT_KEEP if value is None else value)


def before_migrate(project) -> bool:
    """Whether a deploy (and `fab migrate`) backs the database up before migrating (a project
    without Django has no migrations, so nothing to back up for)."""
    return bool(getattr(project, "backup_before_migrate", True)) and bool(getattr(project, "django", True))


def restore_hint(host: str, name: str) -> str:
    """What a failed deploy's message tells a person to run to get the data back."""
    return f"fab -H {host} restore --backup {name}"


# --- which database, and whether it can be backed up -----------------------------------------

def engine(url: str | None) -> str | None:
    """The kind of database DATABASE_URL names: postgresql, sqlite, another scheme, or None.
    Only the scheme: the rest of the URL is a secret and never leaves the host."""
    if not url or not url.strip():
        return None
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme in SCHEMES:
        return "postgresql"
    if scheme in SQLITE_SCHEMES:
        return "sqlite"
    return scheme if re.fullmatch(r"[a-z][a-z0-9+.-]{0,30}", scheme) else "unknown"


def unsupported(kind: str | None) -> str | None:
    """Why a backup of this engine cannot be taken, or None when it can."""
    if kind in SUFFIXES:
        return None
    if kind is None:
        return "DATABASE_URL is not set in the host's .env, so there is no database to back up"
    return (f"DATABASE_URL names a {kind} database; ayna-fab backs up PostgreSQL and SQLite only")


def sqlite_path(url: str) -> str:
    """The database file of a sqlite URL: sqlite:////abs/path (four slashes: an absolute path).

    A relative path would be relative to whatever directory the app runs in: a release, which
    the next deploy replaces. So only absolute paths, where a backup finds the live file."""
    parts = urlsplit(url.strip())
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if parts.netloc or not path.startswith("/") or path.endswith("/") or ":memory:" in url:
        raise ValueError("a SQLite DATABASE_URL must name an absolute file path, such as "
                         "sqlite:////opt/ayna/PROJECT/shared/db.sqlite3 (four slashes)")
    return path


# --- connecting without putting the password anywhere visible -------------------------------

_ESCAPE_HINT = ("; percent-encode these characters in its password: # as %23, / as %2F, ? as %3F, "
                "@ as %40, % as %25")


SERVICE = "ayna-fab"   # the one service of the private service file (service_file)
# Query parameters that may hold a secret besides password: sslpassword (libpq reads it from no
# environment variable), and anything named like a key, token or secret.
HIDDEN_RE = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def connection(url: str) -> tuple[str, str]:
    """DATABASE_URL -> (a libpq URI without the password, the password).

    The URI goes on pg_dump's command line, which anyone on the host can read
    in `ps`; the password goes into a private pgpass file instead, and every other
    parameter that may be a secret (hidden) into a private service file the URI names.

    A URL that does not read one way only is refused, and no message says anything of it: an
    unescaped '#', '/' or '?' in the password ends the address early, and the rest of the
    password would turn up as a port or a host name in an error, a terminal and deploys.jsonl.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises for a port that is not a number, quoting it: never shown
    except ValueError:
        raise ValueError("DATABASE_URL is not a valid URL" + _ESCAPE_HINT) from None
    if parts.scheme not in SCHEMES:
        raise ValueError("DATABASE_URL is not a postgresql:// URL")
    if "#" in text or ("@" in text and "@" not in parts.netloc):
        raise ValueError("DATABASE_URL cannot be read one way only" + _ESCAPE_HINT)
    query = parse_qsl(parts.query, keep_blank_values=True)
    password = unquote(parts.password or "")
    for key, value in query:
        if key == "password":
            password = value
    netloc = parts.hostname or ""
    if ":" in netloc:                       # an IPv6 address
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
    kept = [(k, v) for k, v in query if k != "password" and not HIDDEN_RE.search(k)]
    if hidden(url):
        if any(k == "service" for k, _ in query):
            raise ValueError("DATABASE_URL names a service and a secret parameter: put the secret in "
                             "that service's file instead")
        kept.append(("service", SERVICE))
    rest = urlencode(kept)
    # by hand: urlunsplit drops the "//" of an empty host (a local socket), which libpq needs
    return f"postgresql://{netloc}{parts.path}" + (f"?{rest}" if rest else ""), password


def hidden(url: str) -> list[tuple[str, str]]:
    """The query parameters of DATABASE_URL that stay off pg_dump's argv (HIDDEN_RE; password
    goes to pgpass); connection() has checked the URL."""
    query = parse_qsl(urlsplit(url.strip()).query, keep_blank_values=True)
    return [(k, v) for k, v in query if k != "password" and HIDDEN_RE.search(k)]


def service_file(params: list[tuple[str, str]]) -> str:
    """libpq's connection service file holding params under SERVICE: read by libpq from a path
    in PGSERVICEFILE, never seen in argv. Its lines cannot hold a line break, so such a value is
    refused (naming the parameter only)."""
    lines = [f"[{SERVICE}]"]
    for key, value in params:
        if not re.fullmatch(r"[a-z_]+", key) or re.search(r"[\r\n]", value) or value != value.strip():
            raise ValueError(f"DATABASE_URL's {key} parameter cannot be passed to libpq privately "
                             "(a line break or blanks at its ends)")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def pgpass_line(password: str) -> str:
    """A pgpass entry matching any server, database and user: the file serves one connection."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:*:{escaped}\n"


def dump_argv(uri: str, path: str) -> list[str]:
    """pg_dump to a file in the custom format (compressed; pg_restore reads it selectively)."""
    return ["pg_dump", "--format=custom", "--no-password", f"--file={path}", f"--dbname={uri}"]


def restore_script_argv(path: str) -> list[str]:
    """The backup as SQL that drops and recreates what it holds, owned by whoever restores it."""
    return ["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--file=-", path]


def psql_argv(uri: str) -> list[str]:
    """psql reading SQL from stdin as one transaction: a restore that fails changes nothing."""
    return ["psql", "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction",
            "--file=-", f"--dbname={uri}"]


# Runs first, inside the restore's transaction. `pg_restore --clean` drops only what the backup
# holds; tables a later migration created would survive it and break the next migrate. So every
# table, view and sequence the restoring role owns goes first; objects of other roles stay.
PRELUDE_SQL = r"""
SET client_min_messages = warning;
DO $ayna$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass::text AS name, c.relkind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
          AND c.relkind IN ('r', 'p', 'f', 'v', 'm')
          AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
        ORDER BY c.relkind
    LOOP
        EXECUTE format('DROP %s IF EXISTS %s CASCADE',
                       CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                      WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.name);
    END LOOP;
    -- sequences a column owned went with their tables; these are the free-standing ones
    FOR r IN
        SELECT c.oid::regclass::text AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
          AND c.relkind = 'S'
          AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
    LOOP
        EXECUTE format('DROP SEQUENCE IF EXISTS %s CASCADE', r.name);
    END LOOP;
END
$ayna$;
RESET client_min_messages;
"""


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
