"""Day-two commands: manage.py in the live release, services, logs. Built as data; nothing runs here.

manage.py, shell and migrate run in the current release's Django directory
with the release's own venv and the environment the units get from
shared/.env.{env}. That file is read by a small Python program on the host
(HOST_PROGRAM), the way systemd's EnvironmentFile= reads it, and handed to
manage.py with execve. Sourcing it into a shell (`set -a; . FILE`) would give
different values whenever one holds spaces, quotes, `$` or a backslash, and
would run any command substitution in it; `env $(cat FILE)` splits on spaces.
The program travels as `python3 -c`, so stdin stays free for an interactive
shell, and every argument reaches manage.py exactly as given (JSON, quoted once).

Unit control goes through `sudo -n /usr/bin/systemctl VERB UNIT`, one unit per
call: the deploy user's sudoers entry allows exactly those command lines.
Logs and unit facts need no root (the deploy user is in systemd-journal).
"""

from __future__ import annotations

import inspect
import json
import re

from ayna_fab import backup as backup_rules
from ayna_fab.remote import Command

from . import q

SYSTEMCTL = "/usr/bin/systemctl"
UNIT_VERBS = ("start", "stop", "restart")
# Lines a streamed host program prints for the controller, not for people:
RESULT = "@@result "        # the last line: its JSON result
BACKUP_MARK = "@@backup "   # migrate: the backup it took, before migrating
MARKS = (RESULT, BACKUP_MARK)
# journalctl --since/--until: dates, times, "yesterday", "-1h", "2 hours ago"; nothing else.
SINCE_RE = re.compile(r"[A-Za-z0-9 :+\-.]{1,40}")


# --- the host program ------------------------------------------------------------------------

def host_program(subcommand: str, args: dict, step: str, *, changes: bool = True,
                 hint: str | None = None) -> Command:
    """One round trip running a subcommand of the host program with JSON arguments."""
    payload = json.dumps(args, sort_keys=True)
    script = f"python3 -c {q(program_source())} {q(subcommand)} {q(payload)}"
    display = f"python3 -c HOST_PROGRAM {q(subcommand)} {q(payload)}  # ayna_fab/commands/ops.py"
    return Command(script, step, changes, hint, display)


def program_source() -> str:
    """The backup rules (ayna_fab/backup.py) followed by the host program that uses them."""
    return inspect.getsource(backup_rules) + HOST_PROGRAM


def result(stdout: str) -> dict:
    """The JSON a host program printed last (after `@@result ` when its output was streamed)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no result in the host program's output: {stdout[-500:]!r}")


def base_args(root: str, env_file: str, django_dir: str) -> dict:
    return {"root": root, "env_file": env_file, "django_dir": django_dir}


def manage(root: str, env_file: str, django_dir: str, argv: list[str], step: str = "manage") -> Command:
    """`python manage.py ARGV` in the current release, with the units' environment."""
    return host_program("exec", {**base_args(root, env_file, django_dir), "argv": list(argv)}, step,
                        hint="the host has no live release yet? deploy first")


def shell(root: str, env_file: str, django_dir: str) -> Command:
    """Django's interactive shell; the task runs it on a pty."""
    return manage(root, env_file, django_dir, ["shell"], step="shell")


def migrate(root: str, env_file: str, django_dir: str, project: str, argv: list[str], *,
            backup: bool, keep: int, lock: dict) -> Command:
    """Under the deploy lock: back the database up (unless told not to), then `manage.py migrate`.

    One round trip and one host process, which ignores a dropped connection, so
    the lock is released on the host whatever happens to the link.
    """
    return host_program("migrate", {**base_args(root, env_file, django_dir), "project": project,
                                    "argv": ["migrate", "--noinput", *argv], "backup": backup,
                                    "keep": backup_rules.check_keep(keep), "lock": lock}, "migrate")


# --- units ---------------------------------------------------------------------------------

