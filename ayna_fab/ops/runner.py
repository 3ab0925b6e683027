"""The one runner of operations: deploy, fleet deploy, rollback and fleet rollback are each a
list of named phases (deploy.py, rollback.py) that this module runs the same way.

It owns what every operation shares: the phases in order, each on every host, once
(on the migrate host) or in health-gated batches; parallel hosts; dry runs (the plan
printed, reads run, changes shown); step timing and output; Ctrl-C and SIGTERM; and
recovery: whatever fails, every host is put back (flipped hosts to the release they
served, the lock released) before the error is reported. docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import enum
import math
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field

from ayna_fab.remote import hostcall
from ayna_fab.ops import lockrecord as lock
from ayna_fab.config.model import DEFAULT_PARALLEL, Config, Host, Project
from ayna_fab.hostprog.backups import human_size
from ayna_fab.errors import AynaFabError, NeedsAttention, OperationFailed, UsageError
from ayna_fab.config.layout import Layout
from ayna_fab.ops.releasestates import Release
from ayna_fab.remote.transport import Command, Remote

Say = Callable[[str], None]
EACH, ONCE, BATCHES, FLEET = "each", "once", "batches", "fleet"


class RunState(enum.Enum):
    """How far one host's run has come: what recovery must undo there, and what is left to do.

    A run moves only along TRANSITIONS (HostRun.move); any other move is a bug and raises
    BadTransition. A dry run walks the same states: it takes no lock and changes nothing, but
    no recovery runs after it, so nothing reads what its states say of the lock."""

    NEW = "new"                      # nothing asked of the host yet
    LOCK_ASKED = "lock asked"        # the plan call asked for the lock: no answer yet, or no lock in it
    LOCKED = "locked"                # the lock is ours; nothing made on the host yet
    STAGED = "staged"                # releases/vN exists (deploys): a failure from here marks it failed
    ACTIVATING = "activating"        # the activation call is sent: the host carries it to its end, not us
    LIVE = "live"                    # current may point at the new release: failing now means putting the old back
    PUT_BACK = "put back"            # the old release serves again (or, with none, the units are stopped); lock ours
    RECORDED_LIVE = "recorded live"  # the new release is live and recorded, the lock released: nothing left to do
    RECORDED_FAILED = "recorded failed"  # the failure is recorded, the lock released: nothing left to undo
    RELEASED = "released"            # the lock let go with nothing to record (a rollback that never flipped)
    LOCK_LOST = "lock lost"          # the host says the lock is no longer this operation's: nothing more of ours runs

    def to(self, new: RunState) -> RunState:
        """new, if a run may move there from here; else the bug is named."""
        if new not in TRANSITIONS[self]:
            raise BadTransition(f"a host's run cannot go from {self.value} to {new.value}")
        return new

    @property
    def holds_lock(self) -> bool:
        return self in (RunState.LOCKED, RunState.STAGED, RunState.ACTIVATING, RunState.LIVE, RunState.PUT_BACK)

    @property
    def lock_in_doubt(self) -> bool:
        """The lock was asked for and is not known to be ours: recovery releases it by its token
        (the host keeps another operation's lock)."""
        return self in (RunState.LOCK_ASKED, RunState.LOCK_LOST)

    @property
    def flipped(self) -> bool:
        """current may point at the new release (or the host is making it so)."""
        return self in (RunState.ACTIVATING, RunState.LIVE, RunState.RECORDED_LIVE)

    @property
    def recorded(self) -> bool:
        """The host has recorded how the run ended: nothing left to undo. (It releases the lock then,
        or, while a step of the run still runs there, once that step has ended.)"""
        return self in (RunState.RECORDED_LIVE, RunState.RECORDED_FAILED)


S = RunState
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    S.NEW: frozenset({S.LOCK_ASKED}),
    S.LOCK_ASKED: frozenset({S.LOCKED}),
    S.LOCKED: frozenset({S.STAGED, S.ACTIVATING, S.RECORDED_FAILED, S.RELEASED, S.LOCK_LOST}),
    S.STAGED: frozenset({S.ACTIVATING, S.RECORDED_FAILED, S.LOCK_LOST}),
    # the host's answer; or the call never reached it (back where it was: LOCKED, STAGED, LIVE, or
    # ACTIVATING for a put-back sent before the answer of the activation it undoes)
    S.ACTIVATING: frozenset({S.LIVE, S.PUT_BACK, S.RECORDED_LIVE, S.RECORDED_FAILED, S.LOCKED, S.STAGED,
                             S.ACTIVATING, S.LOCK_LOST}),
    S.LIVE: frozenset({S.ACTIVATING, S.PUT_BACK, S.RECORDED_LIVE, S.LOCK_LOST}),
    S.PUT_BACK: frozenset({S.RECORDED_FAILED, S.RELEASED, S.LOCK_LOST}),
    S.RECORDED_LIVE: frozenset(),
    S.RECORDED_FAILED: frozenset(),
    S.RELEASED: frozenset(),
    S.LOCK_LOST: frozenset({S.LOCK_LOST}),   # a later call is told again
}
del S


