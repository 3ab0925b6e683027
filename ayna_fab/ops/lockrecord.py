"""The deploy lock, laptop side: the holder's record, the "lock is held" error, staleness.

The lock itself lives on the host (ayna_fab/hostprog/lock.py): a directory taken
atomically by deploys, rollbacks, migrate and restore, holding this record.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
from datetime import datetime, timezone

from ayna_fab.errors import OperationFailed, UsageError

STALE_AFTER_SECONDS = 15 * 60


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def who() -> str:
    """user@machine, as releases and the deploy log record the person deploying."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def owner(operation: str, message: str = "", **extra) -> dict:
    """A new holder record with a fresh token: who, from where, when, and what for."""
    return {"by": getpass.getuser(), "from": socket.gethostname(), "pid": os.getpid(),
            "token": secrets.token_hex(8), "at": now(), "message": message, "operation": operation, **extra}


def holder_text(holder: dict) -> str:
    """Who holds a lock, from where, since when, and their message: one line for people."""
    return (f"{holder.get('by')}@{holder.get('from')} (pid {holder.get('pid')}) since {holder.get('at')}"
            + (f", {holder.get('message')!r}" if holder.get("message") else ""))


def held_error(host: str, holder: dict, step: str) -> OperationFailed:
    """The error for a lock someone else holds; nothing was changed."""
    what = holder.get("operation") if holder.get("operation") in ("deploy", "rollback") else (
        f"operation (fab {holder['operation']})" if holder.get("operation") else "deploy")
    return OperationFailed(
        f"another {what} holds the lock: {holder_text(holder)}; nothing was changed",
        host=host, step=step,
        hint=f"wait for it, or if it died: fab -H {host} unlock (add --force if it is not stale)")


def settled_text(settled: dict | None) -> str | None:
    """What the host did with an operation whose lock was removed by hand (hostprog/holder.unlock),
    in words; None when it had left nothing to settle."""
    if not settled or not settled.get("abandoned"):
        return None
    outcome, number, back = settled.get("outcome"), settled.get("number"), settled.get("back")
    if outcome == "restored":
        return f"its activation of v{number} had not finished: the way back was taken, v{back} is live"
    if outcome == "live":
        return f"its activation of v{number} had ended live and healthy: v{number} is recorded as live"
    if outcome == "stopped":
        return f"its activation of v{number} had not finished and no earlier release exists: the units are stopped"
    if outcome in ("failed", "restore-failed"):
        return f"its activation of v{number} ended {outcome}: look at the host now (fab status)"
    return "it had not changed the live site; releases it was building are marked failed"


def is_stale(holder: dict, here: str | None = None, pid_alive=None) -> tuple[bool, str]:
    """Whether a lock's operation is gone, judged first from what the host says (hostprog/lock.inspect):
    a step of it still running on the host means live, whatever else. Otherwise it is stale when
    its process is gone (taken from this machine), or when no call of it has touched the lock for
    STALE_AFTER_SECONDS. Releasing a lock wrongly judged stale cannot hurt its operation: every
    call presents the lock's token, so the operation stops at its next step."""
    workers = holder.get("workers") or []
    if workers:
        w = workers[0]
        return False, f"pid {w['pid']} is still running {w['what']} on the host ({w['seconds']}s so far)"
    if holder.get("orphaned"):
        return True, "its laptop's connection is gone and no step of it runs on the host"
    if holder.get("connected"):
        return False, "its laptop is still connected to the host"
    here = here or socket.gethostname()
    alive = pid_alive or _pid_alive
    if holder.get("from") == here and isinstance(holder.get("pid"), int) and not alive(holder["pid"]):
        return True, f"pid {holder['pid']} on this machine is gone and no step of it runs on the host"
    idle = holder.get("idle_seconds")
    if idle is None:
        return True, "the lock records no time"
    if idle > STALE_AFTER_SECONDS:
        return True, f"nothing has run under it for {idle / 60:.0f} minutes and no step of it runs on the host"
    return False, f"its operation touched it {idle}s ago from {holder.get('from')}"


def may_remove(holder: dict, host: str, force: bool) -> str:
    """`fab unlock`'s judgement: why the lock may go (its operation is gone, or "forced"), else
    UsageError. A step of it still running on the host is never overruled, not even by force."""
    stale, why = is_stale(holder)
    desc = holder_text(holder)
    if holder.get("workers"):
        raise UsageError(f"the lock is held by {desc} and {why}: it is released when that ends, "
                         "not before", host=host, step="unlock", hint="fab status; wait for it")
    if not (stale or force):
        raise UsageError(f"the lock is held by {desc} and may be live ({why})", host=host,
                         step="unlock", hint="if you are sure that operation is gone: fab unlock --force")
    return why if stale else "forced"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
