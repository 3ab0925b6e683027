"""The host program's entry point: one call per run, answered the one way wire.py describes.

    python3 -c BOOTSTRAP CALL ARGS_JSON        (see ayna_fab/remote/hostcall.py)
"""

import glob
import importlib
import json
import os
import signal
import sys
import traceback

from . import calls, envfile, lock, wire

# call -> "module.function"; only the module a call needs is imported (each call is a new process)
HANDLERS = {
    "plan": "plan.plan", "stage": "staging.stage", "prepare": "prepare.prepare",
    "preflight": "prepare.preflight", "hooks": "hookrunner.phase",
    "activate": "switchover.activate", "follow": "switchover.follow_call",
    "deactivate": "switchover.deactivate", "finish": "finish.finish",
    "unlock": "holder.unlock", "status": "readonly.status", "migrations": "readonly.migrations",
    "history": "deploylog.read",
    "manage": "maintenance.manage", "migrate": "maintenance.migrate", "backup": "maintenance.backup", "backups": "maintenance.backups",
    "restore": "maintenance.restore", "envwrite": "envwrite.replace", "exec": "maintenance.exec_in_release",
    "services": "maintenance.services", "facts": "facts.gather", "ports": "ports.listeners",
    "dirs": "setupfiles.dirs", "envfile": "setupfiles.env_file",
    "uvconfig": "setupfiles.uv_config", "authorizekey": "setupfiles.authorize_key",
    "sitepage": "sitepage.switch",
}


# Calls that may run long under the deploy lock: they outlive a dropped connection (SIGHUP
# ignored) and mark the lock as busy while they run, so nobody can release it under them.
# (activate detaches a worker of its own, which marks itself: switchover.py.)
LONG = ("prepare", "preflight", "hooks")


def _outlive_the_connection():
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    except ValueError:  # not a process of its own (a test runs the program in a thread)
        pass


def handler(name):
    module, _, function = HANDLERS[name].partition(".")
    return getattr(importlib.import_module(f"{__package__}.{module}"), function)

EXIT_REFUSED = 3   # the call could not be done as asked; the result says why
EXIT_CRASHED = 70  # a bug: the result carries the traceback


def _learn_secrets(args):
    """Every answer masks the project's env file secrets (envfile.MASK), also when the call itself
    does not read the file (an activation's health bodies, the deploy log, the lock's messages)."""
    if getattr(args, "env_file", None):
        envfile.learn(args.env_file)
    elif getattr(args, "root", None):
        for path in glob.glob(os.path.join(glob.escape(args.root), "shared", ".env.*")):
            envfile.learn(path)


def run(argv):
    os.umask(0o022)   # what a call makes (a release, its venv, records) only its owner writes
    name, payload = argv[0], json.loads(argv[1])
    args = calls.CALLS[name](**payload)
    _learn_secrets(args)
    try:
        if name in LONG:
            _outlive_the_connection()
            with lock.working(getattr(args, "root", ""), name):
                out = handler(name)(args)
        else:
            out = handler(name)(args)
    except wire.Refused as e:
        wire.result({"error": e.code, "detail": e.detail, **e.extra})
        return EXIT_REFUSED
    except Exception:
        wire.result({"error": "crash", "detail": traceback.format_exc()[-3000:]})
        return EXIT_CRASHED
    wire.result(out if out is not None else {})
    if name == "plan" and args.lock is not None:   # the lock is taken: stay as its holder
        importlib.import_module(f"{__package__}.holder").hold_until_done(args.root, args.lock.get("token"))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
