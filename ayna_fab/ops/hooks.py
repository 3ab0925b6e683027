"""Hooks: which of a project's hooks run at a phase, on which hosts, and what they are told.

The phases, in the order they run (config.HOOK_PHASES; docs/builds-and-hooks.md):

    after-install   each host, inside prepare: in the new release, right after its venv is installed
    before-flip     each host, after the pre-flip check (a fleet: after its single migrate), before
                    any host flips; a failure fails the operation and the live site never changes
    after-success   each host, once every host is live and healthy, in the live release
    after-failure   each host that held the lock, once it is back in a good state, in the live release

and on the laptop, once the operation is over, after-success or after-failure (notifications).
Host hooks run under the deploy lock as the deploy user (hostprog/hookrunner.py does the running); a
hook marked `once` runs on one host of a fleet only, the migrate host. A hook after the flip
can never change what is live: its failure is reported, as a warning, or with
hook_failure = "fail" as exit 1.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ayna_fab import local
from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config.model import HOOK_PHASES, Hook, Project
from ayna_fab.config.targets import database_host
from ayna_fab.errors import AynaFabError, OperationFailed
from ayna_fab.ops import lockrecord as lock, runner

PHASES = HOOK_PHASES   # in the order they run
GRACE = 60   # the laptop waits this long beyond the hooks' own timeouts (which the host enforces)
BEFORE_FLIP_HINT = "the hook's output is above; the live site is untouched: fix the hook or the release and deploy again"


def chosen(project: Project, phase: str, *, laptop: bool = False, once_host: bool = True) -> list[Hook]:
    """The project's hooks of a phase, host or laptop ones; `once` hooks only where once_host."""
    return [h for h in project.hooks if h.phase == phase and h.laptop == laptop and (once_host or not h.once)]


def is_once_host(op: runner.Operation, t: runner.HostRun) -> bool:
    """Where `once` hooks run: the host that acts for the project's database (its migrate_host, else
    the first host of the target), in a rollback as in a deploy."""
    return database_host(t.project, op.targets) is t


def for_host(op: runner.Operation, t: runner.HostRun, phase: str) -> list[Hook]:
    return chosen(t.project, phase, once_host=is_once_host(op, t))


def listing_line(hook: Hook, where: str) -> str:
    return f"hook:{hook.name} ({hook.phase}): {shlex.join(hook.command)}  [{where}, timeout {hook.timeout}s]"


def list_planned(t: runner.HostRun, hooks: list[Hook], where: str) -> None:
    """In a dry run, each hook that would run, in phase order, with where and as whom."""
    if t.dry_run:
        for h in hooks:
            t.say(f"[{t.name}] {listing_line(h, f'{where}, as {t.host.user}')}")


def show(t: runner.HostRun, reports: list[dict]) -> None:
    """A hook's output, each line under the host's and the hook's name (a failure's output is
    shown in its error or warning instead)."""
    for r in reports:
        if r["ok"]:
            for line in r["output"].split("\n") if r["output"] else ():
                t.say(f"[{t.name}] hook:{r['name']}: {line}")


def failure(r: dict) -> str:
    how = f"timed out after {r['seconds']:.0f}s" if r["timed_out"] else f"exited {r['code']}"
    text = "\n".join("    " + line for line in r["output"].split("\n")[-40:] if r["output"])
    return f"hook {r['name']} {how}" + (f":\n{text}" if text else "")


def env_for(op: runner.Operation, t: runner.HostRun, **extra: str) -> dict[str, str]:
    """What a host hook is told besides the .env (the host adds AYNA_PHASE and AYNA_RELEASE)."""
    return {"AYNA_OPERATION": op.name, "AYNA_PROJECT": t.project.name, "AYNA_HOST": t.name, **extra}


def on_host(op: runner.Operation, t: runner.HostRun, phase: str, number: int | None, *,
            stop_at_failure: bool, **extra: str) -> list[dict]:
    """Run the phase's hooks on t's host in vN (None: the live release); their reports."""
    hooks = for_host(op, t, phase)
    if not hooks:
        return []
    list_planned(t, hooks, f"in v{number}" if number is not None else "in the live release")
    command = cmd.hooks(t.layout, t.token, number, phase, hooks, env_for(op, t, **extra),
                        stop_at_failure=stop_at_failure)
    res = t.call(command, timeout=sum(h.timeout for h in hooks) + GRACE)
    if res is None:   # a dry run
        return []
    if res.get("error"):
        raise OperationFailed(res["detail"], host=t.name, step=f"hooks {phase}")
    show(t, res["hooks"])
    return res["hooks"]


# --- the phases --------------------------------------------------------------------------------

def before_flip(op: runner.Operation, t: runner.HostRun) -> None:
    """Before-flip hooks in the new release; the first failure fails the operation (nothing is live yet)."""
    for r in on_host(op, t, "before-flip", t.number, stop_at_failure=True):
        if not r["ok"]:
            raise OperationFailed(f"{failure(r)}\nbefore the flip, so v{t.number} never went live",
                                  host=t.name, step=f"hook:{r['name']}", hint=BEFORE_FLIP_HINT)


