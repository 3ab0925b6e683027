"""Making a release live on one host, and putting the previous one back: shared by deploy and rollback.

The host does the work in one call and carries it to its end by itself, whatever
happens to the laptop (hostprog/switchover.py): flip, restart, health, verify, and on
failure the way back and the record. Here: the units' actions, following the host
(again, after a lost link), reading its outcome, and putting a healthy host back
when another host of a fleet failed.
"""

from __future__ import annotations

import time

from ayna_fab.provision import unitfiles as units
from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config.model import Project
from ayna_fab.errors import NeedsAttention, OperationFailed
from ayna_fab.hostprog import switchover as host_activate
from ayna_fab.ops.runner import HostRun, RunState, no_interrupts

EXTRA_SECONDS = 120   # the laptop waits this much beyond the host's own verify and health timeouts
REATTACH_WAIT = 30.0  # each follow call after a lost link waits this long for the outcome


def unit_actions(project: Project) -> list[tuple[str, str]]:
    """The units outside the slots (beat) are restarted, stop then start: beat never runs twice.

    web, api and the Celery worker are not in this list: the host starts the new release in
    their idle slot and stops the live one once the new one answers (docs/ARCHITECTURE.md)."""
    return [(unit, "restart") for unit in units.single_units(project)]


def failure_text(res: dict) -> str:
    """What went wrong in an activation's answer, one line per unit or endpoint."""
    return host_activate.failure_text(res)


def activate(t: HostRun, number: int, actions: list[tuple[str, str]], *, verify_timeout: float,
             health_timeout: float, step: str = "activate", show_steps: bool = True, restore: bool = False,
             on_ok: dict | None = None, on_failure: dict | None = None, pending: dict | None = None) -> dict | None:
    """Make number live on t's host: the host carries it to its end (hostprog/switchover.py), and on a
    lost link this reattaches to it. The host's answer (None in a dry run)."""
    before = t.state
    t.move(RunState.ACTIVATING)  # from here on, a failure means putting the previous release back
    command = cmd.activate(t.layout, t.project, t.token, number, actions, verify_timeout, health_timeout,
                           back=t.live_before.number if t.live_before else None, restore=restore, on_ok=on_ok,
                           on_failure=on_failure, pending=pending, step=step)
    limit = 2 * (verify_timeout + health_timeout) + EXTRA_SECONDS   # the way back included
    if t.dry_run:
        res = t.call(command, timeout=limit, show_steps=show_steps)
        t.move(RunState.LIVE)   # as it would be
        return res
    try:
        res = t.call(command, timeout=limit, show_steps=show_steps)
    except OperationFailed as lost:
        res = reattach(t, lost, limit, before)
    except KeyboardInterrupt as stop:   # too late to stop: the host carries it; follow it to its end
        seen = t.remote.interrupted or (stop.args[0] if stop.args else "Ctrl-C or SIGTERM")
        t.say(f"[{t.name}] interrupted ({seen}) during activation: the host carries it to its end; following it")
        t.remote.interrupted = None   # the follow calls must go out; the interrupt is noted again after
        with no_interrupts():
            res = reattach(t, None, limit, before)
        t.remote.interrupted = seen
    return read_outcome(t, res)


def too_late_to_stop(t: HostRun, res: dict | None) -> None:
    """A lone host's interrupt that came while its activation went live: the release is live and
    healthy, so the operation goes on to record it rather than undo it."""
    if res is not None and res.get("ok") and t.remote.interrupted:
        t.say(f"[{t.name}] interrupted ({t.remote.interrupted}) once v{res['number']} was live and healthy: "
              "recording it")
        t.remote.interrupted = None


def reattach(t: HostRun, lost: OperationFailed | None, limit: float, before: RunState) -> dict:
    """The link dropped (or the laptop was interrupted) while the host was activating: connect
    again if need be and follow the activation to its end. If it never reached the host, t goes
    back to where it was before (before)."""
    if lost is not None:
        t.say(f"[{t.name}] the link dropped during activation ({lost.message.splitlines()[0]}); the host "
              "carries on by itself: reconnecting to follow it")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            res = t.call(cmd.follow(t.layout, t.token, REATTACH_WAIT), timeout=REATTACH_WAIT + 30)
        except OperationFailed:
            time.sleep(2)
            continue
        if res.get("error") == "no-activation":   # the call never reached the host: nothing changed
            t.move(before)
            raise lost or KeyboardInterrupt(t.remote.interrupted)
        if res.get("error"):
            raise NeedsAttention(f"lost the link during activation, then: {res.get('detail')}", host=t.name,
                                 step="activate", hint=f"fab -H {t.name} status")
        if not res.get("running"):
            return res
    raise NeedsAttention("lost the link during activation and could not reconnect; the host carries the "
                         f"activation of v{t.number} to its end by itself (on failure it puts "
                         f"{t.live_before.name if t.live_before else 'nothing'} back) and records it", host=t.name,
                         step="activate", hint=f"fab -H {t.name} status shows how it ended")


def read_outcome(t: HostRun, res: dict | None) -> dict | None:
    """Read the host's outcome into t: what is live, whether the host recorded and unlocked."""
    if res is None or res.get("error"):
        return res
    # the answer came: from here the laptop acts on it
    back = res["outcome"] in ("restored", "stopped")
    if res.get("recorded"):
        t.record = res["recorded"]
        t.move(RunState.RECORDED_FAILED if back else RunState.RECORDED_LIVE)
    else:
        t.move(RunState.PUT_BACK if back else RunState.LIVE)
    if res["outcome"] == "restore-failed":
        raise NeedsAttention(f"v{res['number']} failed and putting "
                             f"{t.live_before.name if t.live_before else 'nothing'} back failed too:\n"
                             + indent(failure_text(res["result"]) + "\n" + failure_text(res.get("restore") or
                                                                                 {"number": res.get("back")})),
                             host=t.name, step="restore",
                             hint=f"look at the host now: fab -H {t.name} status; then fab -H {t.name} rollback")
    return res


def put_back(t: HostRun, verify_timeout: float = 30.0, health_timeout: float = 60.0) -> str:
    """Back to the release that was live (every unit restarted, verified, healthy), or, with none,
    stop the units and remove current. Returns what serves now; raises if that failed too."""
    started = time.monotonic()
    if t.live_before is None:
        res = t.call(cmd.deactivate(t.layout, t.project, t.token))
        if res and not res["ok"]:
            raise OperationFailed("; ".join(res["errors"]), host=t.name, step="restore")
        t.show("restore", time.monotonic() - started, note="stopped the units; no earlier release")
        t.move(RunState.PUT_BACK)
        return "deactivated"
    res = activate(t, t.live_before.number, unit_actions(t.project), verify_timeout=verify_timeout,
                   health_timeout=health_timeout, step="restore", show_steps=False)
    ok = res is None or res["ok"]
    t.show("restore", time.monotonic() - started, ok=ok, note=f"back on {t.live_before.name}")
    if not ok:
        raise OperationFailed(failure_text(res.get("result", res)), host=t.name, step="restore")
    t.move(RunState.PUT_BACK)
    return t.live_before.name


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.strip().split("\n"))