class BadTransition(RuntimeError):
    """A host's run was moved where it cannot go: a bug in an operation, never a host's fault."""


@dataclass
class HostRun:
    """One host's run of an operation, filled in as the phases run."""

    config: Config
    host: Host
    project: Project
    remote: Remote
    owner: dict                       # the lock record this operation takes (its token)
    say: Say
    progress: object | None = None    # where step events go as they arrive (cli/progress.py); None: say each line
    plan: dict = field(default_factory=dict)
    releases: list[Release] = field(default_factory=list)
    live_before: Release | None = None   # the release that was live when this run began
    number: int | None = None              # the release this operation makes live
    state: RunState = RunState.NEW    # how far it has come; changed only by move()
    walked: list[RunState] = field(default_factory=list)   # the states it left, in order
    record: dict = field(default_factory=dict)   # the host's answer to recording it (the releases removed)
    deps_changed: bool = True
    backup: str | None = None         # the dump taken before migrating, named in failure messages
    prepare_steps: tuple[str, ...] = ()
    steps: dict[str, float] = field(default_factory=dict)
    failed_step: str | None = None    # the first step the host reported failed

    def move(self, to: RunState) -> None:
        """The one place a run's state changes: only along TRANSITIONS."""
        try:
            new = self.state.to(to)
        except BadTransition as bug:
            path = " -> ".join(s.value for s in (*self.walked, self.state))
            raise BadTransition(f"[{self.name}] {bug} (it went {path})") from None
        self.walked.append(self.state)
        self.state = new

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def layout(self) -> Layout:
        return Layout.of(self.config, self.project)

    @property
    def token(self) -> str:
        return self.owner["token"]

    @property
    def dry_run(self) -> bool:
        return self.remote.dry_run

    def show(self, step: str, seconds: float, ok: bool = True, note: str = "") -> None:
        self.steps[step] = round(seconds, 3)
        if not ok and self.failed_step is None:
            self.failed_step = step
        if self.progress is not None:
            self.progress.step(self.name, step, seconds, ok, note)
            return
        self.say(step_line(self.name, step, seconds, ok, note))

    def begin(self, step: str) -> None:
        """A step timed on the laptop begins: shown running if it takes a while."""
        if self.progress is not None:
            self.progress.begin(self.name, step)

    def hear(self, line: str) -> None:
        """One line of a host call's answer as it arrives: a step begun, ended, or a program's line."""
        ev = hostcall.event(line)
        if ev is None:
            return
        if ev.kind == hostcall.ENDS:
            self.show(ev.name, ev.seconds, ev.ok, note=describe_step(ev.detail))
        elif self.progress is not None:
            if ev.kind == hostcall.BEGINS:
                self.progress.begin(self.name, ev.name)
            else:
                self.progress.text(self.name, ev.text)
        elif ev.kind == hostcall.TEXT:
            self.say(f"[{self.name}] {ev.text}")

    def stop_if_interrupted(self) -> None:
        if self.remote.interrupted:
            raise KeyboardInterrupt(self.remote.interrupted)

    def call(self, command: Command, *, timeout: float | None = 600, show_steps: bool = True,
             stdin: str | bytes | None = None) -> dict | None:
        """Run one host call; its answer (None for a change in a dry run). The host's step lines
        are shown; a refusal comes back as {"error": ...}, except a lost lock, which stops here.
        A Ctrl-C seen during an earlier call stops the operation before this one is sent."""
        self.stop_if_interrupted()
        heard: list[str] = []

        def hear(line: str) -> None:   # each step is shown as it ends on the host
            heard.append(line)
            self.hear(line)

        try:
            res = self.remote.run(command, check=False, timeout=timeout, stdin=stdin,
                                  on_line=hear if show_steps else None)
        finally:
            if self.progress is not None:
                self.progress.idle(self.name)
        if self.dry_run and command.changes:
            return None
        data = hostcall.parse(res, host=self.name, step=command.step)
        if show_steps:   # a step line that did not arrive on its own (a transport that does not stream)
            for name, seconds, ok, detail in hostcall.steps(res.stdout)[len(hostcall.steps("\n".join(heard))):]:
                self.show(name, seconds, ok, note=describe_step(detail))
        if data.get("error") == "lock-lost":
            self.move(RunState.LOCK_LOST)
            raise NeedsAttention(data["detail"] + (f"; held now by {lock.holder_text(data['holder'])}"
                                                   if data.get("holder") else ""), host=self.name,
                                 step=command.step, hint=f"fab -H {self.name} status")
        return data


