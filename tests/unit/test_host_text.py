"""Host text stays text: whatever a host, an app, a hook, a health body or another deployer's
lock message sends back, no byte of it can drive the user's terminal (set the clipboard, retitle
the window, erase a line, forge a line after a carriage return), on a terminal or off it."""

from __future__ import annotations

import io
import re
import sys

import pytest
from invoke.exceptions import Exit

from ayna_fab.cli import exitcodes as cli, output
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Result

OSC52 = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaAo=\x07"     # set the clipboard
TITLE = "\x1b]0;sudo password please\x1b\\"                      # retitle the terminal
ERASE = "\x1b[2K\x1b[1A"                                         # erase this line, go up one
FORGED = "\r[web1] deploy v9 is live and healthy"                # drawn over what came before
BIDI = "\u202e\u2066fake\u2069\u200f"
C1 = "\x9b31m\x85\x7f\x00\x08"
HOSTILE = f"migrate failed{OSC52}{TITLE}{ERASE}{BIDI}{C1}{FORGED}"
RAW = ["\x1b", "\x07", "\r", "\x9b", "\x85", "\x7f", "\x00", "\x08", "\u202e", "\u2066", "\u2069", "\u200f"]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def streams(monkeypatch, terminal: bool) -> tuple[io.StringIO, io.StringIO]:
    out, err = (Tty(), Tty()) if terminal else (io.StringIO(), io.StringIO())
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "400")
    return out, err


OUR_STYLE = re.compile(r"\x1b\[[0-9;]*m")   # rich's own colours and bold, around our labels only


def assert_defused(text: str) -> None:
    text = OUR_STYLE.sub("", text)   # HOSTILE holds no SGR sequence of its own: any ESC left is the host's
    for byte in RAW:
        assert byte not in text, f"{byte!r} reached the output raw: {text!r}"
    assert "\\x1b]52;c;" in text and "\\x1b[2K" in text and "\\x07" in text   # shown, not acted on
    assert "\\x0d[web1] deploy v9 is live and healthy" in text   # on the same line as the rest


def _live(text: str) -> None:
    live = output.LiveHosts(["web1"])
    live.step("web1", f"check{ERASE}", 1.0, False, note=text)
    live.message(text)
    live.console.print(live.render())


def _lines(text: str) -> None:
    sink = output.Lines(prefix="[web1] ")
    sink.write(text + "\n" + text)
    sink.finish()


PRINTERS = {
    "say": output.say, "warn": output.warn, "error": output.error, "line": output.line, "lines": _lines,
    "check": lambda text: output.check(False, text, [text]),
    "table": lambda text: output.table("status", ["host", "note"], [["web1", text]]),
    "live": _live,
}


# Every printer on both paths, but the live table, which is drawn on terminals only.
CASES = [(name, terminal) for name in sorted(PRINTERS) for terminal in (True, False)
         if terminal or name != "live"]


@pytest.mark.parametrize("name, terminal", CASES,
                         ids=[f"{n}-{'rich' if t else 'plain'}" for n, t in CASES])
def test_host_text_reaches_the_output_with_no_control_byte_raw(monkeypatch, terminal, name):
    out, err = streams(monkeypatch, terminal)
    PRINTERS[name](HOSTILE)
    assert_defused(out.getvalue() + err.getvalue())


@pytest.mark.parametrize("terminal", [True, False], ids=["rich", "plain"])
def test_a_host_answer_that_crashed_is_reported_defused(monkeypatch, terminal):
    """The whole way: a host program's answer, parsed, raised, reported by the task wrapper."""
    _, err = streams(monkeypatch, terminal)
    answer = Result(70, '@@result {"detail": ' + __import__("json").dumps(HOSTILE) + ', "error": "crash"}\n', "")

    @cli.task
    def deploy(c):
        hostcall.parse(answer, host="web1", step="prepare")

    with pytest.raises(Exit):
        deploy.body(None)
    assert_defused(err.getvalue())


def test_json_output_stays_escaped_by_json_itself(monkeypatch):
    out, _ = streams(monkeypatch, False)
    output.emit_json({"note": HOSTILE})
    text = out.getvalue()
    for byte in RAW:
        assert byte not in text
    assert __import__("json").loads(text) == {"note": HOSTILE}   # the data itself is unchanged


def test_newlines_and_tabs_stay_as_they_are():
    assert output.visible("a\tb\nc") == "a\tb\nc"
    assert output.visible("plain [text] ✓ é 日本") == "plain [text] ✓ é 日本"
