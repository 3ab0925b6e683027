"""Deploys and rollbacks across several hosts as one: nobody flips until everybody is ready.

    connect all -> lock + plan all -> one release number -> upload, install, check and
    collectstatic on every host in parallel -> migrate once, on one host -> flip in batches,
    each health-gated -> record everywhere

A host that cannot be reached or fails before the flip means no host flips. A host
failing its health gate puts every flipped host back (on_failure = "rollback") or
stops there, leaving flipped hosts on the new release (on_failure = "stop").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from ayna_fab import deploy as single
from ayna_fab.deploy import Deploy
from ayna_fab.errors import AynaFabError, NeedsAttention, OperationFailed, UsageError
from ayna_fab.remote import Remote

MAX_PARALLEL = 8


@dataclass(frozen=True)
class FleetOptions:
    batch: str = "all"            # "all", a number of hosts, or "N%"
    on_failure: str = "rollback"  # or "stop"
    max_parallel: int = MAX_PARALLEL


def batches(names: list[str], spec: str) -> list[list[str]]:
    """Split hosts into flip batches: all at once, N at a time, or a percentage (rounded up)."""
    if spec == "all":
        size = len(names)
    elif spec.endswith("%"):
        size = math.ceil(len(names) * int(spec[:-1]) / 100)
    else:
        size = int(spec)
    size = max(1, min(size, len(names)))
    return [names[i:i + size] for i in range(0, len(names), size)]


def migrate_host(deploys: list[Deploy]) -> Deploy:
    """The project's migrate_host when it is among the targets, else the first target host."""
    wanted = deploys[0].project.migrate_host
    return next((d for d in deploys if d.name == wanted), deploys[0])


class Fleet:
    def __init__(self, deploys: list[Deploy], remotes: dict[str, Remote], options: FleetOptions,
                 say: Callable[[str], None]) -> None:
        self.deploys = deploys
        self.remotes = remotes
        self.options = options
        self.say = say

    def each(self, fn: Callable[[Deploy, Remote], None], deploys: list[Deploy]) -> dict[str, BaseException]:
        """Run fn on every deploy in parallel; return the failures by host. Ctrl-C waits for
        the steps in flight, then counts as a failure of every host."""
        with ThreadPoolExecutor(max_workers=max(1, min(self.options.max_parallel, len(deploys)))) as pool:
            futures = {pool.submit(fn, d, self.remotes[d.name]): d.name for d in deploys}
            try:
                wait(futures)
            except KeyboardInterrupt:
                with single._no_interrupts():
                    wait(futures)
                return {name: KeyboardInterrupt() for name in futures.values()}
        return {name: f.exception() for f, name in futures.items() if f.exception() is not None}

    def run(self) -> None:
        if self.remotes and all(r.dry_run for r in self.remotes.values()):
            return self._dry_run()
        failed = self.each(single.step_lock_and_plan, self.deploys)
        if failed:
            return self.abort(failed, "lock + plan")
        number = max(d.plan["next"] for d in self.deploys)  # one number for the whole fleet
        mig = migrate_host(self.deploys)
        for d in self.deploys:
            d.number = number
            d.prepare_steps = ("install", "check", "collectstatic")
        self.say(f"fleet: v{number} on {len(self.deploys)} hosts; migrations run once, on {mig.name}")
        failed = self.each(lambda d, r: (single.step_upload(d, r), single.step_prepare(d, r)), self.deploys)
        if failed:
            return self.abort(failed, "prepare")
        mig.prepare_steps = ("migrate",)
        failed = self.each(lambda d, r: (single.step_backup(d, r), single.step_prepare(d, r)), [mig])
        if failed:
            return self.abort(failed, "migrate")
        by_name = {d.name: d for d in self.deploys}
        for i, batch in enumerate(batches([d.name for d in self.deploys], self.options.batch), 1):
            self.say(f"fleet: batch {i}: {', '.join(batch)}")
            failed = self.each(single.step_activate, [by_name[n] for n in batch])
            if failed:
                return self.abort(failed, f"batch {i}")
        failed = self.each(single.step_finish, self.deploys)
        if failed:
            raise NeedsAttention("recording the fleet deploy failed on " + ", ".join(failed),
                                 step="record", hint="fab status; fab unlock where a lock remains")
        self.say(f"fleet: v{number} is live and healthy on {', '.join(d.name for d in self.deploys)}")

    def _dry_run(self) -> None:
        for d in self.deploys:
            for _, step in single.STEPS:
                step(d, self.remotes[d.name])

    def abort(self, failed: dict[str, BaseException], phase: str) -> None:
        """Put every host back (or, with on_failure=stop after flips, keep the healthy ones)."""
        first = next(iter(failed))
        cause = failed[first]
        why = cause.message if isinstance(cause, AynaFabError) else ("interrupted (Ctrl-C)" if isinstance(
            cause, KeyboardInterrupt) else f"{type(cause).__name__}: {cause}")
        keep = {d.name for d in self.deploys if self.options.on_failure == "stop" and d.flipped
                and d.name not in failed}
        outcome: dict[str, str] = {}

        def settle(d: Deploy, r: Remote) -> None:
            if d.name in keep:
                single.step_finish(d, r)
                outcome[d.name] = f"v{d.number} (kept: on_failure = stop)"
                return
            exc = failed.get(d.name) or OperationFailed(f"not flipped: {first} failed at {phase}",
                                                        host=d.name, step=phase)
            err = single.recover(d, r, exc)
            if isinstance(err, NeedsAttention):
                outcome[d.name] = f"NEEDS ATTENTION: {err.message}"
            else:
                outcome[d.name] = d.base.name if d.base else "nothing (no earlier release)"

        with single._no_interrupts():
            problems = self.each(settle, self.deploys)
        for name, exc in problems.items():
            outcome[name] = f"NEEDS ATTENTION: {exc}"
        summary = "\n".join(f"    {d.name}: serving {outcome.get(d.name, '?')}" for d in self.deploys)
        usage = all(isinstance(e, UsageError) for e in failed.values())
        cls = NeedsAttention if any(v.startswith("NEEDS") for v in outcome.values()) else \
            (UsageError if usage and phase == "lock + plan" else OperationFailed)
        raise cls(f"fleet deploy stopped at {phase}: {first} failed: {why}\n{summary}", step=phase,
                  hint="fix the failing host and deploy again; fab status shows every host")


def rollback_target_for_fleet(plans: dict[str, dict], to: int | None) -> int:
    """Every host must go to the same release: the one asked for, or the common default."""
    from ayna_fab import releases

    targets = {}
    for name, plan in plans.items():
        rels = single.host_releases(plan)
        targets[name] = releases.rollback_target(rels, plan["current"], to).number
    if len(set(targets.values())) != 1:
        listing = ", ".join(f"{n}: v{t}" for n, t in targets.items())
        raise UsageError(f"the hosts' previous releases differ ({listing})", step="rollback",
                         hint="roll them all to one release with --to vN")
    return next(iter(targets.values()))
