"""Nothing prompts without a terminal: a yes comes from the person at one, or from the task's flag."""

from __future__ import annotations

import io

import pytest

from ayna_fab.cli import confirm
from ayna_fab.errors import UsageError


class Stdin(io.StringIO):
    def __init__(self, text: str, tty: bool) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_without_a_terminal_nothing_is_asked_and_the_flag_is_named(monkeypatch):
    asked = []
    monkeypatch.setattr("sys.stdin", Stdin("y\n", tty=False))   # a yes piped in is not a yes
    monkeypatch.setattr("builtins.input", lambda q: asked.append(q) or "y")
    with pytest.raises(UsageError) as err:
        confirm.yes("Really?", flag="--yes", what="replacing a database", host="h", step="restore")
    assert err.value.exit_code == 2 and "--yes" in str(err.value) and "no terminal" in str(err.value)
    assert asked == []


@pytest.mark.parametrize("answer,expected", [("y", True), ("YES ", True), ("n", False), ("", False)])
def test_on_a_terminal_the_answer_decides(monkeypatch, answer, expected):
    monkeypatch.setattr("sys.stdin", Stdin("", tty=True))
    monkeypatch.setattr("builtins.input", lambda q: answer)
    assert confirm.yes("Really?", flag="--yes", what="x") is expected