def after_success(op: runner.Operation) -> list[str]:
    """After-success hooks on every host, all of them even if one fails; what went wrong, as lines.

    Nothing here raises: the release is live and healthy, and a hook must never change that. A
    lost link or a Ctrl-C during these hooks is reported like a failed hook (the hook in flight
    ran to its end on the host), and the operation goes on to record the release."""
    problems: list[str] = []

    def one(_op, t: runner.HostRun) -> None:
        for r in on_host(op, t, "after-success", t.number, stop_at_failure=False, AYNA_STATUS="success"):
            if not r["ok"]:
                problems.append(f"[{t.name}] after-success {failure(r)}")

    failures = runner.each(runner.Phase("after success", one), op, op.targets)
    for name, exc in failures.items():
        problems.append(f"[{name}] after-success hooks: {runner.reason(exc)}")
    for t in op.targets:
        if t.remote.interrupted and t.name not in failures:
            problems.append(f"[{t.name}] after-success hooks: interrupted ({t.remote.interrupted}); "
                            "the hook in flight ran to its end")
        t.remote.interrupted = None   # too late to stop: the release is live, so it is recorded
        if t.dry_run:
            list_planned(t, for_host(op, t, "after-failure"), "if it fails: in the live release")
    return problems


def records_itself(op: runner.Operation, t: runner.HostRun) -> tuple[bool, bool]:
    """Whether t's host records the activation's success, and its failure, by itself (and
    releases the lock): a lone host does, unless hooks are to run after it under the lock.
    A fleet's success is recorded by the laptop once every batch is in."""
    alone = len(op.targets) == 1
    return (alone and not for_host(op, t, "after-success"), not for_host(op, t, "after-failure"))


def after_failure(op: runner.Operation, t: runner.HostRun) -> str:
    """After-failure hooks on t's host, which holds the lock and is back in a good state; called by
    recovery, so it never raises: a note for the error message when something went wrong."""
    try:
        reports = on_host(op, t, "after-failure", None, stop_at_failure=False, AYNA_STATUS="failed",
                          AYNA_FAILED_RELEASE=f"v{t.number}" if t.number else "")
    except AynaFabError as exc:
        return f"\nthe after-failure hooks did not run to their end: {exc.message}"
    return "".join(f"\nafter-failure {failure(r)}" for r in reports if not r["ok"])


# --- on the laptop -----------------------------------------------------------------------------

@dataclass
class Outcome:
    """How an operation ended, for the laptop's hooks (environment variables, never a secret)."""

    operation: str
    project: Project
    hosts: list[str]
    revision: str = ""
    op: runner.Operation | None = None
    problems: list[str] = field(default_factory=list)   # hooks that failed after the flip
    started: float = field(default_factory=time.monotonic)

    def track(self, op: runner.Operation) -> runner.Operation:
        self.op = op
        return op

    def env(self, status: str, step: str = "") -> dict[str, str]:
        targets = self.op.targets if self.op else []
        number = next((t.number for t in targets if t.number), None)
        revision = self.revision or next((r.revision for t in targets for r in t.releases if r.number == number), "")
        return {"AYNA_OPERATION": self.operation, "AYNA_PROJECT": self.project.name,
                "AYNA_RELEASE": f"v{number}" if number else "", "AYNA_REVISION": revision,
                "AYNA_HOSTS": ",".join(self.hosts), "AYNA_STATUS": status,
                "AYNA_DURATION": f"{time.monotonic() - self.started:.1f}", "AYNA_WHO": lock.who(),
                "AYNA_FAILED_STEP": step}


def on_laptop(project: Project, phase: str, env: dict[str, str], say: Callable[[str], None], *,
              dry_run: bool) -> list[str]:
    """The project's laptop hooks of a phase, in its source checkout, one after another; every one
    runs even if another failed. What went wrong, as lines."""
    problems = []
    for h in chosen(project, phase, laptop=True):
        if dry_run:
            say(f"[laptop] {listing_line(h, f'in {project.source}, as you')}")
            continue
        started = time.monotonic()
        try:
            proc = local.run_project(h.command, step=f"hook:{h.name}", timeout=h.timeout, cwd=project.source,
                                     env={**os.environ, **env})
            ok, why = proc.returncode == 0, f"exited {proc.returncode}"
            text = (proc.stdout + proc.stderr).rstrip("\n")
        except OperationFailed as exc:   # not installed, or past its timeout
            ok, why, text = False, exc.message, ""
        for line in text.splitlines():
            say(f"[laptop] hook:{h.name}: {line}")
        say(f"[laptop] hook:{h.name:<8} {time.monotonic() - started:6.2f}s" + ("" if ok else f"  FAILED ({why})"))
        if not ok:
            problems.append(f"[laptop] {phase} hook {h.name} {why}")
    return problems


@contextmanager
def laptop_hooks(outcome: Outcome, say: Callable[[str], None], *, dry_run: bool) -> Iterator[Outcome]:
    """Run the laptop's after-success or after-failure hooks once the block has ended; a failure
    goes on to its error (its exit code) once the hooks have run."""
    try:
        yield outcome
    except (AynaFabError, KeyboardInterrupt) as exc:
        step = getattr(exc, "step", None) or ("interrupted" if isinstance(exc, KeyboardInterrupt) else "")
        for line in on_laptop(outcome.project, "after-failure", outcome.env("failed", step), say, dry_run=dry_run):
            say(f"warning: {line}")
        raise
    outcome.problems += on_laptop(outcome.project, "after-success", outcome.env("success"), say, dry_run=dry_run)
    if dry_run:   # the plan lists what would run either way
        on_laptop(outcome.project, "after-failure", {}, say, dry_run=True)


def report(outcome: Outcome, warn: Callable[[str], None]) -> None:
    """Hooks that failed after the flip: warnings, or exit 1 with hook_failure = "fail". What is
    live stays live either way."""
    if not outcome.problems:
        return
    text = "\n".join(outcome.problems)
    if outcome.project.hook_failure == "fail":
        raise OperationFailed(f"the {outcome.operation} succeeded and stays live, but hooks after it failed:\n"
                              + text, step="hooks", hint='hook_failure = "fail" makes this exit 1; '
                                                         "fix the hook, then deploy again")
    for line in outcome.problems:
        warn(line)
