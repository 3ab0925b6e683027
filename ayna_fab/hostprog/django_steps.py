"""Runs inside a release's venv, in its Django directory: every Django step of a deploy in one
interpreter start instead of one per manage.py command.

    python -c SOURCE_OF_THIS_FILE '{"steps": [...], "django": true, "fail_level": "ERROR",
                                    "asgi_dir": ..., "asgi_app": ..., "gate": FD, "release": DIR}'

With "gate", the program was started before the release's install and backup had finished
(prepare.py): it waits on that inherited file descriptor after check.

Prints `@@start NAME` before and `@@step NAME SECONDS ok|failed` after each step (wire.py's format) and stops at the
first failure, whose output is the application's own message: what manage.py would print
(Django's check report, a CommandError), or the error with only the application's and its
libraries' frames, never this program's. `@@note STEP JSON` lines carry what a person should
see although the step passed (Django's check warnings). The step "pending", alone, prints
`@@pending N`: how many migrations the database lacks (prepare dumps it only when N > 0).
A project without Django (an API and Celery alone) gets the import check of its ASGI app only.

With "release" (the release's directory), check also refuses a release whose uploads would land
inside it (MEDIA_ROOT, or the default storage's location on disk): the next deploy's release would
not have them. The release's `media` link leads to the shared media directory, which is fine.
"""

import importlib
import io
import json
import os
import sys
import time
import traceback

HERE = "<string>"   # this program's frames: it runs as `python -c SOURCE`


class Refusal(Exception):
    """A deploy rule the release breaks: its message is all there is to say (no traceback)."""


def app_message(exc):
    """The error as the application would report it, without this program's frames."""
    if isinstance(exc, Refusal):
        return str(exc)
    if type(exc).__name__ == "SystemCheckError":
        return str(exc)                        # Django's own check report, as `manage.py check` prints it
    if any(c.__name__ == "CommandError" for c in type(exc).__mro__):
        return f"{type(exc).__name__}: {exc}"  # as manage.py prints a CommandError
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    node, seen = te, set()
    while node is not None and id(node) not in seen:  # the whole chain: "raise X from Y" too
        seen.add(id(node))
        node.stack = traceback.StackSummary.from_list([f for f in node.stack if f.filename != HERE])
        node = node.__cause__ or node.__context__
    return "".join(te.format()).replace("Traceback (most recent call last):\n\n", "")


def inside(path, directory):
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def media_fix(release):
    shared = os.path.realpath(os.path.join(release, "media"))
    return (f"Fix: read MEDIA_ROOT from the environment in the settings, for example\n"
            f'    MEDIA_ROOT = os.environ.get("MEDIA_ROOT", <the value it has now>)\n'
            f"and set it in the project's env file (hosts.toml's env_file, then `fab setup --force-env`;\n"
            f"or shared/.env.ENV on the host)\n"
            f"    MEDIA_ROOT={shared}\n"
            f"(the shared media directory, which every release's `media` link leads to)")


def media_problem(places, release):
    """Why uploads would be lost with the next release, or None. places: (what, path) pairs, where
    the settings and the default storage put files. A path is fine when it leads outside the release
    (the release's `media` link leads to the shared media directory every release links)."""
    wrong = [(what, path) for what, path in places if inside(path, release)]
    if not wrong:
        return None
    lines = [f"{what} resolves to {os.path.realpath(path)}, inside the release: files saved there "
             "are gone with the next deploy" for what, path in wrong]
    return "\n".join(lines + [media_fix(release)])


def file_fields():
    """The model fields that keep files (FileField, ImageField): the project takes uploads."""
    from django.apps import apps
    from django.db.models import FileField
    return sorted(f"{m._meta.label}.{f.name}" for m in apps.get_models() for f in m._meta.get_fields()
                  if isinstance(f, FileField))


def media_places():
    """(what, path) of where Django puts uploaded files: MEDIA_ROOT, and the default storage's
    location when it stores on this machine's disk; and a note when MEDIA_ROOT is unset (the
    storage then saves under the working directory) though no model keeps files."""
    from django.conf import settings
    from django.core.files.storage import FileSystemStorage, default_storage
    places = [("MEDIA_ROOT", str(settings.MEDIA_ROOT))] if settings.MEDIA_ROOT else []
    try:
        on_disk = isinstance(default_storage, FileSystemStorage)   # builds the storage
    except Exception as exc:
        if type(exc).__name__ != "InvalidStorageError":
            raise
        return places, None   # STORAGES has no "default": nothing is saved through it anywhere
    if not on_disk:
        return places, None
    location = default_storage.location
    if settings.MEDIA_ROOT or os.path.abspath(location) != os.path.abspath(""):
        return places + [("the default storage's location", location)], None
    fields = file_fields()
    if fields:   # MEDIA_ROOT unset, and models that keep files: they would save into the release
        return [(f"MEDIA_ROOT is unset ({', '.join(fields[:3])} keep files), so the default storage's "
                 "location", location)], None
    return [], ("MEDIA_ROOT is unset: a file saved through the default storage would land in "
                f"{os.path.realpath(location)}, inside the release, and be gone with the next deploy. "
                "No model keeps files; if the project saves some all the same:")


