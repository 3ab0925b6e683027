"""Rollback: back to the previous good release (or vN), whole: code, venv, restarted units, health.

Same lock as deploys. The target must be good and complete; the migrations the
abandoned release had and the target lacks are named, since the database keeps them.
"""

from __future__ import annotations

import getpass
import socket
import time

from ayna_fab import releases, units
from ayna_fab.commands import release as cmd
from ayna_fab.deploy import (Deploy, _indent, _no_interrupts, _now, _parse_or_fail,
                             activate_args, describe_activation, host_releases, lock_info, unit_actions)
from ayna_fab.errors import AynaFabError, NeedsAttention, OperationFailed, UsageError
from ayna_fab.remote import Remote


def run(d: Deploy, r: Remote, to: int | None) -> str:
    """Roll d.host back; returns the release now live."""
    t = time.monotonic()
    args = {"root": d.layout.root, "env_file": d.layout.env_file, "units": units.unit_names(d.project),
            "lock": None if d.options.dry_run else lock_info(d)}
    plan = cmd.parse(r.run(cmd.host_program("plan", args, changes=False)).stdout)
    if plan.get("error") == "locked":
        h = plan["holder"]
        raise OperationFailed(f"another deploy holds the lock: {h.get('by')}@{h.get('from')} since {h.get('at')}",
                              host=d.name, step="lock", hint=f"wait, or fab -H {d.name} unlock")
    if plan.get("error"):
        raise UsageError(plan.get("detail", plan["error"]), host=d.name, step="plan",
                         hint=f"fab -H {d.name} setup")
    d.locked = not d.options.dry_run
    d.plan = plan
    try:
        rels = host_releases(plan)
        current = plan["current"]
        d.base = releases.active(rels, current)
        target = releases.rollback_target(rels, current, to)
        d.number = target.number
        d.show("lock + plan", time.monotonic() - t, note=f"{d.base.name if d.base else 'none'} -> {target.name}")
        if d.base:
            _warn_migrations(d, r, d.base.number, target.number)
        if r.dry_run:
            r.run(cmd.host_program("activate", activate_args(d, target.number,
                                                             unit_actions(d.project, True, True))))
            return target.name
        d.flipped = True
        res = _parse_or_fail(d, r.run(cmd.host_program("activate", activate_args(
            d, target.number, unit_actions(d.project, deps_changed=True, restart_all=True))), check=False),
            "activate")
        for name in ("flip", "restart", "health", "verify"):
            d.show(name, res["steps"][name], ok=res["ok"] or name == "flip")
        if not res["ok"]:
            raise OperationFailed(describe_activation(res), host=d.name, step="verify")
        states = releases.after_activation(rels, target.number, current, rolled_back=True)
        log = {"event": "rollback", "result": "ok", "release": target.name,
               "from": d.base.name if d.base else None, "by": f"{getpass.getuser()}@{socket.gethostname()}",
               "at": _now(), "steps": d.steps}
        r.run(cmd.host_program("finish", {"root": d.layout.root, "states": {str(k): v for k, v in states.items()},
                                          "log": log, "remove": [], "unlock": True, "token": d.token}))
        d.locked = False
        return target.name
    except (AynaFabError, KeyboardInterrupt, Exception) as exc:
        if r.dry_run or not d.locked:
            raise
        with _no_interrupts():
            raise _recover(d, r, exc) from exc


def _recover(d: Deploy, r: Remote, exc: BaseException) -> AynaFabError:
    reason = ("interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt)
              else exc.message if isinstance(exc, AynaFabError) else f"{type(exc).__name__}: {exc}")
    if not d.flipped:
        r.run(cmd.host_program("unlock", {"root": d.layout.root, "token": d.token}))
        return exc if isinstance(exc, AynaFabError) else OperationFailed(reason, host=d.name, step="rollback")
    if d.base is None:
        return NeedsAttention(f"rollback to v{d.number} failed and there is no release to return to: {reason}",
                              host=d.name, step="rollback", hint=f"fab -H {d.name} status")
    try:
        res = _parse_or_fail(d, r.run(cmd.host_program("activate", activate_args(
            d, d.base.number, unit_actions(d.project, True, True)), step="restore"), check=False), "restore")
        if not res["ok"]:
            raise OperationFailed(describe_activation(res), host=d.name, step="restore")
        failed_target, d.number = d.number, d.base.number
        r.run(cmd.host_program("finish", {"root": d.layout.root, "states": {}, "remove": [], "unlock": True,
                                          "token": d.token, "log": {"event": "rollback", "result": "failed",
                                                                    "release": f"v{failed_target}",
                                                                    "restored": d.base.name, "at": _now()}}))
        return OperationFailed(f"v{failed_target} did not come up healthy; {d.base.name} is back and serving\n"
                               + _indent(reason), host=d.name, step="rollback",
                               hint="pick another target: fab -H HOST releases")
    except AynaFabError as again:
        return NeedsAttention(f"rollback failed ({reason}) and {d.base.name} could not be restored: {again}",
                              host=d.name, step="restore",
                              hint=f"fab -H {d.name} status; the lock is kept: fab -H {d.name} unlock")


def _warn_migrations(d: Deploy, r: Remote, from_number: int, to_number: int) -> None:
    res = cmd.parse(r.run(cmd.host_program("migrations", {"root": d.layout.root, "django_dir": d.project.django_dir,
                                                          "numbers": [from_number, to_number]})).stdout)
    extra = sorted(set(res[str(from_number)]) - set(res[str(to_number)]))
    if extra:
        d.say(f"[{d.name}] note: v{from_number} had migrations v{to_number} lacks, and the database keeps "
              f"them applied: {', '.join(extra)}. Undo them with `manage.py migrate APP PREVIOUS` if the "
              f"older code cannot work with them.")
