"""Prepare a release before anything live changes: install its venv with uv, back the database up,
then the Django steps (check, migrate, collectstatic) in one interpreter."""

import json
import os
import re
import subprocess
import threading
import time

from . import calls, dumps, envfile, hookrunner, lock, preflipcheck, source, store, uvreport, wire
from .interpreter import PYTHON

STEP_RE = re.compile(r"@@step (\S+) ([0-9.]+) (ok|failed)")
START_RE = re.compile(r"^@@start (\S+)$")
NOTE_RE = re.compile(r"^@@note (\S+) (.*)$", re.M)   # django_steps: what a passing step wants shown
DJANGO_STEPS = ("check", "migrate", "collectstatic")


def _relocatable(venv):
    try:
        with open(os.path.join(venv, "pyvenv.cfg")) as f:
            return any(line.replace(" ", "").strip() == "relocatable=true" for line in f)
    except OSError:
        return False


def _tail(text, lines=40):
    return "\n".join(text.strip().splitlines()[-lines:])


def _app_output(text):
    """What the Django steps printed for people: their protocol lines left out."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("@@"))


LOCK_FILES = ("uv.lock", "pyproject.toml")   # all that decides what the venv holds (uv export --frozen)
REQUIREMENTS = ".ayna-requirements.txt"


def _same_files(a, b, names):
    for name in names:
        try:
            with open(os.path.join(a, name), "rb") as fa, open(os.path.join(b, name), "rb") as fb:
                if fa.read() != fb.read():
                    return False
        except OSError:
            return False
    return True


def reusable(rel, base_venv):
    """Whether the live venv already is this release's: relocatable, made from the same lock and
    project file, and installed to the end (its release has the requirements it synced)."""
    if not base_venv or not _relocatable(base_venv):
        return False
    base = os.path.dirname(base_venv)
    return _same_files(rel, base, LOCK_FILES) and os.path.isfile(os.path.join(base, REQUIREMENTS))


def install_script(rel, base_venv):
    """uv: the locked requirements with hashes, into a venv cloned from the live one when it can be.

    A hard-linked copy of the live venv (relocatable, so nothing in it names its path) brings
    compiled bytecode along, and `uv pip sync` then changes only what differs. When nothing can
    differ (reusable), the copy is all: no uv run at all.
    """
    venv = os.path.join(rel, ".venv")
    req = os.path.join(rel, REQUIREMENTS)
    if reusable(rel, base_venv):
        base_req = os.path.join(os.path.dirname(base_venv), REQUIREMENTS)
        return f"set -e; cp -al {base_venv} {venv}\ncp {base_req} {req}\n"
    if base_venv and _relocatable(base_venv):
        create = f"cp -al {base_venv} {venv}\n"
    else:
        create = f"uv venv --quiet --relocatable --python {PYTHON} {venv}\n"
    return (f"set -e; uv export --quiet --frozen --no-dev --no-emit-project --no-header -o {req}\n"
            + create + f"uv pip sync --python {venv}/bin/python --require-hashes {req}\n")


class Steps:
    """A call's steps as they end: each reported as a @@step line and recorded in the result."""

    def __init__(self, **extra):
        self.result = {"steps": {}, "failed": None, **extra}

    def begin(self, name):
        wire.start(name)

    def done(self, name, seconds, ok, output="", detail=None):
        self.result["steps"][name] = round(seconds, 3)
        wire.step(name, seconds, ok, detail)
        if not ok:
            self.result["failed"], self.result["output"] = name, _tail(output)
        return ok


def _release_env(root, number, env_file, first_step):
    """(release dir, the environment its code runs with) or (None, the refusal as a result)."""
    rel = store.release_dir(root, number)
    try:
        return rel, envfile.for_app(env_file, rel)
    except OSError as e:
        return None, {"steps": {}, "failed": first_step, "output": f"cannot read {env_file}: {e.strerror}"}


def prepare(a: calls.Prepare):
    """The steps at once where nothing orders them (docs/ARCHITECTURE.md, "Prepare"): the backup
    runs beside the install, and a release that takes the live venv as it is (reusable) runs its
    check beside both with that venv, which holds the same files. Migrate (and every Django step
    after check) waits at a gate for a finished install and backup, so nothing is migrated for a
    release whose install or backup failed, and steps are reported in the pipeline's order."""
    lock.require(a.root, a.token)
    rel, env = _release_env(a.root, a.number, a.env_file, "install")
    if rel is None:
        return env
    env.update({"UV_CACHE_DIR": a.uv_cache, "UV_LINK_MODE": "hardlink", "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_PROGRESS": "1"})
    if os.path.exists(a.uv_config):  # hosts.toml's index settings, as setup wrote them (checked at plan)
        env["UV_CONFIG_FILE"] = a.uv_config
    steps = Steps(backup=None, notes=[])
    django_steps = [s for s in a.steps if s in DJANGO_STEPS]
    reuse = "install" in a.steps and reusable(rel, a.base_venv)
    for name in ("install", "backup"):
        if name in a.steps:
            steps.begin(name)
    backup = _Background(lambda: _backup_if_pending(a, rel, env)) if "backup" in a.steps else None
    early = None
    if reuse and not a.hooks and django_steps and django_steps[0] == "check":
        python = os.path.join(a.base_venv, "bin", "python")
        early = _Background(lambda gate: _django(a, rel, env, django_steps, python, gate), gated=True)
    ok = False
    try:
        ok = _install(a, rel, env, steps, reuse) if "install" in a.steps else True
        if ok and backup is not None:
            ok = _backup(backup, steps)
    finally:
        for job in (early, backup):
            if job is not None and not ok:
                job.join()   # stopped at its gate, or run to its end: nothing is left running
    if not ok:
        return steps.result
    return _django_then_preflight(a, rel, env, steps, django_steps, early)


