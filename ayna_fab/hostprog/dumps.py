"""Backups on the host: pg_dump (or, for SQLite, its online backup API) into shared/backups,
list them, restore one in a transaction.

The database's address and password come from DATABASE_URL in the project's env
file, read here: they never leave the host, and the password reaches pg_dump,
pg_restore and psql only through a private pgpass file (never argv, never output).
"""

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse
from contextlib import contextmanager
from datetime import datetime, timezone

from . import backups as rules
from . import envfile, store
from .wire import Refused


def folder(root):
    return os.path.join(root, "shared", "backups")


def database_url(env_file):
    try:
        url = envfile.read(env_file).get("DATABASE_URL")
    except OSError as e:
        raise Refused("env", f"cannot read {env_file}: {e.strerror}")
    if not url:
        raise Refused("env", f"DATABASE_URL is not set in {env_file}")
    return url


def engine(env_file):
    """The engine of the env file's DATABASE_URL (only its scheme), or None; never raises."""
    try:
        return rules.engine(envfile.read(env_file).get("DATABASE_URL"))
    except (OSError, ValueError):
        return None


def target(env_file):
    """(engine, where): for PostgreSQL (libpq URI without its secrets, the password, the text of a
    service file with its other secret parameters or None), for SQLite the database file's path.
    Refused for an engine without backup support."""
    url = database_url(env_file)
    kind = rules.engine(url)
    why = rules.unsupported(kind)
    if why:
        raise Refused("engine", why + " (set backup_before_migrate = false to deploy without backups)")
    try:
        if kind == "postgresql":
            uri, password = rules.connection(url)
            secret = rules.hidden(url)
            return kind, (uri, password, rules.service_file(secret) if secret else None)
        return kind, rules.sqlite_path(url)
    except ValueError as e:
        raise Refused("env", f"DATABASE_URL in {env_file}: {e}")


def _sqlite(path, mode):
    """A connection to a SQLite file that is never created by accident (mode ro, rw or rwc)."""
    return sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode={mode}", uri=True, timeout=30)


def sqlite_copy(src, dest, src_mode="rw", standalone=True):
    """SQLite's online backup API: a consistent copy while the app keeps writing, in one step,
    so the destination changes in one transaction or not at all. standalone: the copy is a
    backup file, so it leaves WAL mode (one file, readable without writing -wal/-shm beside it)."""
    source = _sqlite(src, src_mode)
    try:
        copy = _sqlite(dest, "rwc")
        try:
            source.backup(copy)
            if standalone:
                copy.execute("PRAGMA journal_mode=DELETE")
            bad = copy.execute("PRAGMA quick_check").fetchone()[0]
            if bad != "ok":
                raise sqlite3.DatabaseError(f"the copy fails SQLite's quick_check: {bad}")
        finally:
            copy.close()
    finally:
        source.close()


@contextmanager
def pg_env(password, service=None):
    """libpq's environment: the password in a private pgpass file, the URL's other secret parameters
    (sslpassword...) in a private service file (never argv, never output)."""
    env = dict(os.environ, PGAPPNAME="ayna-fab", PGCONNECT_TIMEOUT="10")
    for name in ("PGPASSWORD", "PGSERVICE", "PGSERVICEFILE"):
        env.pop(name, None)
    tmp = tempfile.mkdtemp(prefix="ayna-fab-pg.")
    try:
        if service:
            path = os.path.join(tmp, "pg_service.conf")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(service)
            env["PGSERVICEFILE"] = path
        if password:
            path = os.path.join(tmp, "pgpass")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(rules.pgpass_line(password))
            env["PGPASSFILE"] = path
        yield env
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def redact(text, password):
    text = text.strip()
    return text.replace(password, "********") if password else text


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def now():
    """The host's time, in UTC: a backup's name and retention's floor are measured by it."""
    return datetime.now(timezone.utc)


