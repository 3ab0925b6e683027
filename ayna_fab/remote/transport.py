"""The one thin layer that runs commands on a host. Everything else only builds them.

Commands arrive as data (`Command`: a shell script and what it is for). Reads
run even in a dry run, since planning needs the host's state; changes are only
printed. Secrets never travel in a command line: they go over SFTP or stdin.
"""

from __future__ import annotations

import codecs
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fabric import Connection
from invoke.exceptions import CommandTimedOut

from ayna_fab.errors import OperationFailed
from ayna_fab.hostprog.wire import DONE, HEARTBEAT, HEARTBEAT_EVERY, MISSING, MISSING_EXIT
from ayna_fab.remote import ssh


@dataclass(frozen=True)
class Command:
    """A shell script for one round trip, and the step it belongs to (named in errors)."""

    script: str
    step: str
    changes: bool = True          # False: a read, safe to run in a dry run
    hint: str | None = None       # what to do when it fails
    display: str | None = None    # a short form for dry-run listings (the script may be long)
    call: object | None = None    # a host call (ayna_fab.hostprog.calls) as data, when this is one
    held: bool = False            # the command stays on after its answer, until end_holder (a lock's holder)
    cached: str | None = None     # a short form that runs a program the host keeps (hostcall.py)


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
        self.seconds = 0.0                    # in commands, as timed here (a host's steps may overlap)
        self.interrupted: str | None = None   # a Ctrl-C or SIGTERM seen while a command ran
        self._held = None                     # the channel of a held call (the lock's holder)
        self._heartbeat: Heartbeat | None = None   # what tells that holder the laptop is still there
        self._misses = 0                      # calls whose cached program the host did not have

    @classmethod
    def open(cls, ep: ssh.Endpoint, **kw) -> "Remote":
        return cls(ep.name, ssh.connect(ep), **kw)

    def close(self) -> None:
        self.end_holder()
        if self.conn is not None:
            self.conn.close()

    def __enter__(self) -> "Remote":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, cmd: Command, *, check: bool = True, timeout: float | None = 600,
            stdin: str | bytes | None = None, on_line: Callable[[str], None] | None = None) -> Result:
        """Run cmd (or, in a dry run, print it if it changes anything). on_line is handed each
        line of its stdout as it arrives (a host call's steps as they end); the Result has them all."""
        if self.dry_run and cmd.changes:
            self.echo(f"[{self.name}] {cmd.step}:\n" + _indent(cmd.display or cmd.script))
            return Result(0, "", "")
        started = time.monotonic()
        # The short form first while it works on this host; a miss ran nothing, so the whole
        # program follows (and stays in the host's cache). Two misses: the cache does not work here.
        script = cmd.cached if cmd.cached and self._misses < 2 else cmd.script
        while True:
            self.round_trips += 1
            sink = LineSink(on_line)
            try:
                with _interrupts_kept() as interrupted:
                    if cmd.held:
                        r = self._run_held(script, timeout, sink)
                    elif stdin is not None:
                        r = self._run_with_input(script, stdin, timeout, sink)
                    else:   # stdout to the sink as it comes (and kept in r.stdout); stderr kept only
                        r = self.conn.run(script, hide="stderr", out_stream=sink, warn=True, timeout=timeout,
                                          in_stream=False)
            except Exception as exc:  # a dropped link or a timeout: name the host and step
                raise OperationFailed(in_transit(exc, script, timeout), host=self.name,
                                      step=cmd.step, hint=cmd.hint) from exc
            finally:
                sink.finish()
            result = Result(r.code, r.stdout, r.stderr, time.monotonic() - started) if isinstance(r, Result) \
                else Result(r.exited, r.stdout, r.stderr, time.monotonic() - started)
            if interrupted:  # the command finished and its answer counts; the operation stops at its next step
                self.interrupted = "Ctrl-C" if interrupted[0] == "SIGINT" else interrupted[0]
            if script is cmd.script or not (result.code == MISSING_EXIT and MISSING in result.stderr):
                break
            self._misses += 1
            script = cmd.script
        self.seconds += result.seconds
        if check and not result.ok:
            tail = "\n".join((result.stderr.strip() or result.stdout.strip()).split("\n")[-20:])
            raise OperationFailed(f"exited {result.code}:\n{_indent(tail)}", host=self.name,
                                  step=cmd.step, hint=cmd.hint)
        return result

    def _run_with_input(self, script: str, text: str | bytes, timeout: float | None, sink: LineSink) -> Result:
        """Run script with text (or bytes, as they are) on its stdin, written at once on the
        channel: invoke's in_stream sends one byte every few milliseconds (a 1 kB secret took 8 s)."""
        self.conn.open()
        chan = self.conn.client.get_transport().open_session()
        try:
            chan.settimeout(timeout)
            chan.exec_command(script)
            try:
                chan.sendall(text if isinstance(text, bytes) else text.encode())
                chan.shutdown_write()
            except OSError:
                if not chan.exit_status_ready():
                    raise
                # the program ended before reading it all (a cached program missing, a refusal): its answer follows
            out, err = bytearray(), bytearray()
            while True:
                if chan.recv_ready():
                    data = chan.recv(65536)
                    out += data
                    sink.feed(data)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                else:
                    chan.status_event.wait(0.05)
            while chan.recv_ready():
                data = chan.recv(65536)
                out += data
                sink.feed(data)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            return Result(chan.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace"))
        finally:
            chan.close()

    def _run_held(self, script: str, timeout: float | None, sink: LineSink) -> Result:
        """Run script until its `@@result` line, and leave it running on its channel: the lock's
        holder, which ends when end_holder says `done` or when this connection dies (hostprog/holder.py)."""
        self.conn.open()
        chan = self.conn.client.get_transport().open_session()
        chan.settimeout(timeout)
        chan.exec_command(script)
        out = bytearray()
        while b"\n@@result " not in b"\n" + out or not out.endswith(b"\n"):
            data = chan.recv(65536)
            if not data:   # it ended (a refusal, a crash): an ordinary answer
                err = chan.recv_stderr(65536) if chan.recv_stderr_ready() else b""
                code = chan.recv_exit_status()
                chan.close()
                return Result(code, out.decode(errors="replace"), err.decode(errors="replace"))
            out += data
            sink.feed(data)
        chan.settimeout(None)
        self._held = chan
        self._heartbeat = Heartbeat(chan)
        return Result(0, out.decode(errors="replace"), "")

    def end_holder(self, word: bytes = DONE) -> None:
        """End the holder: say the operation ended its own way (hostprog/wire.DONE), and close."""
        held, self._held = self._held, None
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        if held is None:
            return
        try:
            held.sendall(word)
            held.shutdown_write()
            held.status_event.wait(5)   # the host has read it: its holder ends quietly
            held.close()
        except Exception:
            pass

    def stream(self, cmd: Command, sink=None, *, pty: bool = False, stdin: bool = False) -> Result:
        """Run cmd, passing its output on as it comes: to sink (an output.Lines) line by line, or
        with sink=None straight to this terminal. stdin=True forwards this process's stdin (a
        shell, a manage.py command that asks). A dry run prints a changing command instead."""
        if self.dry_run and cmd.changes:
            self.echo(f"[{self.name}] {cmd.step}:\n" + _indent(cmd.display or cmd.script))
            return Result(0, "", "")
        self.round_trips += 1
        streams = {"out_stream": sink, "err_stream": sink} if sink is not None else {}
        started = time.monotonic()
        try:
            r = self.conn.run(cmd.script, hide=False, warn=True, pty=pty, echo=False,
                              in_stream=None if stdin else False, **streams)
        except Exception as exc:
            raise OperationFailed(in_transit(exc, cmd.script, None), host=self.name, step=cmd.step,
                                  hint=cmd.hint) from exc
        finally:
            if sink is not None:
                sink.finish()
        return Result(r.exited, r.stdout, r.stderr, time.monotonic() - started)

    def put_bytes(self, data: bytes, path: str, *, step: str) -> None:
        """Upload binary data over SFTP (never through invoke's stdin forwarding, which corrupts
        bytes; run's stdin writes them on the channel as they are)."""
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


class LineSink:
    """Where a command's stdout goes as it arrives (a file-like stream for invoke, or raw bytes fed
    from a channel): each complete line is handed to on_line. Progress is for people: a display
    that fails never fails the command."""

    def __init__(self, on_line: Callable[[str], None] | None) -> None:
        self.on_line = on_line
        self.buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> None:
        self.write(self._decoder.decode(data))

    def write(self, text: str) -> None:
        if self.on_line is None:
            return
        self.buffer += text
        *done, self.buffer = self.buffer.split("\n")
        for one in done:
            self._hand(one.rstrip("\r"))

    def flush(self) -> None:
        """invoke flushes after every chunk; a line is whole only at its newline (or the end)."""

    def finish(self) -> None:
        if self.buffer:
            self._hand(self.buffer.rstrip("\r"))
            self.buffer = ""

    def _hand(self, line: str) -> None:
        try:
            self.on_line(line)
        except Exception:
            pass


class Heartbeat:
    """Writes wire.HEARTBEAT on a held call's channel every `every` seconds, in a thread of its
    own, until stopped: the holder takes a minute of silence as the laptop gone (a closed lid, a
    dropped NAT entry send no reset), so the beat must go on while the operation waits on a long
    call. A channel that fails ends the beat: the holder has ended or will see the silence."""

    def __init__(self, chan, every: float = HEARTBEAT_EVERY) -> None:
        self._chan = chan
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="holder-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stopped.wait(self._every):
            try:
                self._chan.sendall(HEARTBEAT)
            except Exception:
                return

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self._every)   # a send blocked on a dead link is left to die with us