@dataclass(frozen=True)
class Phase:
    """A named step of an operation. scope: EACH host (in parallel), ONCE (on the operation's
    chosen host or hosts), BATCHES (health-gated groups, in order) or FLEET (laptop-side, all hosts)."""

    name: str
    run: Callable
    scope: str = EACH


class Operation:
    """What deploy and rollback define; the runner does the rest."""

    name = "operation"
    phases: list[Phase] = []
    targets: list[HostRun]
    parallel: int = DEFAULT_PARALLEL   # hosts an EACH phase works on at once; operations take their config's

    def once_targets(self) -> list[HostRun]:
        """Where a ONCE phase runs: one chosen host, or a few (a fleet whose hosts have databases of their own)."""
        return []

    def batches(self) -> list[list[HostRun]]:
        return [self.targets]

    def recover(self, t: HostRun, cause: BaseException, phase: str) -> AynaFabError:
        raise NotImplementedError

    def stays_live(self, t: HostRun) -> bool:
        """A flipped, healthy host that stays on the new release when another fails (fleets)."""
        return False

    def finish(self, t: HostRun) -> None:
        raise NotImplementedError


class PhaseFailed(Exception):
    def __init__(self, phase: str, failures: dict[str, BaseException]) -> None:
        super().__init__(phase)
        self.phase = phase
        self.failures = failures


def step_line(host: str, step: str, seconds: float, ok: bool = True, note: str = "") -> str:
    """A step that ended, as one line: `[host] step  seconds`, FAILED, what it made."""
    mark = "" if ok else "  FAILED"
    return f"[{host}] {step:<13} {seconds:6.2f}s{mark}{('  ' + note) if note else ''}"


def running_line(host: str, step: str, seconds: float) -> str:
    """A step still running, and for how long."""
    return f"[{host}] {step:<13} {seconds:6.0f}s  running"


