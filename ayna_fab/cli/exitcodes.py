"""Fabric tasks' one entry point for errors: ayna-fab exceptions become exit codes here.

Every task is declared with `ayna_fab.cli.exitcodes.task`, so a failure prints one clear
message (no traceback) and exits with the code docs/ARCHITECTURE.md lists.
"""

from __future__ import annotations

import functools
import sys

from fabric import task as fabric_task
from invoke.exceptions import Exit

from ayna_fab.cli import flags, output
from ayna_fab.errors import AynaFabError


def _report(message: str) -> None:
    """Print an error; whatever goes wrong while printing, the exit code stays the error's own."""
    try:
        output.error(message)
    except Exception:
        try:
            print(f"error: {output.visible(message)}", file=sys.stderr, flush=True)
        except Exception:
            pass


def task(*args, **kwargs):
    """Like fabric's @task, plus the mapping from AynaFabError to its exit code (and short flags
    from the one table, cli/flags.SHORT)."""
    kwargs.setdefault("klass", flags.Task)

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(c, *a, **kw):
            try:
                return fn(c, *a, **kw)
            except AynaFabError as exc:
                _report(str(exc))
                raise Exit(code=exc.exit_code) from None
            except KeyboardInterrupt:
                _report("interrupted")
                raise Exit(code=130) from None

        return fabric_task(**kwargs)(wrapper)

    if len(args) == 1 and callable(args[0]):
        return decorate(args[0])
    return decorate