def systemctl(verb: str, units: list[str]) -> Command:
    """VERB every unit at once (a slow warm shutdown must not hold up the rest), then show them."""
    if verb not in UNIT_VERBS:
        raise ValueError(f"unknown verb {verb!r}")
    lines = ["rc=0", "pids="]
    for unit in units:
        lines.append(f"sudo -n {SYSTEMCTL} {verb} {q(unit)} & pids=\"$pids $!\"")
    lines += ["for p in $pids; do wait \"$p\" || rc=1; done", show_script(units), "exit $rc"]
    return Command("\n".join(lines), verb, hint="setup installs the sudoers rule these need: fab -H HOST setup")


def show_script(units: list[str]) -> str:
    return f"python3 -c {q(UNIT_FACTS)} {' '.join(q(u) for u in units)}"


# `systemctl show` for the units, then the clock their timestamps use, then each unit's
# processes' proportional memory: systemd reports MemoryCurrent only where it may account
# memory (not in a container on a cgroup v1 host, for one).
UNIT_FACTS = r"""
import subprocess
import sys
import time
props = "Id,ActiveState,SubState,MainPID,MemoryCurrent,ActiveEnterTimestamp,ActiveEnterTimestampMonotonic,ControlGroup"
out = subprocess.run(["systemctl", "show", "-p", props, "--", *sys.argv[1:]], capture_output=True, text=True).stdout
print(out.rstrip("\n") + "\n")
print("Now=%d" % (time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6))
for block in out.split("\n\n"):
    fields = dict(line.partition("=")[::2] for line in block.splitlines())
    unit, value = fields.get("Id"), fields.get("ControlGroup")
    if not unit or not value:
        continue
    pids = None
    for base in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup"):
        try:
            pids = open(base + value + "/cgroup.procs").read().split()
            break
        except OSError:
            pass
    kb = 0
    for pid in pids or []:
        try:
            for row in open("/proc/%s/smaps_rollup" % pid):
                if row.startswith("Pss:"):
                    kb += int(row.split()[1])
                    break
        except (OSError, ValueError):
            pass
    if pids is not None:
        print("Pss.%s=%d" % (unit, kb))
"""


def services(units: list[str]) -> Command:
    return Command(show_script(units), "services", changes=False)