def describe_step(detail: dict | None) -> str:
    """What a host step made, for its progress line (a backup's name and size)."""
    if detail and "backup" in detail:
        return f"{detail['backup']} ({human_size(detail['bytes'])})"
    if detail and isinstance(detail.get("skipped"), str):   # a backup not needed: nothing to migrate
        return detail["skipped"]
    if detail and detail.get("venv") == "reused":
        return f"the lock is unchanged: {detail['from']}'s venv, hard-linked"
    return ""


def reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted ({exc.args[0] if exc.args else 'Ctrl-C'})"
    if isinstance(exc, AynaFabError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def batches(items: list, spec: str) -> list[list]:
    """Split hosts into flip batches: all at once, N at a time, or a percentage (rounded up)."""
    if not items:
        return []
    if spec == "all":
        size = len(items)
    elif spec.endswith("%"):
        size = math.ceil(len(items) * int(spec[:-1]) / 100)
    else:
        size = int(spec)
    size = max(1, min(size, len(items)))
    return [items[i:i + size] for i in range(0, len(items), size)]


# --- running -----------------------------------------------------------------------------------

def run(op: Operation, say: Say) -> None:
    """Every phase in order; on any failure or interrupt, put every host back, then raise."""
    dry = op.targets and all(t.dry_run for t in op.targets)
    with signals_as_interrupts():
        try:
            for i, phase in enumerate(op.phases):
                for label, group in groups(op, phase):
                    if dry or (len(op.targets) > 1 and phase.scope in (ONCE, BATCHES)):
                        prefix = "fleet" if len(op.targets) > 1 else op.name
                        say(f"{prefix}: {label}: " + (", ".join(t.name for t in group) or "on the laptop"))
                    failures = each(phase, op, group)
                    if failures:
                        raise PhaseFailed(label, failures)
                    # An interrupt after the last phase, or once every host has recorded (the host
                    # carried the activation to its end), came too late to matter.
                    if i < len(op.phases) - 1 and not all(t.state.recorded for t in op.targets):
                        for t in group:
                            t.stop_if_interrupted()
        except (PhaseFailed, AynaFabError, KeyboardInterrupt, Exception) as exc:
            if dry:
                raise _first(exc) from None
            failures = exc.failures if isinstance(exc, PhaseFailed) else {t.name: exc for t in op.targets}
            label = exc.phase if isinstance(exc, PhaseFailed) else "start"
            for t in op.targets:    # the interrupt is being acted on: putting hosts back must not stop
                t.remote.interrupted = None
            with no_interrupts():
                raise recover_all(op, label, failures) from _first(exc)
        finally:
            for t in op.targets:   # seen through: the hosts' holders end quietly (hostprog/holder.py)
                t.remote.end_holder()


def groups(op: Operation, phase: Phase) -> Iterator[tuple[str, list[HostRun]]]:
    if phase.scope == FLEET:
        yield phase.name, []
    elif phase.scope == ONCE:
        chosen = op.once_targets()
        if chosen:
            yield f"{phase.name} ({'once' if len(chosen) == 1 else 'each database'})", chosen
    elif phase.scope == BATCHES:
        parts = op.batches()
        for i, group in enumerate(parts, 1):
            yield (f"batch {i}" if len(parts) > 1 or len(op.targets) > 1 else phase.name), group
    else:
        yield phase.name, op.targets


def each(phase: Phase, op: Operation, targets: list[HostRun]) -> dict[str, BaseException]:
    """phase.run on each target (at most op.parallel at once); failures by host. A Ctrl-C waits for
    the steps in flight, then counts as a failure of every host."""
    if phase.scope == FLEET:
        try:
            phase.run(op)
        except (AynaFabError, KeyboardInterrupt, Exception) as exc:
            return {t.name: exc for t in op.targets}
        return {}
    if len(targets) == 1:  # on the main thread: Ctrl-C during a remote command is seen there
        try:
            phase.run(op, targets[0])
        except (AynaFabError, KeyboardInterrupt, Exception) as exc:
            return {targets[0].name: exc}
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(op.parallel, len(targets)))) as pool:
        futures = {pool.submit(phase.run, op, t): t.name for t in targets}
        try:
            wait(futures)
        except KeyboardInterrupt as exc:
            with no_interrupts():
                wait(futures)
            return {name: exc for name in futures.values()}
    return {name: f.exception() for f, name in futures.items() if f.exception() is not None}