class _Background:
    """One piece of prepare's work in a thread of its own. A gated piece (the Django steps) is
    handed the read end of a pipe and waits on it before migrate: gate(True) lets it go on."""

    def __init__(self, work, gated=False):
        self._value = self._error = None
        self.seconds = 0.0
        self._read, self._write = os.pipe() if gated else (None, None)
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work):
        t = time.monotonic()
        try:
            self._value = work(self._read) if self._read is not None else work()
        except BaseException as e:   # handed to wait()
            self._error = e
        finally:
            self.seconds = time.monotonic() - t

    def gate(self, ok):
        """Let the gated steps go on (ok) or stop them before migrate; once."""
        if self._write is None:
            return
        try:
            os.write(self._write, b"1" if ok else b"0")
        except OSError:   # the Django program has ended already (its check failed)
            pass
        os.close(self._write)
        self._write = None

    def join(self, go_on=False):
        """Wait for its end, the gate opened (go_on) or closed first."""
        self.gate(go_on)
        self._thread.join()
        if self._read is not None:
            os.close(self._read)
            self._read = None

    def wait(self):
        """Its value, once it has ended (the gate opened first); what it raised is raised here."""
        self.join(go_on=True)
        if self._error is not None:
            raise self._error
        return self._value


def _streamed(argv, each_line, **kw):
    """Run argv, handing each line of its output (stdout and stderr as one stream) to each_line as
    it comes: the finished process, its whole output as stdout."""
    said = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", **kw) as p:
        for line in p.stdout:
            said.append(line)
            each_line(line.rstrip("\n"))
    return subprocess.CompletedProcess(argv, p.returncode, "".join(said), "")


def _install(a: calls.Prepare, rel, env, steps, reuse):
    t = time.monotonic()
    # uv's lines travel as they come: a first install's downloads take a while, and show that they run
    p = _streamed(["sh", "-c", install_script(rel, a.base_venv)], lambda line: wire.text(f"install: {line}"),
                  cwd=rel, env=env)
    if not steps.done("install", time.monotonic() - t, p.returncode == 0,
                      uvreport.explain(p.stdout + "\n" + p.stderr),
                      detail={"venv": "reused", "from": os.path.basename(os.path.dirname(a.base_venv))}
                      if reuse else None):
        return False
    if a.hooks:  # after install: the release has its venv; nothing has migrated yet
        steps.result["hooks"] = hookrunner.run_all(a.hooks, rel, dict(env, **a.hook_env), "after-install")
        failed = next((r for r in steps.result["hooks"] if not r["ok"]), None)
        if failed:
            steps.result["failed"], steps.result["output"] = f"hook:{failed['name']}", failed["output"]
            return False
    return True


PENDING_RE = re.compile(r"^@@pending ([0-9]+)$", re.M)
NOT_NEEDED = "no migration pending, so no dump"


def pending(a: calls.Prepare, rel, env):
    """How many migrations the database lacks for this release, or None when that cannot be told.

    Asked before the install has ended, so of the live venv's interpreter (a venv a lock change
    leaves behind may lack what the release imports: then None); a fleet's migrate call asks the
    release's own venv. One Django start, beside the install like the dump it may spare."""
    venv = a.base_venv if "install" in a.steps else os.path.join(rel, ".venv")
    python = os.path.join(venv, "bin", "python") if venv else None
    if python is None or not os.path.exists(python):
        return None
    try:
        p = _django(a, rel, env, ["pending"], python)
    except OSError:
        return None
    found = PENDING_RE.search(p.stdout or "")
    return int(found[1]) if p.returncode == 0 and found else None


def _backup_if_pending(a: calls.Prepare, rel, env):
    """The dump before migrating, taken only when there is something to migrate (or no telling)."""
    if pending(a, rel, env) == 0:
        return {"skipped": NOT_NEEDED}
    return dumps.take(a.root, a.env_file, a.project, a.backup_release, a.keep_backups, before_migrate=True)


