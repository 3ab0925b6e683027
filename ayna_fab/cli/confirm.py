"""The one way a task asks for a yes: on a terminal only.

Without a terminal (CI, a pipe, cron) nobody can read the question, and an answer piped in
ahead of time cannot have seen what it says yes to; the task stops with a usage error (exit 2)
naming the flag that gives the yes instead.
"""

from __future__ import annotations

import sys

from ayna_fab.errors import UsageError


def yes(question: str, *, flag: str, what: str, host: str | None = None, step: str | None = None) -> bool:
    """True if the person at the terminal answered y or yes to `question` ([y/N] is added)."""
    if not sys.stdin.isatty():
        raise UsageError(f"{what} needs a yes, and there is no terminal to ask on", host=host, step=step,
                         hint=f"pass {flag} to give it")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        print(flush=True)
        answer = ""
    return answer.strip().lower() in ("y", "yes")