def recover_all(op: Operation, phase: str, failures: dict[str, BaseException]) -> AynaFabError:
    """Put every host back (or keep the healthy ones, see Operation.stays_live); the error to report."""
    first = next(iter(failures))
    outcome: dict[str, AynaFabError | None] = {}

    def one(_op, t: HostRun) -> None:
        if t.state.recorded:
            outcome[t.name] = None
            return
        if op.stays_live(t) and t.name not in failures:
            op.finish(t)
            outcome[t.name] = None
            return
        cause = failures.get(t.name) or OperationFailed(f"not flipped: {first} failed at {phase}",
                                                       host=t.name, step=phase)
        if t.state.lock_in_doubt:
            release_unconfirmed(t)
        outcome[t.name] = op.recover(t, cause, phase)

    problems = each(Phase("recover", one), op, op.targets)
    for name, exc in problems.items():
        outcome[name] = exc if isinstance(exc, NeedsAttention) else NeedsAttention(
            f"putting the host back failed: {reason(exc)}", host=name, step="restore",
            hint=f"fab -H {name} status")
    if len(op.targets) == 1:
        only, cause = outcome[op.targets[0].name], failures[first]
        return only or (cause if isinstance(cause, AynaFabError) else
                        OperationFailed(reason(cause), host=first, step=phase))
    lines = []
    for t in op.targets:
        err = outcome.get(t.name)
        if isinstance(err, NeedsAttention):
            lines.append(f"    {t.name}: NEEDS ATTENTION: {err.message}")
        elif err is None and op.stays_live(t):
            lines.append(f"    {t.name}: serving v{t.number} (kept: on_failure = stop)")
        else:
            serving = t.live_before.name if t.live_before else (
                "nothing (no earlier release)" if t.plan else "what it served (not changed)")
            lines.append(f"    {t.name}: serving {serving}")
    shared = failures[first]
    if isinstance(shared, UsageError) and all(e is shared for e in failures.values()):
        # the fleet as a whole was refused (a laptop-side phase): no host failed, and its hint stands
        return UsageError(f"fleet {op.name} stopped at {phase}: {shared.message}\n" + "\n".join(lines),
                          step=phase, hint=shared.hint)
    why = reason(failures[first])
    cls = NeedsAttention if any(isinstance(e, NeedsAttention) for e in outcome.values()) else (
        UsageError if phase == "lock + plan" and all(isinstance(e, UsageError) for e in failures.values())
        else OperationFailed)
    return cls(f"fleet {op.name} stopped at {phase}: {first} failed: {why}\n" + "\n".join(lines), step=phase,
               hint="fix the failing host and try again; fab status shows every host")


def release_unconfirmed(t: HostRun) -> None:
    """The lock was asked for but the answer never came: release it if it is ours (the token
    says so; another operation's lock stays). If the host cannot be reached, the message of
    the failure that brought us here already names the host."""
    from ayna_fab.commands import hostcalls as cmd
    try:
        t.call(cmd.unlock(t.layout, t.token))
    except AynaFabError:
        pass


def _first(exc: BaseException) -> BaseException:
    if isinstance(exc, PhaseFailed):
        return next(iter(exc.failures.values()))
    return exc


# --- signals -------------------------------------------------------------------------------------

@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM (a CI job cancelled, a system shutting down) is handled like Ctrl-C: the operation
    stops at the next safe point and every host is put back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def term(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def no_interrupts() -> Iterator[None]:
    """While putting hosts back, a second Ctrl-C or SIGTERM must not leave them half-restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
