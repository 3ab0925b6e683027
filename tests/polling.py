"""Waiting in tests without a wall-clock verdict: poll a condition until it holds or a deadline passes.

The deadline only bounds a wait for something that must happen; the verdict is the condition
itself, never how long it took (tests/unit/test_test_hygiene.py keeps timing out of asserts).
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """The condition's first truthy value, or its last value once timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def process_gone(pid: int) -> bool:
    """No such process, or only its zombie left for a parent to reap."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