def parse_show(stdout: str) -> list[dict]:
    """`systemctl show` blocks, one per unit, into facts: state, main PID, memory, uptime."""
    now = None
    pss: dict[str, int] = {}
    blocks, current = [], {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
        elif sep and key == "Now":
            now = int(value) if value.isdigit() else None
        elif sep and key.startswith("Pss."):
            pss[key[4:]] = int(value) * 1024 if value.isdigit() else 0
        elif sep:
            current[key] = value
    if current:
        blocks.append(current)
    facts = []
    for b in blocks:
        active = b.get("ActiveState", "unknown")
        pid = int(b["MainPID"]) if b.get("MainPID", "").isdigit() and b["MainPID"] != "0" else None
        mem = int(b["MemoryCurrent"]) if b.get("MemoryCurrent", "").isdigit() else None
        if mem is not None and mem >= 2**63:    # systemd's "not set"
            mem = None
        if mem is None and active == "active":
            mem = pss.get(b.get("Id", "")) or None
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


def logs(units: list[str], *, lines: int | None, since: str | None, follow: bool) -> Command:
    """journalctl over the units. With --follow on a pty, so closing the connection ends it."""
    argv = ["journalctl", "--no-pager", "--quiet", "--output=short-iso"]
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
    script = ("SYSTEMD_COLORS=0 " if follow else "") + " ".join(q(a) for a in argv)
    if tail is not None:
        script = f"set -o pipefail; {script} | tail -n {tail}"
    return Command(script, "logs", changes=False)


# The program that runs on the host, after the text of ayna_fab/backup.py (stdlib only):
#     python3 -c PROGRAM SUBCOMMAND ARGS_JSON
# It reports errors as `ayna-fab: ...` on stderr with exit status 2, and never prints a secret.
HOST_PROGRAM = r'''

# ---- ayna-fab host program: day-two operations (ayna_fab/commands/ops.py) ----
import json as _json
import os as _os
import shutil as _shutil
import signal as _signal
import subprocess as _sp
import sys as _sys
import tempfile as _tempfile
import time as _time
from contextlib import contextmanager as _contextmanager

LOCK = ".deploy-lock"
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def fail(message):
    _sys.stderr.write(f"ayna-fab: {message}\n")
    _sys.stderr.flush()
    _sys.exit(2)


def emit(obj, streamed=False):
    line = ("@@result " if streamed else "") + _json.dumps(obj, sort_keys=True)
    try:
        print(line, flush=True)
    except OSError:  # the connection is gone; the work is done all the same
        pass


def read_env(path):
    """KEY=VALUE lines the way systemd's EnvironmentFile= reads them (so commands see what the
    units see): '#' and ';' start comments, whitespace around a key and an unquoted value is
    trimmed, '...' is literal, "..." and bare values take backslash escapes, a backslash ending
    a line continues it, invalid keys are ignored."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    env = {}
    state, key, value, trail = "pre_key", "", "", 0
    text += "\n"

    def push():
        k = key.strip()
        if ENV_KEY_RE.fullmatch(k):
            env[k] = value[:len(value) - trail] if trail else value

    for ch in text:
        if state == "pre_key":
            if ch in "#;":
                state = "comment"
            elif not ch.isspace():
                state, key, value, trail = "key", ch, "", 0
        elif state == "key":
            if ch == "\n":
                state = "pre_key"
            elif ch == "=":
                state = "pre_value"
            else:
                key += ch
        elif state == "pre_value":
            if ch == "\n":
                push()
                state = "pre_key"
            elif ch == "'":
                state, trail = "single", 0
            elif ch == '"':
                state, trail = "double", 0
            elif ch == "\\":
                state = "escape"
            elif not ch.isspace():
                state, value, trail = "value", value + ch, 0
        elif state == "value":
            if ch == "\n":
                push()
                state = "pre_key"
            elif ch == "\\":
                state, trail = "escape", 0
            else:
                value += ch
                trail = trail + 1 if ch.isspace() else 0
        elif state == "escape":
            if ch != "\n":
                value += ch
            state = "value"
        elif state == "single":
            if ch == "'":
                state = "pre_value"
            else:
                value += ch
        elif state == "double":
            if ch == '"':
                state = "pre_value"
            elif ch == "\\":
                state = "double_escape"
            else:
                value += ch
        elif state == "double_escape":
            if ch in '"\\`$':
                value += ch
            elif ch != "\n":
                value += "\\" + ch
            state = "double"
        elif state == "comment":
            if ch == "\\":
                state = "comment_escape"
            elif ch == "\n":
                state = "pre_key"
        elif state == "comment_escape":
            state = "comment"
    return env


def current_release(root):
    """The live release's directory, resolved once, so one command never spans a flip."""
    link = _os.path.join(root, "releases", "current")
    if not _os.path.islink(link):
        return None
    return _os.path.realpath(link)


def release_name(root):
    rel = current_release(root)
    return _os.path.basename(rel) if rel else None


def app_env(a, rel):
    env = dict(_os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(name, None)
    env.update(read_env(a["env_file"]))
    env["PATH"] = _os.path.join(rel, ".venv", "bin") + ":" + env.get("PATH", "/usr/bin:/bin")
    return env


def manage_argv(a):
    """(argv, cwd, env) of `python manage.py ...` in the current release."""
    rel = current_release(a["root"])
    if rel is None:
        fail(f"{a['root']} has no live release (releases/current is missing): deploy first")
    python = _os.path.join(rel, ".venv", "bin", "python")
    workdir = _os.path.join(rel, a["django_dir"])
    if not _os.path.exists(_os.path.join(workdir, "manage.py")):
        fail(f"{workdir}/manage.py does not exist")
    return [python, "manage.py", *a["argv"]], workdir, app_env(a, rel)


def cmd_exec(a):
    argv, cwd, env = manage_argv(a)
    _os.chdir(cwd)
    _os.execve(argv[0], argv, env)


# --- the deploy lock (the same directory and owner file as deploys use) ---

def lock(root, owner):
    path = _os.path.join(root, LOCK)
    try:
        _os.mkdir(path, 0o700)
    except FileExistsError:
        try:
            with open(_os.path.join(path, "owner.json")) as f:
                return _json.load(f)
        except (OSError, ValueError):
            return {}
    tmp = _os.path.join(path, f"owner.json.tmp{_os.getpid()}")
    with open(tmp, "w") as f:
        _json.dump(owner, f, sort_keys=True)
    _os.replace(tmp, _os.path.join(path, "owner.json"))
    return None


def unlock(root, token):
    path = _os.path.join(root, LOCK)
    try:
        with open(_os.path.join(path, "owner.json")) as f:
            holder = _json.load(f)
    except (OSError, ValueError):
        return
    if holder.get("token") == token:
        _shutil.rmtree(path, ignore_errors=True)


# --- backups ---

def backups_dir(root):
    return _os.path.join(root, "shared", "backups")


def database(a):
    url = read_env(a["env_file"]).get("DATABASE_URL")
    if not url:
        fail(f"DATABASE_URL is not set in {a['env_file']}")
    try:
        return connection(url)
    except ValueError as e:
        fail(f"DATABASE_URL in {a['env_file']}: {e}")


@_contextmanager
def pg_env(password):
    """libpq's environment: the password in a private pgpass file (never argv, never output)."""
    env = dict(_os.environ, PGAPPNAME="ayna-fab", PGCONNECT_TIMEOUT="10")
    env.pop("PGPASSWORD", None)
    tmp = _tempfile.mkdtemp(prefix="ayna-fab-pg.")
    try:
        if password:
            path = _os.path.join(tmp, "pgpass")
            fd = _os.open(path, _os.O_WRONLY | _os.O_CREAT | _os.O_EXCL, 0o600)
            with _os.fdopen(fd, "w") as f:
                f.write(pgpass_line(password))
            env["PGPASSFILE"] = path
        yield env
    finally:
        _shutil.rmtree(tmp, ignore_errors=True)


def redact(text, password):
    text = text.strip()
    return text.replace(password, "********") if password else text


def take_backup(a, release=None, protect=()):
    """pg_dump into shared/backups under a temporary name, 0600 from the start, fsync, rename;
    then prune to the newest `keep`. Returns what was made and removed."""
    root, project = a["root"], a["project"]
    uri, password = database(a)
    release = release or a.get("release") or release_name(root)
    folder = backups_dir(root)
    _os.makedirs(folder, mode=0o700, exist_ok=True)
    while True:  # one name per second: wait out a clash rather than invent a second format
        name = name_for(project, datetime.now(timezone.utc), release)
        if not _os.path.exists(_os.path.join(folder, name)):
            break
        _time.sleep(0.2)
    final = _os.path.join(folder, name)
    partial = _os.path.join(folder, f".{name}.partial")
    started = _time.monotonic()
    old_umask = _os.umask(0o077)
    try:
        with pg_env(password) as env:
            p = _sp.run(dump_argv(uri, partial), env=env, stdin=_sp.DEVNULL, stdout=_sp.PIPE,
                        stderr=_sp.STDOUT, text=True)
        if p.returncode != 0:
            fail(f"pg_dump exited {p.returncode}: {redact(p.stdout, password)}")
        _os.chmod(partial, 0o600)
        fd = _os.open(partial, _os.O_RDONLY)
        try:
            _os.fsync(fd)
        finally:
            _os.close(fd)
        _os.replace(partial, final)
        dfd = _os.open(folder, _os.O_RDONLY)
        try:
            _os.fsync(dfd)
        finally:
            _os.close(dfd)
    finally:
        _os.umask(old_umask)
        if _os.path.exists(partial):
            _os.unlink(partial)
    pruned = []
    if a.get("keep"):
        for old in to_prune(_os.listdir(folder), project, a["keep"], protect, just_taken=name):
            try:
                _os.unlink(_os.path.join(folder, old))
                pruned.append(old)
            except OSError:
                pass
    return {"backup": name, "bytes": _os.stat(final).st_size, "pruned": pruned, "release": release,
            "path": final, "seconds": round(_time.monotonic() - started, 3)}


def cmd_backup(a):
    emit(take_backup(a))


def listing(a):
    folder = backups_dir(a["root"])
    try:
        names = _os.listdir(folder)
    except FileNotFoundError:
        names = []
    found = []
    for b in newest_first(names, a["project"]):
        st = _os.stat(_os.path.join(folder, b.name))
        found.append({"name": b.name, "bytes": st.st_size, "release": b.release,
                      "taken_at": b.taken_at.isoformat(), "mode": oct(st.st_mode & 0o777)[2:]})
    return found


def cmd_list(a):
    emit({"backups": listing(a), "current": release_name(a["root"]), "dir": backups_dir(a["root"]),
          "now": datetime.now(timezone.utc).isoformat(timespec="seconds")})


# --- operations under the deploy lock, finished on the host even if the link drops ---

def systemctl(verb, unit):
    p = _sp.run(["sudo", "-n", "/usr/bin/systemctl", verb, unit], stdin=_sp.DEVNULL,
                stdout=_sp.PIPE, stderr=_sp.STDOUT, text=True)
    return None if p.returncode == 0 else f"{verb} {unit}: {p.stdout.strip()}"


def is_active(unit):
    p = _sp.run(["systemctl", "is-active", unit], stdout=_sp.PIPE, stderr=_sp.DEVNULL, text=True)
    return p.stdout.strip() == "active"


def restore_database(a, path):
    uri, password = database(a)
    with pg_env(password) as env, _tempfile.TemporaryFile("w+") as dump_err, \
            _tempfile.TemporaryFile("w+") as psql_out:
        psql = _sp.Popen(psql_argv(uri), env=env, stdin=_sp.PIPE, stdout=psql_out, stderr=_sp.STDOUT)
        dump = _sp.Popen(restore_script_argv(path), env=env, stdin=_sp.DEVNULL, stdout=_sp.PIPE,
                         stderr=dump_err)
        broken = False
        try:
            psql.stdin.write(PRELUDE_SQL.encode())
            _shutil.copyfileobj(dump.stdout, psql.stdin)
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


def cmd_restore(a):
    _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    root, name = a["root"], a["name"]
    path = _os.path.join(backups_dir(root), name)
    if parse(name) is None or not _os.path.isfile(path):
        emit({"error": "missing", "name": name})
        return
    holder = lock(root, a["lock"])
    if holder is not None:
        emit({"error": "locked", "holder": holder})
        return
    res = {"name": name, "safety": None, "stopped": [], "started": [], "errors": [], "restored": False}
    try:
        if a.get("safety"):
            res["safety"] = take_backup(a, protect=[name])
        running = [u for u in a["units"] if is_active(u)]
        for unit in a["units"]:  # nothing may write to a database that is being replaced
            err = systemctl("stop", unit)
            res["errors"] += [err] if err else []
            res["stopped"] += [] if err else [unit]
        errors = restore_database(a, path)
        res["errors"] += errors
        res["restored"] = not errors
        for unit in running:     # back up, whether the restore worked or was rolled back
            err = systemctl("start", unit)
            res["errors"] += [err] if err else []
            res["started"] += [] if err else [unit]
    finally:
        unlock(root, a["lock"]["token"])
    emit(res)


def cmd_migrate(a):
    _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
    argv, cwd, env = manage_argv(a)
    holder = lock(a["root"], a["lock"])
    if holder is not None:
        emit({"error": "locked", "holder": holder}, streamed=True)
        return
    res = {"backup": None, "code": None, "release": release_name(a["root"])}
    try:
        if a.get("backup"):
            res["backup"] = take_backup(a)
            print("@@backup " + _json.dumps(res["backup"], sort_keys=True), flush=True)
        try:
            res["code"] = _sp.run(argv, cwd=cwd, env=env, stdin=_sp.DEVNULL).returncode
        except OSError as e:
            res["code"], res["error"] = 127, str(e)
    finally:
        unlock(a["root"], a["lock"]["token"])
    emit(res, streamed=True)


COMMANDS = {"exec": cmd_exec, "backup": cmd_backup, "list": cmd_list, "restore": cmd_restore,
            "migrate": cmd_migrate}

if __name__ == "__main__":
    COMMANDS[_sys.argv[1]](_json.loads(_sys.argv[2]))
'''
