"""What `fab history` shows: the hosts' deploy logs (logs/deploys.jsonl, written by every deploy and
rollback when it is recorded) turned into rows and merged across a fleet, newest first. Pure: the
task reads the logs with the history host call."""

from __future__ import annotations

from collections.abc import Iterable

COLUMNS = ("at", "host", "project", "stage", "event", "release", "revision", "by", "result", "seconds",
           "failed_step")


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def row(host: str, project: str, stage: str, entry: dict) -> dict:
    """One log entry as a row: when, who, which release and revision, outcome, duration, failed step.
    The log is the host's word: a field of the wrong type is left empty, never trusted."""
    steps = entry.get("steps") if isinstance(entry.get("steps"), dict) else {}
    seconds = sum(v for v in steps.values() if isinstance(v, (int, float)) and not isinstance(v, bool))
    return {"at": _text(entry.get("at")), "host": host, "project": project, "stage": stage,
            "event": _text(entry.get("event")), "release": _text(entry.get("release")),
            "previous": _text(entry.get("previous")), "revision": _text(entry.get("revision")),
            "ref": _text(entry.get("ref")), "by": _text(entry.get("by")), "result": _text(entry.get("result")),
            "seconds": round(seconds, 1) if steps else None, "failed_step": _text(entry.get("failed_step")),
            "restored": _text(entry.get("restored")), "message": _text(entry.get("message"))}


def merged(per_host: Iterable[list[dict]], limit: int) -> list[dict]:
    """Every host's rows in one list, newest first (ISO times sort as text; a fleet's hosts stay
    together in host order within one moment), at most `limit` of them."""
    rows = [r for rows in per_host for r in rows]
    order = {id(r): i for i, r in enumerate(rows)}
    rows.sort(key=lambda r: (r["at"], -order[id(r)]), reverse=True)
    return rows[:limit]


def cells(r: dict) -> list[str]:
    """A row as the table's cells."""
    outcome = r["result"] + (f" at {r['failed_step']}" if r["failed_step"] else "") + \
        (f" ({r['restored']} restored)" if r["restored"] else "")
    return [r["at"], r["host"], r["project"], r["stage"], r["event"], r["release"], r["revision"][:12], r["by"],
            outcome, "" if r["seconds"] is None else f"{r['seconds']}s"]


HEADERS = ["when", "host", "project", "stage", "what", "release", "revision", "by", "outcome", "took"]
