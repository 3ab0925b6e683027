"""The project's hooks, run on the host: in a release, as the deploy user, with the units' environment.

A hook is an argv (no shell) with a name and a timeout. It runs in the release's directory
with what envfile.for_app gives project code outside its units (the project's .env read as
systemd reads it, the release's venv first on PATH), plus AYNA_* variables saying where it
runs. Hooks run one after another; each ends as a `@@step hook:NAME` line, and its output
comes back in the result for the laptop to print under the host's and the hook's name.

A hook at its timeout is ended with everything it started, its process group and any
descendant that called setsid or lost its parent (SIGTERM, then SIGKILL: proctree.py); its
output goes to a file, so a descendant that outlives it never holds the step. The
call that runs hooks ignores a dropped connection like every long step (main.LONG), so a
hook is never cut half-way by the link: it runs to its end, under the lock.
"""

import os

from . import calls, envfile, lock, proctree, store, wire

OUTPUT_LINES = 200   # the tail of a hook's output that travels back
GRACE = 5            # seconds between SIGTERM and SIGKILL at a timeout


def run_one(hook, cwd, env):
    """Run one hook to its end or its timeout: {name, ok, code, seconds, output, timed_out}."""
    try:
        ended = proctree.run(hook["command"], cwd=cwd, env=env, timeout=hook["timeout"], grace=GRACE)
    except OSError as e:
        return {"name": hook["name"], "ok": False, "code": 127, "seconds": 0.0, "timed_out": False,
                "output": f"cannot run {hook['command'][0]}: {e.strerror}"}
    text = ended.output.rstrip("\n")
    lines = text.splitlines()
    if len(lines) > OUTPUT_LINES:
        text = "\n".join([f"... ({len(lines) - OUTPUT_LINES} lines before these)"] + lines[-OUTPUT_LINES:])
    if ended.timed_out:
        text += f"\n(stopped after its timeout of {hook['timeout']}s)"
    return {"name": hook["name"], "ok": ended.code == 0 and not ended.timed_out, "code": ended.code,
            "timed_out": ended.timed_out, "seconds": round(ended.seconds, 3), "output": text.strip("\n")}


def as_root():
    return os.geteuid() == 0


def run_all(hooks, cwd, env, phase, stop_at_failure=True):
    """Each hook in order, reported as a step; a failure stops the rest unless told otherwise."""
    if hooks and as_root():   # the deploy user is never root (config.py); make sure of it here
        raise wire.Refused("as-root", "hooks never run as root: deploy as the deploy user")
    env = dict(env, AYNA_PHASE=phase, AYNA_RELEASE=os.path.basename(cwd))
    reports = []
    for hook in hooks:
        wire.start(f"hook:{hook['name']}")
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
