"""The operation's presence on the host, and what the host does when the laptop is gone.

A deploy or rollback keeps one call open for as long as it holds the lock: `hold`
marks itself in the lock and reads its stdin, which ends when the laptop closes it
(the operation is over) or when the connection dies (the laptop was killed, its
link cut). If the lock is still the operation's then, the host does not wait for
a person: once every step of the operation still running has ended, it finishes
what can be finished and abandons the rest (abandon). The laptop also writes a
heartbeat every few seconds: a link that went silent without a reset (a closed lid,
a dropped NAT entry) ends the holder the same way once nothing came for a minute
(wire.SILENT_AFTER). docs/ARCHITECTURE.md.
"""

import os
import select
import signal
import sys
import time

from . import calls, journal, lock, store, wire

SETTLE_POLL = 0.5


def hold_until_done(root, token, stdin=None, silent_after=wire.SILENT_AFTER):
    """Once a plan has taken the lock for token and answered, its process stays as the holder:
    it reads stdin (a file descriptor; this process's by default) until the laptop says `done`,
    its connection closes, or nothing, not even a heartbeat, came for silent_after seconds: a
    link gone silent sends no reset, so silence is the laptop gone too (main.py, wire.py)."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)   # the end of stdin says it all
    fd = sys.stdin.fileno() if stdin is None else stdin
    said, silent = b"", False
    heard = time.monotonic()
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], max(0.0, heard + silent_after - time.monotonic()))
            if not ready:
                silent = True
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            heard = time.monotonic()
            said = (said + chunk).lstrip(wire.HEARTBEAT)   # heartbeats only say the laptop is there
    except OSError:
        pass
    if silent:
        return abandon(root, token, why=f"the laptop fell silent (nothing heard for {silent_after:g} s)")
    if said.strip() == wire.DONE.strip():
        # The laptop saw the operation through and said so. A lock it left (a host that needs a
        # person) stays for a person: without a holder's mark it is never taken for orphaned.
        lock.unmark_holding(root)
        return {"abandoned": False}
    return abandon(root, token)


def unlock(a: calls.Unlock):
    """Remove a lock by hand (fab unlock), settling first what its operation left, exactly as the
    next plan would (abandon): an activation that never finished takes the way back and is
    recorded, releases still building are marked failed. Refused while a step of it runs."""
    held = lock.inspect(a.root)
    if held is None:
        return {"holder": None, "result": "not-locked"}
    if not a.force and held.get("token") != a.token:
        return {"holder": held, "result": "held-by-other"}
    if [w for w in lock.workers(a.root) if w["pid"] != os.getpid()]:
        return {"holder": held, "result": "busy"}
    settled = None
    if held.get("token"):
        settled = abandon(a.root, held["token"], why="its lock was removed by hand (fab unlock)")
    result = "released" if lock.holder(a.root) is None else lock.release(a.root, a.token, a.force)
    return {"holder": held, "result": result, "settled": settled}


def abandon(root, token, why="the connection to the laptop closed"):
    """The operation holding token lost its controller: wait for its steps still running, then
    leave the host in a good state: an activation is carried to its end and recorded (journal);
    before any activation, releases still building are marked failed. Then the lock goes."""
    while lock.holder(root) is not None and (lock.holder(root) or {}).get("token") == token and \
            [w for w in lock.workers(root) if w["pid"] != os.getpid()]:
        time.sleep(SETTLE_POLL)
    held = lock.holder(root)
    if not held or held.get("token") != token:
        return {"abandoned": False}   # finished or unlocked normally
    j = journal.of(root, token)
    outcome = {"abandoned": True, "operation": held.get("operation"), "outcome": None}
    if j is not None:
        # imported only here: every plan that takes the lock imports this module, and the
        # activation's (health checks, urllib) would double the plan call's start-up
        from . import switchover
        switchover.resume(root, token)   # done already, or finished now (the way back if it had died)
        j = journal.of(root, token) or {}
        if j.get("outcome") == "live" and lock.holds(root, token):
            _record_live(root, j, why)
        elif j.get("outcome") in ("restored", "stopped") and not j.get("recorded"):
            store.set_state(root, j["number"], "failed", {"failed_step": "activate"})
            store.append_log(root, {"event": held.get("operation") or "deploy", "result": "failed",
                                    "release": f"v{j['number']}", "restored": f"v{j['back']}" if j.get("back") else None,
                                    "reason": f"{j.get('reason') or 'not healthy'}; then {why}",
                                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        outcome.update(outcome=j.get("outcome"), number=j.get("number"), back=j.get("back"))
    else:
        building = [r["number"] for r in store.listing(root)
                    if (r["meta"] or {}).get("state") == "building" and r["number"] != store.current_number(root)]
        for number in building:
            store.set_state(root, number, "failed", {"failed_step": "abandoned"})
        store.append_log(root, {"event": held.get("operation") or "deploy", "result": "abandoned",
                                "release": f"v{building[-1]}" if building else None,
                                "reason": f"{why}; nothing had changed the live site", "by": held.get("by"),
                                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    lock.release(root, token)
    return outcome


def _record_live(root, j, why):
    """A fleet host whose activation succeeded but whose laptop never recorded it: it serves the
    new release, healthy and verified, so that is what gets recorded."""
    spec = (j.get("call") or {}).get("record", {}).get("pending") or {}
    store.set_state(root, j["number"], "active")
    for number, state in (spec.get("states") or {}).items():
        store.set_state(root, int(number), state)
    store.append_log(root, {"event": "deploy", "result": "ok", "release": f"v{j['number']}",
                            "note": f"{why} before the fleet finished; this host was left serving "
                                    f"v{j['number']} (healthy)",
                            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
