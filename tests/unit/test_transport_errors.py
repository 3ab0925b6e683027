"""A call that fails in transit (a timeout, a dropped link) names the host and the step, never the
transport's command line: that line carries the whole host program and the call's arguments."""

from __future__ import annotations

import pytest
from invoke.exceptions import CommandTimedOut
from invoke.runners import Result as InvokeResult

from ayna_fab.commands import hostcalls as cmd
from ayna_fab.errors import OperationFailed
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Remote


class TimesOut:
    """A connection whose command runs past its timeout, as invoke reports it."""

    def __init__(self, exc_for):
        self.exc_for = exc_for

    def run(self, script, **kw):
        raise self.exc_for(script, kw.get("timeout"))


class _Layout:
    root = "/opt/ayna/uavcrew"


def _timed_out(script, timeout):
    return CommandTimedOut(InvokeResult(command=script, stdout="", stderr="", exited=-1), timeout=timeout)


def _dropped(script, timeout):
    return EOFError(f"channel closed while running {script}")


@pytest.mark.parametrize("exc_for", [_timed_out, _dropped])
def test_a_call_that_fails_in_transit_names_host_and_step_not_the_command(exc_for):
    command = cmd.unlock(_Layout(), "token-abc")
    with pytest.raises(OperationFailed) as got:
        Remote("web1", TimesOut(exc_for)).run(command, timeout=65)
    text = str(got.value)
    assert text.startswith(f"[web1] {command.step}: ")
    assert len(text) < 400, text
    assert "python3" not in text and "base64" not in text and "token-abc" not in text
    assert hostcall.bootstrap()[:60] not in text and hostcall.cached_bootstrap()[:60] not in text
    if exc_for is _timed_out:
        assert "timed out after 65s" in text
