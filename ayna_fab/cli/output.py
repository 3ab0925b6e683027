"""What people and scripts see: rich on a terminal, plain lines otherwise, JSON on request.

rich is imported only where a terminal needs it: importing it costs about a fifth of a
second of every `fab` start-up, and deploys from scripts and CI never draw with it.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text


# What a terminal acts on instead of showing: C0 controls but newline and tab (ESC, BEL, CR,
# backspace...), DEL, C1 controls (a one-byte CSI), and the Unicode controls that reorder or hide
# text (bidi overrides and isolates, marks, zero-width and line separators, BOM).
_FORMAT = "\u061c\u200b\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
_VISIBLE = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7f, 0xa0)) if chr(c) not in "\n\t"}
_VISIBLE.update({ord(c): f"\\u{ord(c):04x}" for c in _FORMAT})


def visible(text: object) -> str:
    """Host text (a host's, an app's, a hook's, a health body, a lock message) made safe to print:
    every control a terminal would act on is shown as an escape (ESC as \\x1b), so it can neither
    set the clipboard, retitle or erase, nor draw a forged line over ours. Newlines and tabs stay.
    Every printer here calls it; JSON output is escaped by json.dumps itself."""
    return str(text).translate(_VISIBLE)


def _console(stream) -> Console:
    from rich.console import Console
    return Console(file=stream, highlight=False, soft_wrap=True, emoji=False)


def _styled(label: str, style: str, message: str) -> Text:
    """Our own label in colour, then the message as plain text: host text (which may hold
    `[sandbox1]`, `[/x]` or `:smile:`) is never read as markup."""
    from rich.text import Text
    return Text.assemble((label, style), " ", visible(message))


def is_terminal() -> bool:
    return sys.stdout.isatty()


def say(message: str) -> None:
    """A progress line. Plain text when not on a terminal, so logs stay greppable."""
    if is_terminal():
        _console(sys.stdout).print(_styled("·", "dim", message))
    else:
        print(visible(message), flush=True)


def warn(message: str) -> None:
    if is_terminal():
        _console(sys.stdout).print(_styled("warning:", "bold yellow", message))
    else:
        print(f"warning: {visible(message)}", flush=True)


def check(ok: bool, title: str, problems: Sequence[str] = ()) -> None:
    """One conformance line, ✓ or ✗, with each problem indented under it."""
    mark = "✓" if ok else "✗"
    if is_terminal():
        _console(sys.stdout).print(_styled(mark, "green" if ok else "red", title))
    else:
        print(f"{mark} {visible(title)}", flush=True)
    for problem in problems:
        print(f"    {visible(problem)}", flush=True)


def error(message: str) -> None:
    if sys.stderr.isatty():
        _console(sys.stderr).print(_styled("error:", "bold red", message))
    else:
        print(f"error: {visible(message)}", file=sys.stderr, flush=True)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A table on a terminal; tab-separated lines with a header otherwise."""
    cells = [["" if v is None else visible(v) for v in row] for row in rows]
    if is_terminal():
        from rich.table import Table
        from rich.text import Text
        t = Table(title=title)
        for col in columns:
            t.add_column(col)
        for row in cells:
            t.add_row(*(Text(cell) for cell in row))  # cells hold host text: never markup
        _console(sys.stdout).print(t)
    else:
        print("\t".join(columns))
        for row in cells:
            print("\t".join(row))


def emit_json(data: object, stream=None) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str), file=stream or sys.stdout, flush=True)


@contextlib.contextmanager
def people_to_stderr() -> Iterator[object]:
    """While a task prints JSON: every line for people goes to stderr; yields the real stdout, where
    the one JSON document goes."""
    real = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        yield real


_PRINT_LOCK = threading.Lock()


def line(text: str) -> None:
    """One line of a host's output (its controls made visible): never read as markup, never split
    between threads."""
    with _PRINT_LOCK:
        print(visible(text), flush=True)


class Lines:
    """A file-like sink that hands complete lines to `emit` with a prefix; the host protocol's
    own lines (@@step, @@result) go to on_mark instead of to people."""

    def __init__(self, emit=line, prefix: str = "", on_mark=None) -> None:
        self.emit, self.prefix, self.on_mark = emit, prefix, on_mark
        self.buffer = ""
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            self.buffer += text
            *done, self.buffer = self.buffer.split("\n")
            for one in done:
                self._line(one.rstrip("\r"))

    def _line(self, text: str) -> None:
        from ayna_fab.hostprog.wire import RESULT, STEP
        if text.startswith((STEP, RESULT)):
            if self.on_mark:
                self.on_mark(text)
            return
        self.emit(self.prefix + text)

    def flush(self) -> None:
        """invoke flushes after every chunk; a line is only whole at its newline (or the end)."""

    def finish(self) -> None:
        with self.lock:
            if self.buffer:
                self._line(self.buffer.rstrip("\r"))
                self.buffer = ""


class LiveHosts:
    """One row per host, redrawn as its steps finish: a fleet's progress on a terminal.

    Steps are reported from worker threads, hence the lock. Messages that are not steps
    print above the table.
    """

    def __init__(self, hosts: Sequence[str], console: Console | None = None) -> None:
        self.console = console or _console(sys.stdout)
        self.rows = {h: {"step": "waiting", "seconds": 0.0, "total": 0.0, "ok": True, "note": ""} for h in hosts}
        self.lock = threading.Lock()
        self.live: Live | None = None

    def __enter__(self) -> "LiveHosts":
        from rich.live import Live
        self.live = Live(self.render(), console=self.console, refresh_per_second=8, transient=False)
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        with self.lock:
            self.live.update(self.render())
            self.live.__exit__(*exc)

    def step(self, host: str, step: str, seconds: float, ok: bool, note: str = "") -> None:
        with self.lock:
            row = self.rows[host]
            row.update(step=visible(step), seconds=seconds, ok=ok, note=visible(note), total=row["total"] + seconds)
            if self.live:
                self.live.update(self.render())

    def message(self, text: str) -> None:
        from rich.text import Text
        with self.lock:
            self.console.print(Text(visible(text)), highlight=False)

    def render(self) -> Table:
        from rich.table import Table
        from rich.text import Text
        t = Table(title="fleet")
        for col in ("host", "last step", "took", "total", "note"):
            t.add_column(col)
        for host, r in self.rows.items():
            step = Text(r["step"]) if r["ok"] else Text(f"{r['step']} FAILED", style="red")
            t.add_row(Text(host), step, f"{r['seconds']:.2f}s", f"{r['total']:.1f}s", Text(r["note"]))
        return t
