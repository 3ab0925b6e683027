"""What people and scripts see: rich on a terminal, plain lines otherwise, JSON on request."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def _console(stream) -> Console:
    return Console(file=stream, highlight=False, soft_wrap=True)


def is_terminal() -> bool:
    return sys.stdout.isatty()


def say(message: str) -> None:
    """A progress line. Plain text when not on a terminal, so logs stay greppable."""
    if is_terminal():
        _console(sys.stdout).print(f"[dim]·[/dim] {message}", markup=True)
    else:
        print(message, flush=True)


def warn(message: str) -> None:
    if is_terminal():
        _console(sys.stdout).print(f"[bold yellow]warning:[/bold yellow] {message}", markup=True)
    else:
        print(f"warning: {message}", flush=True)


def check(ok: bool, title: str, problems: Sequence[str] = ()) -> None:
    """One conformance line, ✓ or ✗, with each problem indented under it."""
    mark = "✓" if ok else "✗"
    if is_terminal():
        colour = "green" if ok else "red"
        _console(sys.stdout).print(f"[{colour}]{mark}[/{colour}] {title}", markup=True)
    else:
        print(f"{mark} {title}", flush=True)
    for problem in problems:
        print(f"    {problem}", flush=True)


def error(message: str) -> None:
    if sys.stderr.isatty():
        _console(sys.stderr).print(f"[bold red]error:[/bold red] {message}", markup=True)
    else:
        print(f"error: {message}", file=sys.stderr, flush=True)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A table on a terminal; tab-separated lines with a header otherwise."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if is_terminal():
        t = Table(title=title)
        for col in columns:
            t.add_column(col)
        for row in cells:
            t.add_row(*row)
        _console(sys.stdout).print(t)
    else:
        print("\t".join(columns))
        for row in cells:
            print("\t".join(row))


def emit_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
