"""Runs inside a release's venv, in its Django directory: every Django step of a deploy in one
interpreter start instead of one per manage.py command.

    python -c SOURCE_OF_THIS_FILE '{"steps": [...], "asgi_dir": ..., "asgi_app": ...}'

Prints `@@step NAME SECONDS ok|failed` after each step (wire.py's format); stops at the first failure.
"""

import importlib
import json
import os
import sys
import time
import traceback


def step(name, fn):
    t = time.monotonic()
    try:
        fn()
    except BaseException:
        traceback.print_exc()
        print(f"\n@@step {name} {time.monotonic() - t:.3f} failed", flush=True)
        sys.exit(1)
    print(f"\n@@step {name} {time.monotonic() - t:.3f} ok", flush=True)


def main(args):
    sys.path.insert(0, os.getcwd())
    import django
    from django.core.management import call_command

    def check():
        django.setup()
        call_command("check", deploy=True, fail_level="WARNING")
        if args["asgi_app"]:
            sys.path.insert(0, args["asgi_dir"])
            module, _, attr = args["asgi_app"].partition(":")
            getattr(importlib.import_module(module), attr)

    def migrate():
        call_command("migrate", interactive=False, verbosity=1)

    def collectstatic():
        call_command("collectstatic", interactive=False, verbosity=0)

    if "check" not in args["steps"]:
        django.setup()
    known = {"check": check, "migrate": migrate, "collectstatic": collectstatic}
    for name in args["steps"]:
        step(name, known[name])


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
