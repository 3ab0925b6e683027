"""Making a release live on one host, and putting the previous one back: shared by deploy and rollback.

The host does the work in one call (host/activate.py): flip, reload or restart,
health, verify. Here: which units reload and which restart, how a failed
activation reads, and the way back.
"""

from __future__ import annotations

import time

from ayna_fab import units
from ayna_fab.commands import host as cmd
from ayna_fab.config import Project
from ayna_fab.errors import OperationFailed
from ayna_fab.runner import Target

EXTRA_SECONDS = 120   # the laptop waits this much beyond the host's own verify and health timeouts


def unit_actions(project: Project) -> list[tuple[str, str]]:
    """Every unit is restarted, so every process runs the new release's interpreter and packages.

    A HUP would keep gunicorn's master on the venv of the release it started from, and that
    release is deleted by a later cleanup. web and api lose no request to the restart: their
    socket units hold the port and queue connections meanwhile (docs/ARCHITECTURE.md)."""
    return [(units.unit_name(project, service), "restart") for service in project.services]


def describe(res: dict) -> str:
    """What went wrong in an activation's answer, one line per unit or endpoint."""
    lines = list(res.get("unit_errors", []))
    for unit, v in res.get("verify", {}).items():
        if v["active"] != "active":
            lines.append(f"{unit} is {v['active']}")
        for pid, cwd in v["stale"]:
            lines.append(f"{unit}: pid {pid} still runs from {cwd}")
    for name, h in res.get("health", {}).items():
        if not h["ok"]:
            lines.append(f"{name} health: status {h['status']}, release {h['release']}: {h['body'][:160]}")
    return f"v{res['number']} is not healthy:\n" + indent("\n".join(lines))


def activate(t: Target, number: int, actions: list[tuple[str, str]], *, verify_timeout: float,
             health_timeout: float, step: str = "activate", show_steps: bool = True) -> dict | None:
    """Flip t's host to number and bring its units up on it; the host's answer (None in a dry run)."""
    t.flipped = True  # from here on, a failure means putting the previous release back
    command = cmd.activate(t.layout, t.project, t.token, number, actions, verify_timeout, health_timeout, step)
    return t.call(command, timeout=verify_timeout + health_timeout + EXTRA_SECONDS, show_steps=show_steps)


def put_back(t: Target, verify_timeout: float = 30.0, health_timeout: float = 60.0) -> str:
    """Back to the release that was live (every unit restarted, verified, healthy), or, with none,
    stop the units and remove current. Returns what serves now; raises if that failed too."""
    started = time.monotonic()
    if t.base is None:
        res = t.call(cmd.deactivate(t.layout, t.project, t.token))
        if res and not res["ok"]:
            raise OperationFailed("; ".join(res["errors"]), host=t.name, step="restore")
        t.show("restore", time.monotonic() - started, note="stopped the units; no earlier release")
        return "deactivated"
    res = activate(t, t.base.number, unit_actions(t.project), verify_timeout=verify_timeout,
                   health_timeout=health_timeout, step="restore", show_steps=False)
    ok = res is None or res["ok"]
    t.show("restore", time.monotonic() - started, ok=ok, note=f"back on {t.base.name}")
    if not ok:
        raise OperationFailed(describe(res), host=t.name, step="restore")
    return t.base.name


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines())
