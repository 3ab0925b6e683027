"""Rollback, one host or a fleet: back to the previous good release (or vN), whole: code, venv,
restarted units, health. The same runner and lock as deploys, phases of its own:

    lock + plan  each host: take the lock, read its releases
    choose       the laptop: the target release (every host of a fleet goes to the same one)
    preflight    each host: the target's web and api started privately until healthy, then stopped
    before flip  each host: the project's before-flip hooks, in the target (hooks.py)
    activate     each host: flip, restart every unit, health, verify
    after success  the after-success hooks, in the live target
    record       each host: states (the release left is rolled-back), log line, unlock

The migrations the abandoned release had and the target lacks are named, since the
database keeps them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ayna_fab.ops import activation, deploy, hooks, lockrecord as lock, releasestates as releases, runner
from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config.model import Config, Project
from ayna_fab.errors import AynaFabError, NeedsAttention, OperationFailed, UsageError
from ayna_fab.ops.runner import BATCHES, EACH, FLEET, HostRun, Phase, RunState


@dataclass(frozen=True)
class Options:
    to: int | None = None          # vN asked for, or the previous good release
    dry_run: bool = False
    verify_timeout: float = 30.0
    health_timeout: float = 60.0


def fleet_target(targets: list[HostRun], to: int | None) -> int:
    """Every host must go to the same release: the one asked for, or the common default."""
    chosen = {t.name: releases.rollback_target(t.releases, t.plan["current"], to).number for t in targets}
    if len(set(chosen.values())) != 1:
        listing = ", ".join(f"{n}: v{v}" for n, v in chosen.items())
        raise UsageError(f"the hosts' previous releases differ ({listing})", step="rollback",
                         hint="roll them all to one release with --to vN")
    return next(iter(chosen.values()))


class Rollback(runner.Operation):
    name = "rollback"

    def __init__(self, config: Config, project: Project, options: Options, targets: list[HostRun]) -> None:
        self.config, self.project, self.options, self.targets = config, project, options, targets
        self.parallel = config.defaults.parallel
        self.phases = PHASES
        self.hook_problems: list[str] = []

    def lock_and_plan(self, t: HostRun) -> None:
        deploy.lock_and_plan(t, None if t.dry_run else t.owner)

    def choose(self) -> None:
        undone = [t for t in self.targets if (t.plan.get("took_over") or {}).get("outcome") in ("restored", "stopped")]
        if undone and self.options.to is None:
            # the host has just undone an unfinished deploy: what was live before it is live again,
            # and that is where a rollback goes (verified again below), not one further back
            number = undone[0].plan["current"]
        else:
            number = fleet_target(self.targets, self.options.to)
        if len(self.targets) > 1:
            self.targets[0].say(f"fleet: every host to v{number}")
        for t in self.targets:
            t.number = number
            t.show("lock + plan", t.steps.get("lock + plan", 0.0),
                   note=f"{t.live_before.name if t.live_before else 'none'} -> v{number}")
            if t.live_before:
                self.warn_migrations(t)

    def warn_migrations(self, t: HostRun) -> None:
        res = t.call(cmd.migrations(t.layout, t.project, [t.live_before.number, t.number]))
        extra = sorted(set(res[str(t.live_before.number)]) - set(res[str(t.number)]))
        if extra:
            t.say(f"[{t.name}] note: {t.live_before.name} had migrations v{t.number} lacks, and the database keeps "
                  f"them applied: {', '.join(extra)}. Undo them with `manage.py migrate APP PREVIOUS` if the "
                  f"older code cannot work with them.")

    def preflight(self, t: HostRun) -> None:
        deploy.preflight(t)

    def before_flip(self, t: HostRun) -> None:
        hooks.before_flip(self, t)

    def after_success(self) -> None:
        self.hook_problems = hooks.after_success(self)

    def activate(self, t: HostRun) -> None:
        """The host carries this to its end: on failure it puts the release that served back."""
        ok = cmd.record(self.project, *self.success(t))
        on_ok, on_failure = hooks.records_itself(self, t)
        failed = {"event": "rollback", "result": "failed", "release": f"v{t.number}", "by": lock.who(),
                  "at": lock.now()}
        res = activation.activate(t, t.number, activation.unit_actions(self.project),
                                  verify_timeout=self.options.verify_timeout,
                                  health_timeout=self.options.health_timeout, restore=t.live_before is not None,
                                  on_ok=ok if on_ok else None, pending=None if on_ok else ok,
                                  on_failure=cmd.record(self.project, {}, {}, failed) if on_failure else None)
        if len(self.targets) == 1:
            activation.too_late_to_stop(t, res)
        if res is None or res["ok"]:
            return
        why = res.get("reason") or activation.failure_text(res["result"])
        if res["outcome"] == "restored" and not t.state.recorded:   # left for the after-failure hooks, under the lock
            why += hooks.after_failure(self, t)
            log = {**failed, "restored": t.live_before.name, "reason": why[-2000:]}
            t.call(cmd.finish(t.layout, t.project, t.token, {}, {}, log, []))
            t.move(RunState.RECORDED_FAILED)
        if res["outcome"] == "restored":
            raise OperationFailed(f"v{t.number} did not come up healthy; {t.live_before.name} is back and serving\n"
                                  + activation.indent(why), host=t.name, step="rollback",
                                  hint="pick another target: fab -H HOST releases")
        raise OperationFailed(why, host=t.name, step="verify")

    def success(self, t: HostRun) -> tuple[dict, dict, dict, list]:
        states = releases.after_activation(t.releases, t.number, t.plan["current"], rolled_back=True)
        log = {"event": "rollback", "result": "ok", "release": f"v{t.number}",
               "from": t.live_before.name if t.live_before else None, "by": lock.who(), "at": lock.now(),
               "steps": t.steps}
        return states, {}, log, []

    def finish(self, t: HostRun) -> None:
        started = time.monotonic()
        if not t.state.recorded:   # else a lone host's activation recorded itself
            states, meta, log, _ = self.success(t)
            t.call(cmd.finish(t.layout, t.project, t.token, states, meta, log, []))
            t.move(RunState.RECORDED_LIVE)
        t.show("record", time.monotonic() - started)

    def recover(self, t: HostRun, cause: BaseException, phase: str) -> AynaFabError:
        why = runner.reason(cause)
        if not t.state.holds_lock:
            return cause if isinstance(cause, AynaFabError) else OperationFailed(why, host=t.name, step="rollback")
        if not t.state.flipped:
            why += hooks.after_failure(self, t)
            try:
                t.call(cmd.unlock(t.layout, t.token))
                t.move(RunState.RELEASED)
            except AynaFabError as lost:
                why += f"\nthe lock could not be released ({lost.message})"
            return cause if isinstance(cause, AynaFabError) else OperationFailed(why, host=t.name, step="rollback")
        if t.state is RunState.ACTIVATING and isinstance(cause, NeedsAttention):
            return cause   # the host is carrying the activation itself
        if t.live_before is None:
            return NeedsAttention(f"rollback to v{t.number} failed and there is no release to return to: {why}",
                                  host=t.name, step="rollback", hint=f"fab -H {t.name} status")
        try:
            activation.put_back(t)
            why += hooks.after_failure(self, t)
            log = {"event": "rollback", "result": "failed", "release": f"v{t.number}", "restored": t.live_before.name,
                   "reason": why[-2000:], "by": lock.who(), "at": lock.now()}
            t.call(cmd.finish(t.layout, t.project, t.token, {}, {}, log, []))
            t.move(RunState.RECORDED_FAILED)
            return OperationFailed(f"v{t.number} did not come up healthy; {t.live_before.name} is back and serving\n"
                                   + activation.indent(why), host=t.name, step="rollback",
                                   hint="pick another target: fab -H HOST releases")
        except AynaFabError as again:
            return NeedsAttention(f"rollback failed ({why}) and {t.live_before.name} could not be restored: {again}",
                                  host=t.name, step="restore",
                                  hint=f"fab -H {t.name} status; the lock is kept: fab -H {t.name} unlock")


PHASES = [
    Phase("lock + plan", Rollback.lock_and_plan, EACH),
    Phase("choose", Rollback.choose, FLEET),
    Phase("preflight", Rollback.preflight, EACH),
    Phase("before flip", Rollback.before_flip, EACH),
    Phase("activate", Rollback.activate, BATCHES),
    Phase("after success", Rollback.after_success, FLEET),
    Phase("record", Rollback.finish, EACH),
]
