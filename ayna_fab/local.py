"""Run commands on the controller (this machine): the one thin layer for local I/O."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from ayna_fab.errors import OperationFailed
from ayna_fab.hostprog import proctree

GRACE = 5   # seconds a project's command has between SIGTERM and SIGKILL at its timeout


def run(argv: Sequence[str], *, step: str, check: bool = True, timeout: float | None = None,
        hint: str | None = None, cwd: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv, capture its output, and on failure raise naming the step and stderr's tail."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=cwd, env=None if env is None else dict(env),
                              errors="replace")
    except FileNotFoundError as exc:
        raise OperationFailed(f"{argv[0]} is not installed", step=step, hint=hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise OperationFailed(f"`{' '.join(argv)}` did not finish within {timeout:.0f}s",
                              step=step, hint=hint) from exc
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise OperationFailed(f"`{' '.join(argv)}` exited {proc.returncode}:\n{tail}", step=step, hint=hint)
    return proc


def run_project(argv: Sequence[str], *, step: str, timeout: float, hint: str | None = None,
                cwd: str | os.PathLike | None = None,
                env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a project's command (a build step, a laptop hook) unchecked: its output (stdout and
    stderr as they came) in stdout. At its timeout, or at a Ctrl-C, everything it started ends,
    what called setsid included (hostprog/proctree.py); nothing waits on its output."""
    try:
        ended = proctree.run(argv, cwd=cwd, env=None if env is None else dict(env), timeout=timeout, grace=GRACE)
    except FileNotFoundError as exc:
        raise OperationFailed(f"{argv[0]} is not installed", step=step, hint=hint) from exc
    if ended.timed_out:
        raise OperationFailed(f"`{' '.join(argv)}` did not finish within {timeout:.0f}s", step=step, hint=hint)
    return subprocess.CompletedProcess(list(argv), ended.code, ended.output, "")
