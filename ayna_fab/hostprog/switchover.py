"""Activation, carried to its end on the host whatever happens to the laptop.

The activate call starts a worker of its own session, detached from the SSH
connection, and then only follows it. The worker points the idle slot at the
release, flips `current`, starts that slot beside the live one and restarts beat,
polls health until the new release answers (on the new slot's own socket), stops the
other slot, verifies every process, and when that fails puts the release it replaced back (the old slot, still
running until the new one answered, is kept: no cold start) or, with none, stops
the units; then it records the outcome:
states, the log line, the lock's release. Its progress goes to the journal
(journal.py) step by step. Losing the link, killing the laptop or killing the
call that follows changes nothing; killing the worker itself leaves its journal,
and whoever comes next (the follower, the holder when the laptop is gone, the
next plan) finishes the way back: `resume`. docs/ARCHITECTURE.md.
"""

import fcntl
import os
import signal
import stat
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict

from . import calls, finish, health, journal, lock, store, units, wire

FOLLOW_POLL = 0.02   # a small file read: the laptop hears each step (and the end) at once


# A unit with no health endpoint (a Celery worker, beat) proves only that it is still running: it
# must have stayed up this long since its start, or a worker that dies while it imports its app
# (Type=simple: active at once) would pass, verified between its start and its exit.
SETTLE = 1.0


def verify(unit_names, rel, deadline, restarts_before=None, settle_units=()):
    """Every process of every unit must run from rel: its working directory inside it, and no
    file of another release in its command line or its memory maps (interpreter, packages);
    no unit may have crashed since its restart; and settle_units must have been up SETTLE s."""
    want = os.path.realpath(rel) + os.sep
    releases_dir = os.path.dirname(os.path.realpath(rel))
    number = int(os.path.basename(rel)[1:])
    while True:
        report = {}
        facts = units.states(unit_names)
        for unit in unit_names:
            pids = units.pids_of_cgroup(facts[unit]["cgroup"]) or []
            stale = []
            for pid in pids:
                try:
                    cwd = os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) + os.sep
                except OSError:
                    continue  # gone meanwhile
                used = units.releases_used(pid, releases_dir)
                if not cwd.startswith(want):
                    stale.append([pid, cwd.rstrip(os.sep)])
                elif used is None:
                    stale.append([pid, "a program not loaded yet"])  # mid-exec: judged next round
                elif used - {number}:
                    stale.append([pid, "files of " + ", ".join(f"v{n}" for n in sorted(used - {number}))])
            report[unit] = {"pids": len(pids), "stale": stale, "active": facts[unit]["state"],
                            "restarts": crashes(facts[unit]["restarts"], (restarts_before or {}).get(unit, 0))}
        settled = all(facts[u]["up"] is None or facts[u]["up"] >= SETTLE for u in settle_units)
        # A process that crashed and came back (Restart=) is active at this instant, yet not running.
        if settled and all(r["pids"] and not r["stale"] and r["active"] == "active" and not r["restarts"]
                           for r in report.values()):
            return True, report
        if time.monotonic() > deadline:
            return False, report
        time.sleep(0.1)


def crashes(now, before):
    """systemd's own restarts (NRestarts) since ours. Our restart may or may not have reset the
    count (it does when the unit was waiting to restart itself): a count that moved and is not
    zero is a crash either way."""
    if now == before or now == 0:
        return 0
    return now - before if now > before else now


def failure_text(res):
    """What went wrong in a bring-up, one line per unit or endpoint (the log's reason, the error)."""
    lines = list(res.get("unit_errors", []))
    for unit, v in res.get("verify", {}).items():
        if v["active"] != "active":
            lines.append(f"{unit} is {v['active']}")
        for pid, cwd in v["stale"]:
            lines.append(f"{unit}: pid {pid} still runs from {cwd}")
        if v.get("restarts"):
            lines.append(f"{unit} crashed and was restarted by systemd {v['restarts']} time(s) since it was "
                         f"restarted for this release: see journalctl -u {unit}")
    for name, h in res.get("health", {}).items():
        if not h["ok"]:
            lines.append(f"{name} health: status {h['status']}, release {h['release']}: {h['body'][:160]}")
    if res.get("detail"):
        lines.append(res["detail"])
    return f"v{res['number']} is not healthy:\n" + "\n".join("    " + x for x in lines)


# --- the call ------------------------------------------------------------------------------------

def activate(a: calls.Activate):
    """Start the worker, then follow it to its end (the answer is the journal's outcome)."""
    lock.require(a.root, a.token)
    if not os.path.isdir(store.release_dir(a.root, a.number)):
        raise wire.Refused("missing", f"{store.release_dir(a.root, a.number)} does not exist")
    # Marked as a step under the lock until its worker is marked in its place (detach): never a
    # moment when the holder would take the activation for abandoned and settle it under the worker.
    with lock.working(a.root, "activate"):
        journal.write(a.root, {"token": a.token, "number": a.number, "back": a.back, "call": asdict(a),
                               "steps": [], "phase": "starting", "outcome": None, "started": time.time()})
        detach(a.root, lambda: carry(a))
    return follow(a.root, a.token)