def note(step_name, text):
    print(f"\n@@note {step_name} {json.dumps(text)}", flush=True)


def step(name, fn):
    print(f"\n@@start {name}", flush=True)
    t = time.monotonic()
    try:
        fn()
    except SystemExit as e:
        if e.code not in (None, 0):
            print(f"{name} exited {e.code}", flush=True)
            print(f"\n@@step {name} {time.monotonic() - t:.3f} failed", flush=True)
            sys.exit(1)
    except BaseException as e:
        print(app_message(e).rstrip(), flush=True)
        print(f"\n@@step {name} {time.monotonic() - t:.3f} failed", flush=True)
        sys.exit(1)
    print(f"\n@@step {name} {time.monotonic() - t:.3f} ok", flush=True)


DEBUG_REFUSED = ("DEBUG is True in {module}: debug pages would show the settings and tracebacks to anyone. "
                 "Deploy production settings (DJANGO_SETTINGS_MODULE in the .env, DEBUG read from the "
                 "environment), or set allow_debug = true for this project in hosts.toml if it wants DEBUG")


def refuse_debug(allowed):
    """Settings with DEBUG on never go live unless hosts.toml says the project wants them."""
    from django.conf import settings
    if settings.DEBUG and not allowed:
        print(DEBUG_REFUSED.format(module=os.environ.get("DJANGO_SETTINGS_MODULE", "the settings")), flush=True)
        raise SystemExit(1)


def import_app(spec, directory):
    sys.path.insert(0, directory)
    module, _, attr = spec.partition(":")
    getattr(importlib.import_module(module), attr)


def main(args):
    sys.path.insert(0, os.getcwd())
    steps = args["steps"]
    if not args.get("django", True):
        def check_app():
            if args["asgi_app"]:
                import_app(args["asgi_app"], args["asgi_dir"])
        for name in steps:  # the laptop asks a project without Django for its check alone
            step(name, check_app)
        return

    state = {}

    def setup():
        import django
        from django.core.management import call_command
        django.setup()
        state["call"] = call_command

    def check():
        setup()
        refuse_debug(args.get("allow_debug", False))
        out, err = io.StringIO(), io.StringIO()
        state["call"]("check", deploy=True, fail_level=args.get("fail_level", "ERROR"), stdout=out, stderr=err)
        report = (out.getvalue() + err.getvalue()).strip()
        if report and "no issues" not in report:  # warnings only: errors raised SystemCheckError
            note("check", 'Django\'s warnings, shown without failing the deploy (checks = "strict" fails '
                          "on them):\n" + report)
        if args.get("release"):
            places, unset = media_places()
            problem = media_problem(places, args["release"])
            if problem:
                raise Refusal(problem)
            if unset:
                note("check", unset + "\n" + media_fix(args["release"]))
        if args["asgi_app"]:
            import_app(args["asgi_app"], args["asgi_dir"])

    def migrate():
        state["call"]("migrate", interactive=False, verbosity=1)

    def pending():
        # what `migrate` would apply to the default database, as Django's executor plans it
        from django.db import DEFAULT_DB_ALIAS, connections
        from django.db.migrations.executor import MigrationExecutor
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        print(f"\n@@pending {len(plan)}", flush=True)

    def collectstatic():
        try:
            state["call"]("collectstatic", interactive=False, verbosity=0)
        except Exception as e:  # only django.contrib.staticfiles provides the command
            if type(e).__name__ != "CommandError" or "Unknown command: 'collectstatic'" not in str(e):
                raise
            note("collectstatic", "skipped: django.contrib.staticfiles is not in INSTALLED_APPS")

    if "check" not in steps:  # a fleet's migrate: Django starts as part of the first step
        first = steps[0]
        known_first = {"migrate": migrate, "collectstatic": collectstatic, "pending": pending}[first]
        steps = steps[1:]
        step(first, lambda: (setup(), known_first()))
    known = {"check": check, "migrate": migrate, "collectstatic": collectstatic}
    gate = args.get("gate")
    for name in steps:
        if name != "check" and gate is not None:
            # Started beside the install and the backup: nothing after check runs before both are
            # done (b"1"); otherwise the host reports what failed, and nothing here changed anything.
            with os.fdopen(gate, "rb") as f:
                if f.read(1) != b"1":
                    return
            gate = None
        step(name, known[name])


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
