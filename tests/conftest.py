"""Shared by every test: the `requires` mark's missing prerequisite skips locally, fails in CI."""

from __future__ import annotations

from tests.prereqs import skip_or_fail


def pytest_runtest_setup(item):
    for mark in item.iter_markers("prerequisite"):
        if not mark.kwargs["ok"]:
            skip_or_fail(mark.kwargs["reason"])
