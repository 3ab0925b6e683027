"""Following the journal of several hosts at once: one thread and connection each, until Ctrl-C.

A host whose stream ends before that is named at once, and the whole ends in OperationFailed."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ayna_fab.config.model import Config, Host
from ayna_fab.config.targets import endpoint
from ayna_fab.errors import OperationFailed
from ayna_fab.remote.transport import Command, Remote


def follow(cfg: Config, jobs: list[tuple[Host, Command]], lines: Callable[[str], object],
           warn: Callable[[str], None]) -> None:
    """Every host at once, one thread and connection each, until Ctrl-C closes them all. `lines`
    gives the sink for a host's lines from their prefix; `warn` tells of a stream that ended."""
    sessions: list[Remote] = []
    stopping = threading.Event()
    problems: list[str] = []

    def run(s: Remote, command: Command) -> None:
        try:
            res = s.stream(command, lines(f"[{s.name}] "), pty=True)  # a pty: closing it ends journalctl
            problem = f"[{s.name}] journalctl ended (exit {res.code})"
        except OperationFailed as exc:
            problem = str(exc)
        if not stopping.is_set():
            problems.append(problem)
            warn(problem)

    try:
        for host, _ in jobs:
            sessions.append(Remote.open(endpoint(cfg, host)))
        threads = [threading.Thread(target=run, args=(s, command), daemon=True)
                   for s, (_, command) in zip(sessions, jobs, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        pass  # the way to stop following: not an error
    finally:
        stopping.set()
        for s in sessions:
            s.close()
    if problems:
        raise OperationFailed("; ".join(problems), step="logs")
