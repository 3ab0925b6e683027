"""What people see on a terminal: host text is printed as it is, never read as rich markup,
and printing never changes an exit code."""

from __future__ import annotations

import io
import re
import sys

import pytest
from invoke.exceptions import Exit

from ayna_fab.cli import exitcodes as cli, output
from ayna_fab.errors import NeedsAttention, OperationFailed

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# What a host may send back: its own name in brackets, a closing tag that opens nothing,
# rich styles, emoji codes and a link tag.
HOSTILE = "[sandbox1] web: [/x] [bold]loud[/bold] :smile: [link=http://evil]here[/link] [red"


class Tty(io.StringIO):
    """A stream that says it is a terminal, so output.py and rich take their terminal paths."""

    def isatty(self) -> bool:
        return True


def tty(monkeypatch) -> tuple[Tty, Tty]:
    """Called in the test body: pytest's own capture replaces sys.stdout after fixtures run."""
    out, err = Tty(), Tty()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "400")
    return out, err


def plain(stream: io.StringIO) -> str:
    return ANSI.sub("", stream.getvalue())


def test_the_terminal_fixture_really_is_a_terminal(monkeypatch):
    out, _ = tty(monkeypatch)
    assert output.is_terminal() and output._console(sys.stdout).is_terminal
    output.say("x")
    assert "\x1b[" in out.getvalue()  # rich styled it: the terminal path ran


@pytest.mark.parametrize("printer", [output.say, output.warn])
def test_progress_and_warnings_print_host_text_as_it_is(monkeypatch, printer):
    out, _ = tty(monkeypatch)
    printer(HOSTILE)
    assert HOSTILE in plain(out)


def test_an_error_with_a_stray_closing_tag_is_printed_whole(monkeypatch):
    _, err = tty(monkeypatch)
    output.error(HOSTILE)
    assert plain(err).startswith("error: ") and HOSTILE in plain(err)


def test_check_lines_keep_the_host_prefix(monkeypatch):
    out, _ = tty(monkeypatch)
    output.check(False, "[sandbox1] uavcrew: /opt/ayna/uavcrew/shared/.env.production", ["[/x] is missing"])
    text = plain(out)
    assert "✗ [sandbox1] uavcrew: /opt/ayna/uavcrew/shared/.env.production" in text
    assert "    [/x] is missing" in text


def test_table_cells_are_not_markup(monkeypatch):
    out, _ = tty(monkeypatch)
    output.table("services", ["host", "unit", "state"], [["[sandbox1]", "[/x]", "[bold]up[/bold] :smile:"]])
    text = plain(out)
    for cell in ("[sandbox1]", "[/x]", "[bold]up[/bold] :smile:"):
        assert cell in text


def test_a_fleet_table_shows_host_notes_as_they_are(monkeypatch):
    out, _ = tty(monkeypatch)
    from rich.console import Console
    console = Console(file=out, force_terminal=True, width=300)
    live = output.LiveHosts(["sandbox1"], console=console)
    live.step("sandbox1", "[/x]", 1.0, False, note="[sandbox1] [/y]")
    console.print(live.render())
    live.message(HOSTILE)
    text = plain(out)
    assert "[/x] FAILED" in text and "[sandbox1] [/y]" in text and HOSTILE in text


def test_every_line_of_a_host_keeps_its_prefix_on_a_terminal(monkeypatch):
    out, _ = tty(monkeypatch)
    sink = output.Lines(output.say, prefix="[sandbox1] ")
    sink.write("[sandbox2] pretend\n[/x]\n[bold]b[/bold]\n@@step check 0.1 ok\n")
    sink.finish()
    lines = plain(out).splitlines()
    assert lines == ["· [sandbox1] [sandbox2] pretend", "· [sandbox1] [/x]", "· [sandbox1] [bold]b[/bold]"]


@pytest.mark.parametrize("exc,code", [(NeedsAttention("[/x] restore failed", host="h", step="s"), 3),
                                      (OperationFailed("[/x]", host="h"), 1)])
def test_a_task_keeps_its_exit_code_whatever_the_message_holds(monkeypatch, exc, code):
    _, err = tty(monkeypatch)

    @cli.task
    def broken(c):
        raise exc

    with pytest.raises(Exit) as got:
        broken.body(None)
    assert got.value.code == code
    assert "[/x]" in plain(err)


def test_a_task_keeps_its_exit_code_when_printing_itself_fails(monkeypatch):
    _, err = tty(monkeypatch)

    def fails(message):
        raise RuntimeError("the printer broke")

    monkeypatch.setattr(output, "error", fails)

    @cli.task
    def broken(c):
        raise NeedsAttention("look at the host", host="h", step="restore")

    with pytest.raises(Exit) as got:
        broken.body(None)
    assert got.value.code == 3
    assert "error: [h] restore: look at the host" in err.getvalue()
