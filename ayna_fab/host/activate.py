"""Activation: flip `current`, reload or restart the units, poll health, verify every process.

Also the way back when there is no release to return to (deactivate).
"""

import os
import time

from . import calls, health, store, units, wire
from .releases import require_lock


def verify(unit_names, rel, deadline):
    """Every process of every unit must run from rel: its working directory inside it, and no
    file of another release in its command line or its memory maps (interpreter, packages)."""
    want = os.path.realpath(rel) + os.sep
    releases_dir = os.path.dirname(os.path.realpath(rel))
    number = int(os.path.basename(rel)[1:])
    while True:
        report = {}
        for unit in unit_names:
            pids = units.pids(unit)
            stale = []
            for pid in pids:
                try:
                    cwd = os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) + os.sep
                except OSError:
                    continue  # gone meanwhile
                used = units.releases_used(pid, releases_dir) or set()
                if not cwd.startswith(want):
                    stale.append([pid, cwd.rstrip(os.sep)])
                elif used - {number}:
                    stale.append([pid, "files of " + ", ".join(f"v{n}" for n in sorted(used - {number}))])
            report[unit] = {"pids": len(pids), "stale": stale, "active": units.state(unit)}
        if all(r["pids"] and not r["stale"] and r["active"] == "active" for r in report.values()):
            return True, report
        if time.monotonic() > deadline:
            return False, report
        time.sleep(0.2)


def activate(a: calls.Activate):
    require_lock(a.root, a.token)
    rel = store.release_dir(a.root, a.number)
    if not os.path.isdir(rel):
        raise wire.Refused("missing", f"{rel} does not exist")
    res = {"number": a.number, "steps": {}}

    t = time.monotonic()
    store.flip(a.root, a.number)
    res["steps"]["flip"] = round(time.monotonic() - t, 3)
    wire.step("flip", time.monotonic() - t)

    t = time.monotonic()
    errors = []
    procs = []
    for unit, action in a.actions:  # all at once: a slow warm shutdown must not hold up the rest
        if units.state(unit) != "active":
            action = "restart"  # not running (first deploy, or it died): start it
        procs.append((unit, action, units.control_async(action, unit)))

    def settle(which):
        for unit, action, p in which:
            output = p.communicate()[0]
            if p.returncode != 0:
                errors.append(f"{action} {unit}: {output.strip()}")

    # Health needs only the HTTP units: poll it while workers finish their warm shutdowns.
    http = set(a.http_units)
    settle([p for p in procs if p[0] in http])
    t_health = time.monotonic()
    healthy, hreport = health.poll(a.health, f"v{a.number}", time.monotonic() + a.health_timeout,
                                   fail_fast=not errors)
    health_seconds = time.monotonic() - t_health
    settle([p for p in procs if p[0] not in http])
    res["steps"]["restart"] = round(time.monotonic() - t - health_seconds, 3)
    wire.step("restart", res["steps"]["restart"], not errors)
    res["unit_errors"] = errors
    res["steps"]["health"] = round(health_seconds, 3)
    wire.step("health", health_seconds, healthy)
    res["health"] = hreport
    res["healthy"] = healthy

    t = time.monotonic()
    ok, report = verify([u for u, _ in a.actions], rel, time.monotonic() + a.verify_timeout)
    res["steps"]["verify"] = round(time.monotonic() - t, 3)
    wire.step("verify", time.monotonic() - t, ok)
    res["verify"] = report
    res["verified"] = ok and not errors
    res["ok"] = res["verified"] and healthy
    return res


def deactivate(a: calls.Deactivate):
    """No good release to go back to (a failed first deploy): stop the units, remove current."""
    require_lock(a.root, a.token)
    errors = [e for e in (units.control("stop", u) for u in a.units) if e]
    store.unlink_current(a.root)
    return {"ok": not errors, "errors": errors}
