"""Prepare a release before anything live changes: install its venv with uv, back the database up,
then the Django steps (check, migrate, collectstatic) in one interpreter."""

import json
import os
import re
import subprocess
import time

from . import calls, dumps, envfile, hooks, preflight as private, source, store, wire
from .releases import require_lock

STEP_RE = re.compile(r"@@step (\S+) ([0-9.]+) (ok|failed)")
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
        create = f"uv venv --quiet --relocatable --python /usr/bin/python3 {venv}\n"
    return (f"set -e; uv export --quiet --frozen --no-dev --no-emit-project --no-header -o {req}\n"
            + create + f"uv pip sync --quiet --python {venv}/bin/python --require-hashes {req}\n")


class Steps:
    """A call's steps as they end: each reported as a @@step line and recorded in the result."""

    def __init__(self, **extra):
        self.result = {"steps": {}, "failed": None, **extra}

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
    require_lock(a.root, a.token)
    rel, env = _release_env(a.root, a.number, a.env_file, "install")
    if rel is None:
        return env
    env.update({"UV_CACHE_DIR": a.uv_cache, "UV_LINK_MODE": "hardlink", "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_PROGRESS": "1"})
    if os.path.exists(a.uv_config):  # hosts.toml's index settings, as setup wrote them (checked at plan)
        env["UV_CONFIG_FILE"] = a.uv_config
    steps = Steps(backup=None, notes=[])
    result, done = steps.result, steps.done

    if "install" in a.steps:
        t = time.monotonic()
        reuse = reusable(rel, a.base_venv)
        p = subprocess.run(["sh", "-c", install_script(rel, a.base_venv)], cwd=rel, env=env,
                           capture_output=True, text=True)
        if not done("install", time.monotonic() - t, p.returncode == 0, p.stdout + "\n" + p.stderr,
                    detail={"venv": "reused", "from": os.path.basename(os.path.dirname(a.base_venv))} if reuse else None):
            return result
        if a.hooks:  # after install: the release has its venv; nothing has migrated yet
            result["hooks"] = hooks.run_all(a.hooks, rel, dict(env, **a.hook_env), "after-install")
            failed = next((r for r in result["hooks"] if not r["ok"]), None)
            if failed:
                result["failed"], result["output"] = f"hook:{failed['name']}", failed["output"]
                return result
    if "backup" in a.steps:
        t = time.monotonic()
        try:
            result["backup"] = dumps.take(a.root, a.env_file, a.project, a.backup_release, a.keep_backups)
            done("backup", time.monotonic() - t, True, detail=result["backup"])
        except wire.Refused as e:
            done("backup", time.monotonic() - t, False, e.detail)
            return result
    django_steps = [s for s in a.steps if s in DJANGO_STEPS]
    preflight_due = "preflight" in a.steps and bool(a.servers)
    # The pre-flip check's servers import the app while Django's steps run (two cores, not one
    # after the other); they are probed only once the database is migrated.
    ahead = private.start(a.servers, env, rel) if preflight_due and django_steps else None
    try:
        return _django_then_preflight(a, rel, env, steps, django_steps, preflight_due, ahead)
    finally:
        if isinstance(ahead, private.Started):
            private.stop(ahead)   # unless the check stopped them already (stop is idempotent)


def _django_then_preflight(a: calls.Prepare, rel, env, steps, django_steps, preflight_due, ahead):
    result, done = steps.result, steps.done
    if django_steps:
        # django_dir None: no Django (an API, Celery); the check imports the ASGI app alone
        args = {"steps": django_steps, "asgi_app": a.asgi_app, "django": a.django_dir is not None,
                "fail_level": "WARNING" if a.checks == "strict" else "ERROR",
                "asgi_dir": os.path.join(rel, a.asgi_dir) if a.asgi_app and a.asgi_dir else None}
        argv = [os.path.join(rel, ".venv", "bin", "python"), "-c", source("django_steps"), json.dumps(args)]
        workdir = os.path.join(rel, a.django_dir if a.django_dir is not None else (a.asgi_dir or "."))
        p = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True)
        said = _app_output(p.stdout + "\n" + p.stderr)
        result["notes"] = [[name, json.loads(text)] for name, text in NOTE_RE.findall(p.stdout)]
        for name, seconds, status in STEP_RE.findall(p.stdout):  # output may precede a marker
            if name in DJANGO_STEPS:
                done(name, float(seconds), status == "ok", said)
        if p.returncode != 0 and not result["failed"]:
            result["failed"], result["output"] = django_steps[0], _tail(said)
        if result["failed"]:
            return result
    if preflight_due:
        result.update(_preflight(rel, env, a.number, a.servers, a.preflight_timeout, done, ahead))
    return result


def _preflight(rel, env, number, servers, timeout, done, ahead=None):
    t = time.monotonic()
    ok, report = private.check(servers, env, rel, f"v{number}", timeout, started=ahead)
    if not ok and isinstance(ahead, private.Started) and any("exited" in r for r in report.values()):
        # A server that died having started before migrate may have needed the migrated
        # database to start at all: it gets one fresh start on it before the release is refused.
        ok, report = private.check(servers, env, rel, f"v{number}", timeout)
    done("preflight", time.monotonic() - t, ok, describe(report) if not ok else "")
    return {"preflight": report}


def describe(report):
    return "\n".join(f"{name}: status {r['status']}, release {r['release']}: {r['body']}"
                     for name, r in report.items() if not r["ok"])


def preflight(a: calls.Preflight):
    require_lock(a.root, a.token)
    rel, env = _release_env(a.root, a.number, a.env_file, "preflight")
    if rel is None:
        return env
    steps = Steps()
    result, done = steps.result, steps.done
    result.update(_preflight(rel, env, a.number, a.servers, a.timeout, done))
    return result
