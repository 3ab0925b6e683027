"""Skip or fail: a missing prerequisite skips a test locally but fails it in CI.

Every skip in tests/ goes through `skip_or_fail` (or the `requires` mark, which calls it), so a
CI run (CI=true) never passes by skipping; tests/unit/test_test_hygiene.py holds that line.
"""

from __future__ import annotations

import os

import pytest

from ayna_fab.errors import UsageError
from ayna_fab.sandbox import preflight


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip the running test, or fail it when CI=true: in CI every test must run."""
    if in_ci():
        pytest.fail(reason + " (CI=true: this test must run, not skip)", pytrace=False)
    pytest.skip(reason)


def requires(ok: bool, reason: str) -> pytest.MarkDecorator:
    """A mark for a test (or a module's pytestmark) that needs what `ok` says is here.

    tests/conftest.py turns a missing prerequisite into `skip_or_fail(reason)` at setup.
    """
    return pytest.mark.prerequisite(ok=ok, reason=reason)


def require_sandbox() -> None:
    try:
        preflight.check()
    except UsageError as exc:
        skip_or_fail(f"sandbox prerequisites missing: {exc}")


def interruptible() -> None:
    """preexec_fn for a child a test will Ctrl-C: SIGINT back to its default.

    A shell starts background jobs with SIGINT ignored, and Python then never turns it
    into KeyboardInterrupt; children inherit that. A test that interrupts a process must
    not depend on how its own runner was started.
    """
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
