"""A day-two call's answer, read the one way: a held lock is the lock's own error, any other
refusal a UsageError naming the host and the step."""

from __future__ import annotations

from ayna_fab.config.model import Host
from ayna_fab.errors import UsageError
from ayna_fab.ops import lockrecord as lock
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Result


def read(host: Host, res: Result, step: str) -> dict:
    """A host call's answer; a refusal other than a held lock is an error naming the host."""
    data = hostcall.parse(res, host=host.name, step=step)
    if data.get("error") == "locked":
        raise lock.held_error(host.name, data["holder"], step)
    if data.get("error"):
        raise UsageError(data["detail"], host=host.name, step=step)
    return data