@contextmanager
def _interrupts_kept() -> Iterator[list]:
    """Remember a Ctrl-C (or SIGTERM) that arrives while a remote command runs.

    invoke catches KeyboardInterrupt inside a running command, forwards it to the remote
    stdin and keeps waiting, so the interrupt would be lost and a deploy would carry on.
    The list yielded is non-empty once a signal was seen (main thread only; elsewhere a
    no-op: a fleet's main thread sees the signal itself).
    """
    seen: list = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # putting a host back: interrupts stay ignored
        yield seen
        return

    def note(signum, frame):
        seen.append(signal.Signals(signum).name)
        raise KeyboardInterrupt  # what invoke expects; it keeps waiting for the command

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield seen
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def in_transit(exc: BaseException, script: str, timeout: float | None) -> str:
    """A failure in transit in a few words. invoke's and paramiko's own messages quote the whole
    command line (a host call's is the host program and its arguments): never shown."""
    if isinstance(exc, (CommandTimedOut, TimeoutError)):
        return f"timed out after {timeout:g}s" if timeout else "timed out"
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if not first or len(first) > 160 or script[:20] in first or "python3" in first:
        return f"lost the connection ({type(exc).__name__})"
    return f"lost the connection: {first}"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").split("\n"))   # a CR is no line end


def open_all(endpoints: list[ssh.Endpoint], *, dry_run: bool = False,
             echo: Callable[[str], None] | None = None, max_parallel: int) -> dict[str, Remote]:
    """One connection per host, at most max_parallel opening at once. If any host is unreachable, none is used:
    an operation over several hosts starts only when every host answers."""
    from concurrent.futures import ThreadPoolExecutor

    def one(ep: ssh.Endpoint) -> Remote:
        return Remote.open(ep, dry_run=dry_run, echo=echo)

    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(endpoints)))) as pool:
        futures = [pool.submit(one, ep) for ep in endpoints]
    remotes, errors = {}, []
    for f in futures:
        if f.exception():
            errors.append(f.exception())
        else:
            remotes[f.result().name] = f.result()
    if errors:
        for r in remotes.values():
            r.close()
        first = errors[0]
        if len(endpoints) == 1:
            raise first
        cls = first.__class__ if isinstance(first, OperationFailed) or hasattr(first, "exit_code") else OperationFailed
        raise cls(f"{first}\nno host was changed: every host must be reachable first", step="connect",
                  hint=getattr(first, "hint", None))
    return remotes
