"""Prepare a release before anything live changes: install its venv with uv, back the database up,
then the Django steps (check, migrate, collectstatic) in one interpreter."""

import json
import os
import re
import subprocess
import time

from . import calls, dumps, envfile, source, store, wire
from .releases import require_lock

STEP_RE = re.compile(r"@@step (\S+) ([0-9.]+) (ok|failed)")
DJANGO_STEPS = ("check", "migrate", "collectstatic")


def _relocatable(venv):
    try:
        with open(os.path.join(venv, "pyvenv.cfg")) as f:
            return any(line.replace(" ", "").strip() == "relocatable=true" for line in f)
    except OSError:
        return False


def _tail(text, lines=40):
    return "\n".join(text.strip().splitlines()[-lines:])


def install_script(rel, base_venv):
    """uv: the locked requirements with hashes, into a venv cloned from the live one when it can be.

    A hard-linked copy of the live venv (relocatable, so nothing in it names its path) brings
    compiled bytecode along, and `uv pip sync` then changes only what differs.
    """
    venv = os.path.join(rel, ".venv")
    req = os.path.join(rel, ".ayna-requirements.txt")
    if base_venv and _relocatable(base_venv):
        create = f"cp -al {base_venv} {venv}\n"
    else:
        create = f"uv venv --quiet --relocatable --python /usr/bin/python3 {venv}\n"
    return (f"set -e; uv export --quiet --frozen --no-dev --no-emit-project --no-header -o {req}\n"
            + create + f"uv pip sync --quiet --python {venv}/bin/python --require-hashes {req}\n")


def prepare(a: calls.Prepare):
    require_lock(a.root, a.token)
    rel = store.release_dir(a.root, a.number)
    try:
        env = envfile.for_app(a.env_file, rel)
    except OSError as e:
        return {"steps": {}, "failed": "install", "output": f"cannot read {a.env_file}: {e.strerror}"}
    env.update({"UV_CACHE_DIR": a.uv_cache, "UV_LINK_MODE": "hardlink", "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_PROGRESS": "1"})
    result = {"steps": {}, "failed": None, "backup": None}

    def done(name, seconds, ok, output=""):
        result["steps"][name] = round(seconds, 3)
        wire.step(name, seconds, ok)
        if not ok:
            result["failed"], result["output"] = name, _tail(output)
        return ok

    if "install" in a.steps:
        t = time.monotonic()
        p = subprocess.run(["sh", "-c", install_script(rel, a.base_venv)], cwd=rel, env=env,
                           capture_output=True, text=True)
        if not done("install", time.monotonic() - t, p.returncode == 0, p.stdout + "\n" + p.stderr):
            return result
    if "backup" in a.steps:
        t = time.monotonic()
        try:
            result["backup"] = dumps.take(a.root, a.env_file, a.project, a.backup_release, a.keep_backups)
            done("backup", time.monotonic() - t, True)
        except wire.Refused as e:
            done("backup", time.monotonic() - t, False, e.detail)
            return result
    django_steps = [s for s in a.steps if s in DJANGO_STEPS]
    if django_steps:
        args = {"steps": django_steps, "asgi_app": a.asgi_app,
                "asgi_dir": os.path.join(rel, a.asgi_dir) if a.asgi_app and a.asgi_dir else None}
        argv = [os.path.join(rel, ".venv", "bin", "python"), "-c", source("django_steps"), json.dumps(args)]
        p = subprocess.run(argv, cwd=os.path.join(rel, a.django_dir), env=env, capture_output=True, text=True)
        for name, seconds, status in STEP_RE.findall(p.stdout):  # output may precede a marker
            if name in DJANGO_STEPS:
                done(name, float(seconds), status == "ok", p.stdout + "\n" + p.stderr)
        if p.returncode != 0 and not result["failed"]:
            result["failed"], result["output"] = django_steps[0], _tail(p.stdout + "\n" + p.stderr)
    return result
