"""`--json` documents for scripts and CI: one document per run, on success and on failure alike.

A task with --json prints its document with `output.emit_json`; `failures` makes a failure a
document too ({"ok": false, "error", "hint", "host", "step", "exit_code"} with what the task
already knew), and the error still exits with its own code (its text also goes to stderr).
"""

from __future__ import annotations

from contextlib import contextmanager

from ayna_fab.cli import output
from ayna_fab.errors import AynaFabError


@contextmanager
def failures(enabled: bool, **known):
    try:
        yield
    except AynaFabError as exc:
        if enabled:
            output.emit_json({**known, "ok": False, "error": exc.message, "hint": exc.hint, "host": exc.host,
                              "step": exc.step, "exit_code": exc.exit_code})
        raise
