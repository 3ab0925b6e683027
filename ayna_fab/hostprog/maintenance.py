"""Day-two calls: manage.py or any command in the live release, migrate and restore under the lock,
backups, services.

migrate and restore run to their end on the host even if the connection drops
(SIGHUP ignored), and release the lock themselves.
"""

import os
import signal
import subprocess

from . import backups as rules
from . import calls, dumps, envfile, lock, store, units, wire
from .wire import Refused


def _manage(root, env_file, django_dir, argv):
    """(argv, cwd, env) of `python manage.py ARGV` in the current release, with the units' environment."""
    rel = store.current_dir(root)
    if rel is None:
        raise Refused("no-release", f"{root} has no live release (releases/current is missing): deploy first")
    workdir = os.path.join(rel, django_dir)
    if not os.path.exists(os.path.join(workdir, "manage.py")):
        raise Refused("no-manage", f"{workdir}/manage.py does not exist")
    try:
        env = envfile.for_app(env_file, rel)
    except OSError as e:
        raise Refused("env", f"cannot read {env_file}: {e.strerror}")
    return [os.path.join(rel, ".venv", "bin", "python"), "manage.py", *argv], workdir, env


def manage(a: calls.Manage):
    """Replace this process with manage.py: its output, exit status and terminal are the caller's."""
    argv, cwd, env = _manage(a.root, a.env_file, a.django_dir, a.argv)
    os.chdir(cwd)
    os.execve(argv[0], argv, env)


def exec_in_release(a: calls.Exec):
    """Replace this process with argv, run in the live release's directory with the units'
    environment: its output, exit status and terminal are the caller's."""
    rel = store.current_dir(a.root)
    if rel is None:
        raise Refused("no-release", f"{a.root} has no live release (releases/current is missing): deploy first")
    try:
        env = envfile.for_app(a.env_file, rel)
    except OSError as e:
        raise Refused("env", f"cannot read {a.env_file}: {e.strerror}")
    os.chdir(rel)
    try:
        os.execvpe(a.argv[0], a.argv, env)
    except OSError as e:
        raise Refused("not-found", f"cannot run {a.argv[0]!r} in {rel}: {e.strerror}")


def _hold(root, owner, what):
    holder = lock.take(root, owner)
    if holder is not None:
        raise Refused("locked", "another operation holds the lock", holder=holder)
    lock.mark_working(root, what)


def migrate(a: calls.Migrate):
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    argv, cwd, env = _manage(a.root, a.env_file, a.django_dir, ["migrate", "--noinput", *a.argv])
    _hold(a.root, a.lock, "migrate")
    res = {"backup": None, "code": None, "release": os.path.basename(store.current_dir(a.root))}
    try:
        if a.backup:
            res["backup"] = dumps.take(a.root, a.env_file, a.project, None, rules.check_keep(a.keep))
            wire.step("backup", res["backup"]["seconds"], detail=res["backup"])
        try:
            with subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace") as p:
                for line in p.stdout:   # relayed as it comes, the env file's secrets masked
                    wire.text(line)
            res["code"] = p.returncode
        except OSError as e:
            res["code"], res["error"] = 127, str(e)
    finally:
        lock.release(a.root, a.lock["token"])
    return res


def backup(a: calls.Backup):
    return dumps.take(a.root, a.env_file, a.project, a.release, a.keep)


def backups(a: calls.Backups):
    return {"backups": dumps.listing(a.root, a.project), "dir": dumps.folder(a.root),
            "current": (os.path.basename(store.current_dir(a.root)) if store.current_dir(a.root) else None)}


def restore(a: calls.Restore):
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    path = os.path.join(dumps.folder(a.root), a.name)
    if rules.parse(a.name) is None or not os.path.isfile(path):
        raise Refused("missing", f"no backup {a.name!r} on the host")
    _hold(a.root, a.lock, "restore")
    res = {"name": a.name, "safety": None, "stopped": [], "started": [], "errors": [], "restored": False}
    try:
        if a.safety:
            res["safety"] = dumps.take(a.root, a.env_file, a.project, None, rules.check_keep(a.keep),
                                       protect=[a.name])
        running = [u for u in a.units if units.state(u) == "active"]
        for unit in a.units:  # nothing may write to a database that is being replaced
            err = units.control("stop", unit)
            res["errors"] += [err] if err else []
            res["stopped"] += [] if err else [unit]
        errors = dumps.restore(a.env_file, path)
        res["errors"] += errors
        res["restored"] = not errors
        for unit in running:     # back up, whether the restore worked or was rolled back
            err = units.control("start", unit)
            res["errors"] += [err] if err else []
            res["started"] += [] if err else [unit]
    finally:
        lock.release(a.root, a.lock["token"])
    return res


def services(a: calls.Services):
    return units.show(a.units)