def follow_call(a: calls.Follow):
    """Reattach to an activation (after a lost link): relay its steps, answer its outcome."""
    if journal.of(a.root, a.token) is None:
        raise wire.Refused("no-activation", "this operation started no activation on the host")
    return follow(a.root, a.token, time.monotonic() + a.timeout if a.timeout else None)


def detach(root, work):
    """Run work in a grandchild of its own session with its stdio on /dev/null: no hang-up, no
    closed pipe and no signal sent to this call reaches it. Its pid goes to the journal first."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        ready_r, ready_w = os.pipe()
        child = os.fork()
        if child:  # the worker is known (journal, lock) before this call goes on to follow it
            lock.mark_working(root, "activate", pid=child)
            journal.update(root, worker={"pid": child, "start": lock.start_time(child)})
            os._exit(0)
        os.close(ready_w)
        os.read(ready_r, 1)  # end of file once the journal names this worker: no lost update
        os.close(ready_r)
        for s in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
            signal.signal(s, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        work()
    except BaseException:
        try:
            journal.update(root, crash=traceback.format_exc()[-3000:])
        except Exception:
            pass
    finally:
        os._exit(0)


STEP_PHASES = ("health", "verify")   # phases of the journal that begin the step of that name (restart overlaps health)


def follow(root, token, deadline=None):
    """Relay the journal's steps as they come until the activation is done. A worker that died
    on the way is finished here (resume). With a deadline, may answer {"running": True}."""
    sent, began = 0, set()
    while True:
        j = journal.of(root, token) or {}
        for name, seconds, ok in j.get("steps", [])[sent:]:
            wire.step(name, seconds, ok)
        sent = len(j.get("steps", []))
        phase = j.get("phase")
        if phase in STEP_PHASES and phase not in began:   # a phase is the step of its name, begun
            began.add(phase)
            wire.start(phase)
        if j.get("phase") == "done":
            return answer(j)
        w = j.get("worker") or {}
        if w and not lock.alive(w["pid"], w.get("start")):
            resume(root, token)
            continue
        if deadline is not None and time.monotonic() > deadline:
            return {"running": True, "phase": j.get("phase"), "number": j.get("number")}
        time.sleep(FOLLOW_POLL)


def answer(j):
    return {"outcome": j["outcome"], "ok": j["outcome"] == "live", "number": j["number"], "back": j.get("back"),
            "result": j.get("result") or {}, "restore": j.get("restore"), "recorded": j.get("recorded"),
            "reason": j.get("reason")}


# --- the worker ----------------------------------------------------------------------------------

@contextmanager
def carrying(root):
    """One process carries an activation at a time; the flock dies with it, so a resumer waits
    for a live worker and goes on at once after a dead one."""
    with open(os.path.join(root, journal.NAME + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def carry(a: calls.Activate):
    """The whole transaction: bring vN up; on failure, the way back; record the outcome. A worker
    that comes to it after someone settled the activation in its place (resume) does nothing."""
    with carrying(a.root):
        j = journal.of(a.root, a.token)
        if j is None or j.get("phase") != "starting":
            return
        lock.mark_working(a.root, "activate")
        res = bring_up(a, a.number)
        journal.update(a.root, result=res)
        if res["ok"]:
            record_outcome(a, "live", None)
        else:
            take_way_back(a, failure_text(res))


def take_way_back(a: calls.Activate, reason):
    """The new release failed (or its worker died): put a.back live again, or stop the units."""
    back = None
    if not a.restore:
        outcome = "failed"
    elif a.back is None:
        outcome = "stopped" if stop(a) else "restore-failed"
    else:
        back = bring_up(a, a.back, restoring=True)
        outcome = "restored" if back["ok"] else "restore-failed"
    record_outcome(a, outcome, back, reason)


def resume(root, token):
    """Finish an activation whose worker died: if it had no outcome yet, the new release is not
    trusted, so the way back is taken; then the outcome is recorded. Idempotent."""
    with carrying(root):
        j = journal.of(root, token)
        if j is None or j.get("phase") == "done":
            return
        a = calls.Activate(**j["call"])
        if j.get("outcome") is None:
            res = j.get("result") or {"number": a.number, "ok": False}
            why = f"the activation of v{a.number} stopped at {j.get('phase')} (its process was killed)"
            journal.update(root, reason=why, result=res)
            lock.mark_working(root, "activate")
            take_way_back(a, why)
        else:
            record_outcome(a, j["outcome"], j.get("restore"), j.get("reason"))


def record_outcome(a: calls.Activate, outcome, back, reason=None):
    """Record the outcome as asked (record["ok"] or record["failed"]), then mark the journal done."""
    journal.update(a.root, outcome=outcome, restore=back, phase="record", reason=reason)
    which = {"live": "ok", "restored": "failed", "stopped": "failed"}.get(outcome)
    recorded = None
    spec = (a.record or {}).get(which) if which else None
    if spec and lock.holds(a.root, a.token):
        log = dict(spec["log"]) if spec.get("log") else None
        if log is not None and which == "failed":
            log.update(reason=(reason or "")[-2000:], restored=f"v{a.back}" if outcome == "restored" else None)
        recorded = finish.record(a.root, a.token, spec.get("states", {}), spec.get("meta", {}), log,
                                   spec.get("remove", []), spec.get("units", []))
    journal.update(a.root, recorded=recorded, phase="done", finished=time.time())


RUNNING = ("active", "activating", "reloading", "deactivating")


def choose_slot(slots, states, links, number, current, restoring):
    """(slot, verb) for vN: a slot whose link names vN and that still runs is kept ("keep": only
    its units that are not active are started again) when putting a release back, or when vN is
    not the live release (a fleet putting a host back); else an idle slot is started ("start");
    with none idle (an activation cut short), the slot that does not run the live release is
    restarted. Never the live slot itself: the other one serves until the new one answers.
    states: {unit: ActiveState}."""
    if not slots:
        return None, None
    for slot, names in slots.items():
        if (links.get(slot) == number and any(states.get(u) in RUNNING for u in names)
                and (restoring or current != number)):
            return slot, "keep"
    idle = [slot for slot, names in slots.items() if not any(states.get(u) in RUNNING for u in names)]
    if idle:
        return idle[0], "start"
    others = [slot for slot in slots if links.get(slot) != current]
    return (others or list(slots))[-1], "restart"


def hand_over_workers(new, old, stopping, deadline, enough=None):
    """Stop the old slot's worker(s) once the new slot's have been active SETTLE s without a crash
    (never before: the old one works the queue until then; an uptime systemd does not tell is
    taken as settled, as verify takes it); the stops go to stopping. A new one may still be
    inactive for a moment (its start job not run yet); one that failed, or did not settle by the
    deadline or by the time health answered (`enough`), stops nothing here: the activation stops
    the rest once verify has passed."""
    if not old:
        return
    while time.monotonic() < deadline and not (enough and enough.is_set()):
        facts = units.states(new)
        if all(f["state"] == "active" and (f["up"] is None or f["up"] >= SETTLE) for f in facts.values()):
            stopping.extend((u, "stop", units.control_async("stop", u)) for u in old)
            return
        if any(f["state"] == "failed" for f in facts.values()):
            return
        time.sleep(0.1)


SHARED_TIMEOUT = 10.0   # seconds for the shared socket to answer as the slot's own did


def slot_checks(checks, slot, started):
    """The health checks as the new slot is asked: on its own socket (probes) when this activation
    started its unit, so systemd passed it that socket, and the socket is there; else on the shared
    URL (a host set up before slot sockets; a kept slot's unit that was not started again)."""
    out = []
    for c in checks:
        path = (c.get("probes") or {}).get(slot)
        mine = any(u.endswith(f"-{c['name']}-{slot}.service") for u in started)
        out.append({**c, "unix": path} if path and mine and is_socket(path) else c)
    return out


def is_socket(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def every_unit(a: calls.Activate):
    """Both slots' units, then the others (beat)."""
    return [u for names in (a.slots or {}).values() for u in names] + [u for u, _ in a.actions]


def bring_up(a: calls.Activate, number, restoring=False):
    """Point the idle slot at number, flip, start that slot and restart the other units (beat), all
    at once; poll health on the new slot's own socket until number answers while the live slot
    still serves; then stop the other slot (a warm shutdown for Celery, awaited while verify
    runs), verify, and ask the shared socket once the new slot serves it alone. Steps go to the
    journal (a way back shows as one `restore` step)."""
    rel = store.release_dir(a.root, number)
    res = {"number": number, "steps": {}}
    started = time.monotonic()

    def done(name, seconds, ok=True):
        res["steps"][name] = round(seconds, 3)
        if not restoring:
            journal.add_step(a.root, name, seconds, ok)

    slots = a.slots or {}
    everything = every_unit(a)
    before = units.states(everything)
    running = {u: before[u]["state"] in RUNNING for u in everything}
    restarts_before = {unit: f["restarts"] for unit, f in before.items()}
    slot, verb = choose_slot(slots, {u: before[u]["state"] for u in everything},
                             {s: store.pointed(a.root, s) for s in slots}, number,
                             store.current_number(a.root), restoring)
    new = list(slots.get(slot, []))
    old = [u for s, names in slots.items() if s != slot for u in names if running[u]]

    journal.update(a.root, phase="restore" if restoring else "flip", slot=slot)
    t = time.monotonic()
    if verb in ("start", "restart"):
        store.point(a.root, slot, number)
    store.flip(a.root, number)
    done("flip", time.monotonic() - t)
    if not restoring:
        journal.update(a.root, phase="restart")

    t = time.monotonic()
    errors = []
    procs = []
    for unit in new:   # the new slot, beside the live one
        if verb == "keep" and before[unit]["state"] == "active":
            continue
        action = "restart" if verb in ("restart", "keep") or running[unit] else "start"
        procs.append((unit, action, units.control_async(action, unit)))
    for unit, action in a.actions:  # all at once: a slow warm shutdown must not hold up the rest
        if before[unit]["state"] != "active":
            action = "restart"  # not running (first deploy, or it died): start it
        procs.append((unit, action, units.control_async(action, unit)))

    def settle(which):
        for unit, action, p in which:
            output = p.communicate()[0]
            if p.returncode != 0:
                errors.append(f"{action} {unit}: {output.strip()}")

    # Health needs only the HTTP units: poll it while the rest start. The old worker is stopped
    # as soon as the new one has settled (its warm shutdown runs beside health, not after it).
    http = set(a.http_units)
    stopping = []
    old_workers = [u for u in old if u not in http]
    enough = threading.Event()
    early = threading.Thread(target=hand_over_workers, daemon=True, args=(
        [u for u in new if u not in http], old_workers, stopping,
        time.monotonic() + a.health_timeout if old_workers else 0, enough))
    early.start()
    settle([p for p in procs if p[0] in http])
    # Asked once the starts have returned: a slot's first start is what brings up its socket.
    checks = slot_checks(a.health, slot, [u for u, _, _ in procs])
    if not restoring:
        journal.update(a.root, phase="health")
    t_health = time.monotonic()
    healthy, hreport = health.poll(checks, f"v{number}", time.monotonic() + a.health_timeout,
                                   fail_fast=not errors)
    health_seconds = time.monotonic() - t_health
    settle([p for p in procs if p[0] not in http])
    done("restart", time.monotonic() - t - health_seconds, not errors)
    res["unit_errors"] = errors
    done("health", health_seconds, healthy)
    res["health"] = hreport
    res["healthy"] = healthy

    # The other slot's HTTP units stop once the new ones answer; until then they serve (and are the
    # way back). An old worker the early handover left running stops once verify has passed.
    enough.set()
    early.join()
    if healthy and not errors:
        stopping += [(u, "stop", units.control_async("stop", u)) for u in old if u in http]
    if not restoring:
        journal.update(a.root, phase="verify")
    t = time.monotonic()
    checked = new + [u for u, _ in a.actions]
    ok, report = verify(checked, rel, time.monotonic() + a.verify_timeout, restarts_before,
                        settle_units=[u for u in checked if u not in http])
    if ok and healthy and not errors:
        handled = {u for u, _, _ in stopping}
        stopping += [(u, "stop", units.control_async("stop", u)) for u in old if u not in handled]
    settle(stopping)   # a worker's warm shutdown ran beside health and verify; it is over before the outcome
    if stopping:
        stopped = [u for u, _, _ in stopping]
        after = units.states(stopped)
        for unit in stopped:
            if after[unit]["state"] in RUNNING:
                errors.append(f"{unit} still runs after its stop ({after[unit]['state']})")
    if ok and healthy and not errors and checks != a.health:
        # Health asked the new slot on its own socket; now that it serves alone, the shared one
        # must answer it too.
        _, shared = health.poll(a.health, f"v{number}", time.monotonic() + SHARED_TIMEOUT, fail_fast=True)
        errors += [f"{name} on its shared socket: status {h['status']}, release {h['release']}: {h['body'][:160]}"
                   for name, h in shared.items() if not h["ok"]]
    done("verify", time.monotonic() - t, ok and not errors)
    res["verify"] = report
    res["verified"] = ok and not errors
    res["ok"] = res["verified"] and healthy
    if restoring:
        journal.add_step(a.root, "restore", time.monotonic() - started, res["ok"])
    return res


def stop_all(root, unit_names):
    """No release to go back to (a failed first deploy): stop the units, remove current. The errors."""
    errors = [e for e in (units.control("stop", u) for u in unit_names) if e]
    store.unlink_current(root)
    return errors


def stop(a: calls.Activate):
    errors = stop_all(a.root, every_unit(a))
    journal.add_step(a.root, "restore", 0.0, not errors)
    return not errors


def deactivate(a: calls.Deactivate):
    lock.require(a.root, a.token)
    errors = stop_all(a.root, a.units)
    return {"ok": not errors, "errors": errors}
