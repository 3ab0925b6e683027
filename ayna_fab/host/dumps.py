"""Backups on the host: pg_dump into shared/backups, list them, restore one in a transaction.

The database's address and password come from DATABASE_URL in the project's env
file, read here: they never leave the host, and the password reaches pg_dump,
pg_restore and psql only through a private pgpass file (never argv, never output).
"""

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from . import backups as rules
from . import envfile, store
from .wire import Refused


def folder(root):
    return os.path.join(root, "shared", "backups")


def database(env_file):
    """(libpq URI without the password, password) from the env file's DATABASE_URL."""
    try:
        url = envfile.read(env_file).get("DATABASE_URL")
    except OSError as e:
        raise Refused("env", f"cannot read {env_file}: {e.strerror}")
    if not url:
        raise Refused("env", f"DATABASE_URL is not set in {env_file}")
    try:
        return rules.connection(url)
    except ValueError as e:
        raise Refused("env", f"DATABASE_URL in {env_file}: {e}")


@contextmanager
def pg_env(password):
    """libpq's environment: the password in a private pgpass file (never argv, never output)."""
    env = dict(os.environ, PGAPPNAME="ayna-fab", PGCONNECT_TIMEOUT="10")
    env.pop("PGPASSWORD", None)
    tmp = tempfile.mkdtemp(prefix="ayna-fab-pg.")
    try:
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


def take(root, env_file, project, release, keep, protect=()):
    """pg_dump into shared/backups under a temporary name, 0600 from the start, fsync, rename;
    then prune to the newest `keep` (None: prune nothing). Returns what was made and removed."""
    uri, password = database(env_file)
    live = store.current_dir(root)
    release = release or (os.path.basename(live) if live else None)
    dest = folder(root)
    os.makedirs(dest, mode=0o700, exist_ok=True)
    while True:  # one name per second: wait out a clash rather than invent a second format
        name = rules.name_for(project, datetime.now(timezone.utc), release)
        if not os.path.exists(os.path.join(dest, name)):
            break
        time.sleep(0.2)
    final = os.path.join(dest, name)
    partial = os.path.join(dest, f".{name}.partial")
    started = time.monotonic()
    old_umask = os.umask(0o077)
    try:
        with pg_env(password) as env:
            p = subprocess.run(rules.dump_argv(uri, partial), env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise Refused("pg_dump", f"pg_dump exited {p.returncode}: {redact(p.stdout, password)}")
        os.chmod(partial, 0o600)
        _fsync(partial)
        os.replace(partial, final)
        _fsync(dest)
    finally:
        os.umask(old_umask)
        if os.path.exists(partial):
            os.unlink(partial)
    pruned = []
    if keep:
        for old in rules.to_prune(os.listdir(dest), project, keep, protect, just_taken=name):
            try:
                os.unlink(os.path.join(dest, old))
                pruned.append(old)
            except OSError:
                pass
    return {"backup": name, "bytes": os.stat(final).st_size, "pruned": pruned, "release": release,
            "path": final, "seconds": round(time.monotonic() - started, 3)}


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
    uri, password = database(env_file)
    with pg_env(password) as env, tempfile.TemporaryFile("w+") as dump_err, \
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