def _backup(job, steps):
    """The backup's step, once it has ended (it began with the install), with its own duration."""
    try:
        made = job.wait()
        steps.result["backup"] = None if made.get("skipped") else made
        return steps.done("backup", job.seconds, True, detail=made)
    except wire.Refused as e:
        return steps.done("backup", job.seconds, False, e.detail)


def _django(a: calls.Prepare, rel, env, django_steps, python, gate=None, steps=None):
    """The Django steps in one interpreter (django_steps.py): the finished process. gate: the read
    end of a pipe it inherits, on which it waits before migrate for b"1". steps: each step is
    reported (Steps) as it begins and ends, not once the program has ended."""
    # django_dir None: no Django (an API, Celery); the check imports the ASGI app alone
    args = {"steps": django_steps, "asgi_app": a.asgi_app, "django": a.django_dir is not None,
            "fail_level": "WARNING" if a.checks == "strict" else "ERROR",
            "allow_debug": a.allow_debug,
            "asgi_dir": os.path.join(rel, a.asgi_dir) if a.asgi_app and a.asgi_dir else None,
            "release": rel}
    if gate is not None:
        args["gate"] = gate
    workdir = os.path.join(rel, a.django_dir if a.django_dir is not None else (a.asgi_dir or "."))
    argv = [python, "-c", source("django_steps"), json.dumps(args)]
    if steps is not None:
        return _streamed(argv, lambda line: _relay(line, steps), cwd=workdir, env=env)
    return subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True,
                          pass_fds=(gate,) if gate is not None else ())


def _relay(line, steps):
    """One line of the Django-steps program, while it runs: its steps' beginnings and ends."""
    began, ended = START_RE.match(line), STEP_RE.match(line)
    if began and began[1] in DJANGO_STEPS:
        steps.begin(began[1])
    elif ended and ended[1] in DJANGO_STEPS and ended[3] == "ok":
        steps.done(ended[1], float(ended[2]), True)


def _django_then_preflight(a: calls.Prepare, rel, env, steps, django_steps, early=None):
    result, done = steps.result, steps.done
    preflight_due = "preflight" in a.steps and bool(a.servers)
    # The pre-flip check's servers import the app while Django's steps run (two cores, not one
    # after the other); they are probed only once the database is migrated.
    ahead = preflipcheck.start(a.servers, env, rel) if preflight_due and django_steps else None
    try:
        if django_steps:
            # Started early, its steps are reported once install and backup have been, in that order.
            p = early.wait() if early is not None else _django(a, rel, env, django_steps,
                                                               os.path.join(rel, ".venv", "bin", "python"),
                                                               steps=steps)
            said = _app_output(p.stdout + "\n" + p.stderr)
            result["notes"] = [[name, json.loads(text)] for name, text in NOTE_RE.findall(p.stdout)]
            for name, seconds, status in STEP_RE.findall(p.stdout):  # output may precede a marker
                if name in DJANGO_STEPS and name not in result["steps"]:
                    done(name, float(seconds), status == "ok", said)
            if p.returncode != 0 and not result["failed"]:
                result["failed"], result["output"] = django_steps[0], _tail(said)
            if result["failed"]:
                return result
        if preflight_due:
            result.update(_preflight(rel, env, a.number, a.servers, a.preflight_timeout, done, ahead,
                                     collected="collectstatic" in django_steps))
        return result
    finally:
        if isinstance(ahead, preflipcheck.Started):
            preflipcheck.stop(ahead)   # unless the check stopped them already (stop is idempotent)


def _preflight(rel, env, number, servers, timeout, done, ahead=None, collected=False):
    """collected: collectstatic ran after the servers started ahead (they may have read a static
    manifest it has rewritten since: ManifestStaticFilesStorage answers 500 for files it lacks)."""
    wire.start("preflight")
    t = time.monotonic()
    ok, report = preflipcheck.check(servers, env, rel, f"v{number}", timeout, started=ahead)
    stale = collected and any((r.get("status") or 0) >= 500 for r in report.values())
    if not ok and isinstance(ahead, preflipcheck.Started) and (
            stale or any("exited" in r for r in report.values())):
        # A server that died having started before migrate may have needed the migrated
        # database to start at all, and one that answers 5xx may have read static files before
        # collectstatic wrote them: it gets one fresh start before the release is refused.
        ok, report = preflipcheck.check(servers, env, rel, f"v{number}", timeout)
    done("preflight", time.monotonic() - t, ok, failed_servers(report) if not ok else "")
    return {"preflight": report}


def failed_servers(report):
    return "\n".join(f"{name}: status {r['status']}, release {r['release']}: {r['body']}"
                     for name, r in report.items() if not r["ok"])


def preflight(a: calls.Preflight):
    lock.require(a.root, a.token)
    rel, env = _release_env(a.root, a.number, a.env_file, "preflight")
    if rel is None:
        return env
    steps = Steps()
    result, done = steps.result, steps.done
    result.update(_preflight(rel, env, a.number, a.servers, a.timeout, done))
    return result
