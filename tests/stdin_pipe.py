"""A test's stdin as a host call's is: the laptop's channel (a holder's heartbeats), never /dev/null.

pytest runs with /dev/null on stdin, so a child that should get /dev/null and inherits stdin
instead looks right; with a pipe on fd 0 while it starts, the difference shows.
"""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def stdin_a_pipe():
    """fd 0 is a pipe's read end (no writer writes) for the duration."""
    read, write = os.pipe()
    saved = os.dup(0)
    os.dup2(read, 0)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read, write):
            os.close(fd)