def _dump(kind, where, partial):
    """The database, copied into the file partial (pg_dump, or SQLite's backup API)."""
    if kind == "sqlite":
        try:
            sqlite_copy(where, partial)
        except sqlite3.Error as e:
            raise Refused("sqlite", f"SQLite's backup of {where} failed: {e}")
        return
    uri, password, service = where
    with pg_env(password, service) as env:
        p = subprocess.run(rules.dump_argv(uri, partial), env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise Refused("pg_dump", f"pg_dump exited {p.returncode}: {redact(p.stdout, password)}")


def take(root, env_file, project, release, keep, protect=(), before_migrate=False):
    """pg_dump into shared/backups under a temporary name, 0600 from the start, fsync, rename;
    then prune to the newest `keep` (None: prune nothing) by retention's rules (backups.to_prune).
    before_migrate: a deploy's dump before it migrates, which those rules keep longer (recorded in
    BEFORE_MIGRATE). Returns what was made and removed."""
    kind, where = target(env_file)
    if kind == "sqlite" and not os.path.isfile(where):
        raise Refused("no-database", f"the SQLite database {where} does not exist yet: nothing to back up")
    live = store.current_dir(root)
    release = release or (os.path.basename(live) if live else None)
    dest = folder(root)
    os.makedirs(dest, mode=0o700, exist_ok=True)
    while True:  # one name per second: wait out a clash rather than invent a second format
        name = rules.name_for(project, now(), release, kind)
        if not os.path.exists(os.path.join(dest, name)):
            break
        time.sleep(0.2)
    final = os.path.join(dest, name)
    partial = os.path.join(dest, f".{name}.partial")
    started = time.monotonic()
    old_umask = os.umask(0o077)
    try:
        _dump(kind, where, partial)
        os.chmod(partial, 0o600)
        _fsync(partial)
        os.replace(partial, final)
        _fsync(dest)
    finally:
        os.umask(old_umask)
        if os.path.exists(partial):
            os.unlink(partial)
    if before_migrate:
        _record(dest, _recorded(dest) | {name})
    pruned = prune(dest, project, keep, protect, name, live) if keep else []
    return {"backup": name, "bytes": os.stat(final).st_size, "pruned": pruned, "release": release,
            "path": final, "seconds": round(time.monotonic() - started, 3)}


BEFORE_MIGRATE = ".before-migrate"   # in shared/backups: the deploys' pre-migration dumps, one a line


def _recorded(dest):
    try:
        with open(os.path.join(dest, BEFORE_MIGRATE)) as f:
            return {line.strip() for line in f if rules.parse(line.strip()) is not None}
    except OSError:
        return set()


def _record(dest, names):
    path = os.path.join(dest, BEFORE_MIGRATE)
    with open(path + ".new", "w") as f:
        f.write("".join(f"{n}\n" for n in sorted(names)))
    os.replace(path + ".new", path)


def prune(dest, project, keep, protect, just_taken, live):
    """Remove what retention lets go (backups.to_prune, at the host's time now()); the names removed."""
    before = _recorded(dest)
    pruned = []
    for old in rules.to_prune(os.listdir(dest), project, keep, protect, just_taken=just_taken,
                              live=os.path.basename(live) if live else None, before_migrate=before, now=now()):
        try:
            os.unlink(os.path.join(dest, old))
            pruned.append(old)
        except OSError:
            pass
    if before & set(pruned):
        _record(dest, before - set(pruned))
    return pruned


def listing(root, project):
    try:
        names = os.listdir(folder(root))
    except FileNotFoundError:
        names = []
    found = []
    for b in rules.newest_first(names, project):
        st = os.stat(os.path.join(folder(root), b.name))
        found.append({"name": b.name, "bytes": st.st_size, "release": b.release,
                      "taken_at": b.taken_at.isoformat(), "mode": oct(st.st_mode & 0o777)[2:]})
    return found


def restore(env_file, path):
    """Replace the database with the backup at path in one transaction; the errors, if any."""
    kind, where = target(env_file)
    made_by = rules.parse(os.path.basename(path))
    if made_by is not None and made_by.engine != kind:
        return [f"{os.path.basename(path)} is a {made_by.engine} backup, but DATABASE_URL names a {kind} "
                "database: nothing was changed"]
    if kind == "sqlite":
        try:   # the backup API again, backup -> live file: one write transaction, all or nothing
            sqlite_copy(path, where, src_mode="ro", standalone=False)
        except sqlite3.Error as e:
            return [f"SQLite's restore of {where} failed, nothing was changed: {e}"]
        return []
    uri, password, service = where
    with pg_env(password, service) as env, tempfile.TemporaryFile("w+") as dump_err, \
            tempfile.TemporaryFile("w+") as psql_out:
        psql = subprocess.Popen(rules.psql_argv(uri), env=env, stdin=subprocess.PIPE, stdout=psql_out,
                                stderr=subprocess.STDOUT)
        dump = subprocess.Popen(rules.restore_script_argv(path), env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=dump_err)
        broken = False
        try:
            psql.stdin.write(rules.PRELUDE_SQL.encode())
            shutil.copyfileobj(dump.stdout, psql.stdin)
        except BrokenPipeError:  # psql stopped at an error; it rolled everything back
            broken = True
        finally:
            try:
                psql.stdin.close()
            except BrokenPipeError:
                broken = True
        dump.wait()
        psql.wait()
        dump_err.seek(0)
        psql_out.seek(0)
        errors = []
        if dump.returncode != 0:
            errors.append(f"pg_restore exited {dump.returncode}: {redact(dump_err.read(), password)[-2000:]}")
        if psql.returncode != 0 or broken:
            errors.append(f"psql exited {psql.returncode}: {redact(psql_out.read(), password)[-2000:]}")
        return errors
