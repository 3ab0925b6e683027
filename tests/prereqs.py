"""Skip or fail: a missing prerequisite skips an e2e test locally but fails it in CI."""

from __future__ import annotations

import os

import pytest

from ayna_fab.errors import UsageError
from ayna_fab.sandbox import preflight


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_sandbox() -> None:
    try:
        preflight.check()
    except UsageError as exc:
        reason = f"sandbox prerequisites missing: {exc}"
        if in_ci():
            pytest.fail(reason + " (CI=true: end-to-end tests must run, not skip)", pytrace=False)
        pytest.skip(reason)


def interruptible() -> None:
    """preexec_fn for a child a test will Ctrl-C: SIGINT back to its default.

    A shell starts background jobs with SIGINT ignored, and Python then never turns it
    into KeyboardInterrupt; children inherit that. A test that interrupts a process must
    not depend on how its own runner was started.
    """
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
