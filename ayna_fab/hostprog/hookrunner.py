"""The project's hooks, run on the host: in a release, as the deploy user, with the units' environment.

A hook is an argv (no shell) with a name and a timeout. It runs in the release's directory
with what envfile.for_app gives project code outside its units (the project's .env read as
systemd reads it, the release's venv first on PATH), plus AYNA_* variables saying where it
runs. Hooks run one after another; each ends as a `@@step hook:NAME` line, and its output
comes back in the result for the laptop to print under the host's and the hook's name.

A hook at its timeout is stopped with its whole process group (SIGTERM, then SIGKILL). The
call that runs hooks ignores a dropped connection like every long step (main.LONG), so a
hook is never cut half-way by the link: it runs to its end, under the lock.
"""

import os
import signal
import subprocess
import time

from . import calls, envfile, lock, store, wire

OUTPUT_LINES = 200   # the tail of a hook's output that travels back
GRACE = 5            # seconds between SIGTERM and SIGKILL at a timeout


def _stop(proc):
    for sig, wait in ((signal.SIGTERM, GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_one(hook, cwd, env):
    """Run one hook to its end or its timeout: {name, ok, code, seconds, output, timed_out}."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(hook["command"], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as e:
        return {"name": hook["name"], "ok": False, "code": 127, "seconds": 0.0, "timed_out": False,
                "output": f"cannot run {hook['command'][0]}: {e.strerror}"}
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=hook["timeout"])
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(proc)
        out, _ = proc.communicate()
    text = out.decode("utf-8", "replace").rstrip("\n")
    lines = text.splitlines()
    if len(lines) > OUTPUT_LINES:
        text = "\n".join([f"... ({len(lines) - OUTPUT_LINES} lines before these)"] + lines[-OUTPUT_LINES:])
    if timed_out:
        text += f"\n(stopped after its timeout of {hook['timeout']}s)"
    code = proc.returncode
    return {"name": hook["name"], "ok": code == 0 and not timed_out, "code": code, "timed_out": timed_out,
            "seconds": round(time.monotonic() - started, 3), "output": text.strip("\n")}


def as_root():
    return os.geteuid() == 0


def run_all(hooks, cwd, env, phase, stop_at_failure=True):
    """Each hook in order, reported as a step; a failure stops the rest unless told otherwise."""
    if hooks and as_root():   # the deploy user is never root (config.py); make sure of it here
        raise wire.Refused("as-root", "hooks never run as root: deploy as the deploy user")
    env = dict(env, AYNA_PHASE=phase, AYNA_RELEASE=os.path.basename(cwd))
    reports = []
    for hook in hooks:
        report = run_one(hook, cwd, env)
        wire.step(f"hook:{hook['name']}", report["seconds"], report["ok"])
        reports.append(report)
        if not report["ok"] and stop_at_failure:
            break
    return reports


def phase(a: calls.Hooks):
    """The hooks of one phase, in release vN (number None: the live release, resolved once)."""
    lock.require(a.root, a.token)
    rel = store.release_dir(a.root, a.number) if a.number is not None else store.current_dir(a.root)
    if rel is None or not os.path.isdir(rel):
        return {"hooks": [], "skipped": "no live release to run them in"}
    try:
        env = envfile.for_app(a.env_file, rel)
    except OSError as e:
        raise wire.Refused("env-file", f"cannot read {a.env_file}: {e.strerror}")
    env.update(a.env)
    return {"hooks": run_all(a.hooks, rel, env, a.phase, a.stop_at_failure)}
