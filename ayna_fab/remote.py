"""The one thin layer that runs commands on a host. Everything else only builds them.

Commands arrive as data (`Command`: a shell script and what it is for). Reads
run even in a dry run, since planning needs the host's state; changes are only
printed. Secrets never travel in a command line: they go over SFTP or stdin.
"""

from __future__ import annotations

import io
import posixpath
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fabric import Connection

from ayna_fab import ssh
from ayna_fab.errors import OperationFailed


@dataclass(frozen=True)
class Command:
    """A shell script for one round trip, and the step it belongs to (named in errors)."""

    script: str
    step: str
    changes: bool = True          # False: a read, safe to run in a dry run
    hint: str | None = None       # what to do when it fails
    display: str | None = None    # a short form for dry-run listings (the script may be long)


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.code == 0


class Remote:
    """One host's connection, and the record of what ran on it."""

    def __init__(self, name: str, conn: Connection | None, *, dry_run: bool = False,
                 echo: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.conn = conn
        self.dry_run = dry_run
        self.echo = echo or (lambda line: None)
        self.round_trips = 0

    @classmethod
    def open(cls, ep: ssh.Endpoint, **kw) -> "Remote":
        return cls(ep.name, ssh.connect(ep), **kw)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def __enter__(self) -> "Remote":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, cmd: Command, *, check: bool = True, timeout: float | None = 600,
            stdin: str | None = None) -> Result:
        """Run cmd (or, in a dry run, print it if it changes anything)."""
        if self.dry_run and cmd.changes:
            self.echo(f"[{self.name}] {cmd.step}:\n" + _indent(cmd.display or cmd.script))
            return Result(0, "", "")
        started = time.monotonic()
        self.round_trips += 1
        try:
            with _interrupts_kept() as interrupted:
                r = self.conn.run(cmd.script, hide=True, warn=True, timeout=timeout,
                                  in_stream=io.StringIO(stdin) if stdin is not None else False)
        except Exception as exc:  # a dropped link or a timeout: name the host and step
            raise OperationFailed(f"lost the connection or timed out: {exc}", host=self.name,
                                  step=cmd.step, hint=cmd.hint) from exc
        if interrupted:  # Ctrl-C during the command: it finished; now stop, and put the host back
            raise KeyboardInterrupt
        result = Result(r.exited, r.stdout, r.stderr, time.monotonic() - started)
        if check and not result.ok:
            tail = "\n".join((result.stderr.strip() or result.stdout.strip()).splitlines()[-20:])
            raise OperationFailed(f"exited {result.code}:\n{_indent(tail)}", host=self.name,
                                  step=cmd.step, hint=cmd.hint)
        return result

    def put_text(self, text: str, path: str, *, mode: int, owner: str | None = None, step: str) -> None:
        """Write a file atomically over SFTP (temp name, then rename), so no secret hits argv."""
        if self.dry_run:
            self.echo(f"[{self.name}] {step}: write {path} (mode {mode:o}"
                      + (f", owner {owner}" if owner else "") + ")")
            return
        tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.ayna-tmp")
        self.round_trips += 1
        try:
            sftp = self.conn.sftp()
            with sftp.open(tmp, "w") as f:
                f.chmod(mode)
                f.write(text.encode())
        except OSError as exc:
            raise OperationFailed(f"cannot write {path}: {exc}", host=self.name, step=step) from exc
        chown = f"chown {shlex.quote(owner)} {shlex.quote(tmp)} && " if owner else ""
        self.run(Command(f"{chown}mv -f {shlex.quote(tmp)} {shlex.quote(path)}", step))

    def put_bytes(self, data: bytes, path: str, *, step: str) -> None:
        """Upload binary data over SFTP (never through a command's stdin, which corrupts bytes)."""
        if self.dry_run:
            self.echo(f"[{self.name}] {step}: upload {len(data)} bytes to {path}")
            return
        self.round_trips += 1
        try:
            with self.conn.sftp().open(path, "wb") as f:
                f.set_pipelined(True)
                f.write(data)
        except OSError as exc:
            raise OperationFailed(f"cannot upload {path}: {exc}", host=self.name, step=step) from exc

    def read_text(self, path: str, *, step: str) -> str | None:
        """A remote file's text, or None if it does not exist (reads run in dry runs too)."""
        self.round_trips += 1
        try:
            with self.conn.sftp().open(path, "r") as f:
                return f.read().decode()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OperationFailed(f"cannot read {path}: {exc}", host=self.name, step=step) from exc


@contextmanager
def _interrupts_kept() -> Iterator[list]:
    """Remember a Ctrl-C that arrives while a remote command runs.

    invoke catches KeyboardInterrupt inside a running command, forwards it to the remote
    stdin and keeps waiting, so the interrupt would be lost and a deploy would carry on.
    The list yielded is non-empty once SIGINT was seen (main thread only; elsewhere a
    no-op: a fleet's main thread sees Ctrl-C itself).
    """
    seen: list = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:  # putting a host back: interrupts stay ignored
        yield seen
        return

    def note(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt  # what invoke expects; it keeps waiting for the command

    signal.signal(signal.SIGINT, note)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
