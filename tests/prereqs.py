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
