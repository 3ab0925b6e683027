"""What a deploy or a rollback came to, as one JSON document for CI (`--json`; docs/json-output.md).

Built from the operation's record on the laptop (hooks.Outcome and each host's runner.HostRun) and
the error it ended with, if any: the same facts the lines for people said, in a shape that stays
put (SCHEMA changes when a key changes meaning or goes away; new keys may appear).
"""

from __future__ import annotations

import time

from ayna_fab.errors import AynaFabError, NeedsAttention
from ayna_fab.ops.hooks import Outcome
from ayna_fab.ops.runner import HostRun, RunState

SCHEMA = 1
INTERRUPTED_EXIT = 130   # as cli/exitcodes.task exits on Ctrl-C

# What each host came to. A host left as it was counts as untouched; one put back serves what it did.
LIVE, FAILED, UNTOUCHED, NEEDS_ATTENTION, DRY_RUN = "live", "failed", "untouched", "needs-attention", "dry-run"


def exit_code(error: BaseException | None) -> int:
    if error is None:
        return 0
    if isinstance(error, AynaFabError):
        return error.exit_code
    return INTERRUPTED_EXIT if isinstance(error, KeyboardInterrupt) else 1


def host_outcome(t: HostRun, error: BaseException | None) -> str:
    if t.dry_run:
        return DRY_RUN
    if t.state is RunState.LOCK_LOST or (isinstance(error, NeedsAttention) and error.host in (None, t.name)
                                         and not t.state.recorded and t.state is not RunState.RELEASED):
        return NEEDS_ATTENTION
    if t.state in (RunState.RECORDED_LIVE, RunState.LIVE):
        return LIVE
    if t.state in (RunState.NEW, RunState.LOCK_ASKED, RunState.RELEASED) or (
            t.state is RunState.LOCKED and t.number is None):
        return UNTOUCHED
    return FAILED


def _serving(t: HostRun, outcome: str) -> str | None:
    """The release the host serves now, as far as the laptop knows."""
    if outcome == LIVE:
        return f"v{t.number}" if t.number else None
    return t.live_before.name if t.live_before else None


def host_document(t: HostRun, error: BaseException | None) -> dict:
    outcome = host_outcome(t, error)
    failed = t.failed_step or (error.step if isinstance(error, AynaFabError) and error.host == t.name else None)
    return {"outcome": outcome, "state": t.state.value,
            "release": f"v{t.number}" if t.number else None, "serving": _serving(t, outcome),
            "previous": t.live_before.name if t.live_before else None,
            "steps": [{"name": name, "seconds": seconds, "ok": name != t.failed_step}
                      for name, seconds in t.steps.items()],
            "failed_step": failed if outcome not in (LIVE, DRY_RUN) else None}


def document(outcome: Outcome, error: BaseException | None = None, *, dry_run: bool = False) -> dict:
    """The one JSON document of an operation on one project, ended well (error None) or not."""
    targets = outcome.op.targets if outcome.op is not None else []
    env = outcome.env("success" if error is None else "failed")
    hosts = {t.name: host_document(t, error) for t in targets}
    for name in outcome.hosts:   # a host the operation never reached (refused before connecting)
        hosts.setdefault(name, {"outcome": UNTOUCHED, "state": RunState.NEW.value, "release": None,
                                "serving": None, "previous": None, "steps": [], "failed_step": None})
    failed_host = error.host if isinstance(error, AynaFabError) else None
    return {
        "schema": SCHEMA,
        "operation": outcome.operation,
        "project": outcome.project.name,
        "dry_run": dry_run,
        "release": env["AYNA_RELEASE"] or None,
        "revision": env["AYNA_REVISION"] or None,
        "ok": error is None,
        "exit_code": exit_code(error),
        "failed_step": (getattr(error, "step", None) or ("interrupted" if isinstance(error, KeyboardInterrupt)
                                                         else None)) if error is not None else None,
        "failed_host": failed_host,
        "error": None if error is None else {
            "message": getattr(error, "message", None) or str(error) or type(error).__name__,
            "hint": getattr(error, "hint", None)},
        "hook_problems": list(outcome.problems),
        "seconds": round(time.monotonic() - outcome.started, 3),
        "hosts": hosts,
    }


def refused(operation: str, error: BaseException) -> dict:
    """The document of an operation refused before any project was chosen (hosts.toml, -H, --ref)."""
    return {"schema": SCHEMA, "operation": operation, "project": None, "dry_run": False, "release": None,
            "revision": None, "ok": False, "exit_code": exit_code(error),
            "failed_step": getattr(error, "step", None), "failed_host": getattr(error, "host", None),
            "error": {"message": getattr(error, "message", None) or str(error), "hint": getattr(error, "hint", None)},
            "hook_problems": [], "seconds": 0.0, "hosts": {}}
