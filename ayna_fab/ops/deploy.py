"""The deploy pipeline, one host or a fleet, as named phases read top to bottom.

    lock + plan  each host: take the lock, read its releases
    choose number  the laptop: one release number for every host, where migrate runs
    prepare      each host: upload what changed, install, check, collectstatic
                 (one host alone: back up, migrate and the pre-flip check here too)
    migrate      a fleet, once, on its migrate host: back the database up, migrate (hosts with
                 database = "own": each backs up and migrates its own)
    preflight    a fleet, each host: the new release's web and api started privately
                 until healthy (the pre-flip check), then stopped
    before flip  each host: the project's before-flip hooks, in the new release
    activate     in health-gated batches: flip, restart, health, verify
    after success  every host live and healthy: the after-success hooks (never change what is live)
    record       each host: states, log line, clean up old releases, unlock

Build steps run on the laptop before all of this (build.py); after-install hooks run inside
prepare, after-failure hooks in recovery, the laptop's hooks once it is over (hooks.py).

Everything before activate leaves the live site untouched: a failure there marks
the half-built release failed. A failure at or after the flip puts the previous
release back; runner.py runs the phases and the recovery.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ayna_fab.ops import activation, build, dbshare, hooks, lockrecord as lock, planchecks, releasestates as releases, runner
from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config.model import Config, Project
from ayna_fab.errors import AynaFabError, NeedsAttention, OperationFailed, UsageError
from ayna_fab.hostprog import backups as backup_rules
from ayna_fab.ops.gitsource import Source
from ayna_fab.scan import python as pyversion
from ayna_fab.ops.runner import BATCHES, EACH, FLEET, ONCE, HostRun, Phase, RunState

# No laptop-side cap on prepare (install, backup, migrate can take long): the host-side step
# runs to its end whatever the link does, and holds the lock until it has ended.
PREPARE_TIMEOUT = None


@dataclass(frozen=True)
class Options:
    ref: str = "HEAD"
    dry_run: bool = False
    message: str = ""
    verify_timeout: float = 30.0
    health_timeout: float = 60.0
    batch: str = "all"            # fleets: "all", a number of hosts, or "N%"
    on_failure: str = "rollback"  # fleets: roll every flipped host back, or "stop" and keep them


def resolve(project: Project, ref: str) -> tuple[Source, str]:
    """Local and first: a bad ref or source fails here, before any connection."""
    source = Source.open(project.source)
    revision = source.resolve(ref)
    planchecks.unlocked(project.name, str(project.source), revision,
                        source.texts(revision, ("uv.lock",)))
    return source, revision


def host_releases(plan: dict, warn=None) -> list[releases.Release]:
    """The host's release listing as Release values. Its records are the host's word: a revision
    that is no commit hash becomes "" (warn says so), any other text field that is no text "";
    nothing else of them reaches git or a laptop hook."""
    def text(value: object) -> str:
        return value if isinstance(value, str) else ""

    out = []
    for r in plan.get("releases", []):
        m = r["meta"] or {}
        revision = releases.revision(m.get("revision"))
        if revision is None and m.get("revision", "") != "" and warn:
            warn(f"v{r['number']}'s record holds a revision that is no commit hash; it is ignored")
        out.append(releases.Release(number=r["number"], state=text(m.get("state", "failed")),
                                    revision=revision or "", ref=text(m.get("ref", "")),
                                    deployed_by=text(m.get("deployed_by", "")),
                                    deployed_at=text(m.get("deployed_at", "")), complete=r["complete"], meta=m))
    return out


def lock_and_plan(t: HostRun, lock_record: dict | None) -> None:
    """Take the deploy lock and read the releases in one round trip (a dry run takes no lock)."""
    started = time.monotonic()
    t.move(RunState.LOCK_ASKED)
    res = t.call(cmd.plan(t.layout, t.project, lock_record))
    if res.get("error") == "no-layout":
        raise UsageError(f"{res['detail']}: the host is not set up for {t.project.name}", host=t.name,
                         step="plan", hint=f"fab -H {t.name} setup")
    if res.get("error") == "locked":
        raise lock.held_error(t.name, res["holder"], "lock")
    t.move(RunState.LOCKED)   # the plan call stays on as the lock's holder (hostprog/holder.py)
    if res.get("took_over"):
        t.say(f"[{t.name}] {took_over(res['took_over'])}")
    t.plan = res
    t.releases = host_releases(res, lambda text: t.say(f"warning: [{t.name}] {text}"))
    t.live_before = releases.active(t.releases, res["current"])
    t.steps["lock + plan"] = round(time.monotonic() - started, 3)


def took_over(what: dict) -> str:
    """What the host did with a lock whose laptop was gone, before this operation took it."""
    op = f"the {what.get('operation') or 'operation'} of {lock.holder_text(what.get('holder') or {})}"
    n, back = what.get("number"), what.get("back")
    done = {"live": f"its activation of v{n} had completed: v{n} is live and recorded",
            "restored": f"its activation of v{n} had not completed: v{back} was put back",
            "stopped": f"its activation of v{n} had not completed: the units were stopped",
            "restore-failed": f"its activation of v{n} failed and putting v{back} back failed too"}
    return (f"the deploy lock was left by {op}, whose connection is gone; the host settled it: "
            + done.get(what.get("outcome"), "nothing of it had reached the live site; its release is marked failed"))


class Deploy(runner.Operation):
    """A deploy of one revision of one project to one or more hosts."""

    name = "deploy"

    def __init__(self, config: Config, project: Project, source: Source, revision: str, options: Options,
                 targets: list[HostRun], built: build.Built | None = None) -> None:
        self.config, self.project, self.source, self.revision = config, project, source, revision
        self.options = options
        self.targets = targets
        self.parallel = config.defaults.parallel
        self.lock_blob = source.blob(revision, "uv.lock")
        # the Python the project needs and its uv.lock, read once before any connection (planchecks.py)
        texts = source.texts(revision, (*pyversion.FILES, "uv.lock"))
        self.python = pyversion.declared(texts, project.python)
        self.lock_text = texts.get("uv.lock")
        self.built = built or build.Built()   # the build steps' outputs, made before any connection
        self.hook_problems: list[str] = []     # after-success hooks that failed (the release stays live)
        self.phases = PHASES

    def once_targets(self) -> list[HostRun]:
        """A fleet's migrate: once on its shared database's host, and on each host with its own."""
        return dbshare.migrators(self.targets) if len(self.targets) > 1 else []

    def batches(self) -> list[list[HostRun]]:
        return runner.batches(self.targets, self.options.batch)

    def stays_live(self, t: HostRun) -> bool:
        return self.options.on_failure == "stop" and t.state.flipped and len(self.targets) > 1

    # -- the phases ---------------------------------------------------------------------------

    def lock_and_plan(self, t: HostRun) -> None:
        lock_and_plan(t, None if t.dry_run else t.owner)
        if not t.plan["env_file"]:
            raise UsageError(f"{t.layout.env_file} does not exist, so the release would start without its "
                             "settings", host=t.name, step="plan", hint=f"fab -H {t.name} setup (with env_file set)")
        if not t.plan["uv"]:
            raise UsageError("uv is not installed on the host", host=t.name, step="plan",
                             hint=f"fab -H {t.name} setup")
        # an impossible backup, a stale uv config, a Python too old, a port held by another program,
        # locked packages the host cannot build
        planchecks.refuse(t, backup_due=self.backup_due(t), python=self.python, lock=self.lock_text)
        was = t.live_before.meta.get("env") if t.live_before else None
        if isinstance(was, str) and was != t.project.env:   # a host moved to another stage in hosts.toml
            t.say(f"warning: [{t.name}] {t.live_before.name} runs {t.project.name} as {was}; this deploy makes it "
                  f"{t.project.env} (shared/.env.{t.project.env})")
        t.deps_changed = t.live_before is None or t.live_before.meta.get("lock_blob") != self.lock_blob
        t.show("lock + plan", t.steps["lock + plan"],
               note=f"v{t.plan['next']} (live: {t.live_before.name if t.live_before else 'none'}; "
                    f"dependencies {'changed' if t.deps_changed else 'unchanged'})")

    def choose_number(self) -> None:
        """One release number for the whole fleet; migrate once: here on a lone host, else on one."""
        number = max(t.plan["next"] for t in self.targets)
        alone = len(self.targets) == 1
        for t in self.targets:
            t.number = number
            t.prepare_steps = prepare_steps(migrates=alone, backup=self.backup_due(t))
        if not alone:
            dbshare.refuse_unshared(self.targets)
            mig = dbshare.migrators(self.targets)
            where = (f"once, on {mig[0].name}" if len(mig) == 1 else
                     f"on {len(mig)} databases, each on its host: {', '.join(t.name for t in mig)}")
            self.targets[0].say(f"fleet: v{number} on {len(self.targets)} hosts; migrations run {where}")

    def backup_due(self, t: HostRun) -> bool:
        """A dump before migrating (backup_before_migrate); a first deploy has no data of its own to lose."""
        return backup_rules.before_migrate(self.project) and t.live_before is not None

    def prepare(self, t: HostRun) -> None:
        """Send only what changed since the live release (the rest is copied on the host), then
        install, check and collect static files: nothing live changes."""
        self.upload(t)
        self.run_prepare(t, t.prepare_steps)

    def upload(self, t: HostRun) -> None:
        started = time.monotonic()
        t.begin("upload")   # timed here: the archive, its transfer and the host's staging
        was = t.live_before
        base = was if was and was.complete and self.source.has_commit(was.revision) else None
        if base:
            changed, deleted = self.source.changes(base.revision, self.revision)
            outputs, gone = build.changes(self.built, base.meta, changed)
            deleted += gone
            data = self.source.archive(self.revision, changed) if changed else None
        else:
            changed, deleted = None, []
            outputs = sorted(self.built.files)
            data = self.source.archive(self.revision)
        data = build.with_files(data, self.built, outputs)
        meta = {"release": f"v{t.number}", "number": t.number, "revision": self.revision, "ref": self.options.ref,
                "deployed_by": lock.who(), "deployed_at": lock.now(), "lock_blob": self.lock_blob,
                "project": self.project.name, "env": t.project.env, **({"build": self.built.digests} if self.built.files else {})}
        # The archive and the deleted names travel on the stage call's stdin: no session of their own.
        command, upload = cmd.stage(t.layout, t.token, t.number, base.number if base else None, data, deleted, meta)
        t.move(RunState.STAGED)
        res = t.call(command, show_steps=False, stdin=upload or None) \
            or {"unpacked": len(changed) + len(outputs) if changed is not None else "all", "copied": "the rest"}
        t.show("upload", time.monotonic() - started,
               note=f"{len(data or b'')} bytes; {res.get('unpacked')} files sent, {res.get('copied')} copied"
                    + (f" from {base.name}" if base else ""))

    def run_prepare(self, t: HostRun, steps: tuple[str, ...]) -> None:
        was = t.live_before
        base_venv = f"{t.layout.release(was.number)}/.venv" if was and was.complete else None
        after_install = hooks.for_host(self, t, "after-install") if "install" in steps else []
        hooks.list_planned(t, after_install, f"in v{t.number}, after install")
        res = t.call(cmd.prepare(t.layout, t.project, t.token, t.number, list(steps), base_venv,
                                 was.name if was else None,
                                 backup_rules.keep_for(self.project, self.config.defaults), tuple(after_install),
                                 hooks.env_for(self, t)),
                     timeout=PREPARE_TIMEOUT)
        if res is None:
            return
        hooks.show(t, res.get("hooks") or [])
        for step, text in res.get("notes") or []:   # Django's check warnings: shown, not failing
            t.say(f"[{t.name}] {step}: " + text.replace("\n", "\n    "))
        if res.get("backup"):
            t.backup = res["backup"]["backup"]
        if res.get("error"):
            raise OperationFailed(res["detail"], host=t.name, step="prepare")
        if res["failed"] == "preflight":
            raise OperationFailed(f"v{t.number} failed its pre-flip check, so it never took traffic:\n"
                                  + activation.indent(res.get("output", "")), host=t.name, step="preflight",
                                  hint=HINTS["preflight"])
        if res["failed"]:
            hint = hooks.BEFORE_FLIP_HINT if res["failed"].startswith("hook:") else HINTS.get(res["failed"])
            raise OperationFailed(f"{res['failed']} failed:\n" + activation.indent(res.get("output", "")),
                                  host=t.name, step=res["failed"], hint=hint)

    def migrate(self, t: HostRun) -> None:
        self.run_prepare(t, migrate_steps(self.backup_due(t)))

    def preflight(self, t: HostRun) -> None:
        """A fleet's pre-flip check, once the database is migrated (a lone host did it in prepare)."""
        if len(self.targets) > 1:
            preflight(t)

    def before_flip(self, t: HostRun) -> None:
        hooks.before_flip(self, t)

    def after_success(self) -> None:
        self.hook_problems = hooks.after_success(self)

    def activate(self, t: HostRun) -> None:
        """The host carries this to its end: on failure it puts the live release back and records
        that itself; a lone host records success too (a fleet's laptop does, once every batch is in)."""
        ok = cmd.record(self.project, *self.success(t))
        on_ok, on_failure = hooks.records_itself(self, t)
        res = activation.activate(t, t.number, activation.unit_actions(self.project),
                                  verify_timeout=self.options.verify_timeout,
                                  health_timeout=self.options.health_timeout, restore=True,
                                  on_ok=ok if on_ok else None, pending=None if on_ok else ok,
                                  on_failure=cmd.record(self.project, *self.failure(t, "activate"))
                                  if on_failure else None)
        if len(self.targets) == 1:
            activation.too_late_to_stop(t, res)
        if res is None or res["ok"]:
            return
        step = "verify" if res["result"].get("healthy") else "health"
        why = res.get("reason") or activation.failure_text(res["result"])
        if res["outcome"] == "failed":   # the host was not to go back (a fleet's put_back)
            raise OperationFailed(why, host=t.name, step=step)
        if not t.state.recorded:   # restored, and left for the after-failure hooks to run under the lock
            why += hooks.after_failure(self, t)
            self.record_failure(t, why, step, restored=t.live_before.name if t.live_before else None)
        raise rolled_back(t, step, why)

    def success(self, t: HostRun) -> tuple[dict, dict, dict, list[int]]:
        """What a successful activation records: states, meta, the log line, releases to remove."""
        old = t.live_before.number if t.live_before else None
        states = releases.after_activation(t.releases + [releases.Release(t.number, "active")], t.number, old)
        merged = [releases.Release(x.number, states.get(x.number, x.state), complete=x.complete)
                  for x in t.releases] + [releases.Release(t.number, "active")]
        remove = releases.to_remove(merged, t.number, self.config.defaults.keep_releases)
        log = {"event": "deploy", "result": "ok", "release": f"v{t.number}",
               "previous": t.live_before.name if t.live_before else None, "revision": self.revision,
               "ref": self.options.ref,
               "by": lock.who(), "at": lock.now(), "steps": t.steps, "message": self.options.message,
               **({"hook_problems": self.hook_problems} if self.hook_problems else {})}
        return states, {t.number: {"steps": t.steps}}, log, remove

    def failure(self, t: HostRun, step: str, why: str = "", restored: str | None = None) -> tuple[dict, dict, dict]:
        """What a failed deploy records: the release failed, and a log line."""
        log = {"event": "deploy", "result": "failed", "release": f"v{t.number}", "failed_step": step,
               "reason": why[-2000:], "restored": restored, "revision": self.revision, "ref": self.options.ref,
               "by": lock.who(), "at": lock.now(), "steps": t.steps}
        staged = t.state in (RunState.STAGED, RunState.PUT_BACK)   # releases/vN was made (before any flip)
        states = {t.number: "failed"} if staged and t.number else {}
        meta = {t.number: {"steps": t.steps, "failed_step": step}} if states else {}
        return states, meta, log

    def finish(self, t: HostRun) -> None:
        """Record the new states and a log line, clean up old releases (not in the way), unlock."""
        started = time.monotonic()
        if not t.state.recorded:   # else a lone host's activation recorded itself
            states, meta, log, remove = self.success(t)
            t.record = t.call(cmd.finish(t.layout, t.project, t.token, states, meta, log, remove)) or {}
            t.move(RunState.RECORDED_LIVE)
        removed = [int(n) for n in t.record.get("removed", [])] if not t.dry_run else \
            self.success(t)[3]
        verb = "would remove" if t.dry_run else "removed"
        t.show("record", time.monotonic() - started,
               note=f"{verb} {', '.join(f'v{n}' for n in removed)}" if removed else "")

    # -- failing well -------------------------------------------------------------------------

    def recover(self, t: HostRun, cause: BaseException, phase: str) -> AynaFabError:
        """Put t's host back in a good state after cause; the error to report for it."""
        why = runner.reason(cause)
        step = getattr(cause, "step", None) or phase
        if isinstance(cause, NeedsAttention) and (not t.state.holds_lock or t.state is RunState.ACTIVATING):
            return cause   # the lock is gone, or the host is carrying the activation itself
        if not t.state.holds_lock:  # failed before we held the lock: nothing of ours to undo
            return cause if isinstance(cause, AynaFabError) else OperationFailed(why, host=t.name, step=step)
        try:
            if not t.state.flipped:
                live = t.live_before.name if t.live_before else "nothing (first deploy)"
                hint = getattr(cause, "hint", None)
                why += hooks.after_failure(self, t)   # in the live release, still under the lock
                try:
                    self.record_failure(t, why, step, restored=None)
                except AynaFabError as lost:  # unreachable, or a step still runs there: the lock stays
                    why += (f"\nthe lock could not be released from here ({lost.message}); the host releases "
                            "it by itself once this laptop's connection is gone and its steps have ended")
                    hint = lost.hint or f"fab -H {t.name} status shows when it has"
                if t.backup and step == "migrate":
                    hint = (hint or "") + f"; the database was dumped first: {backup_rules.restore_hint(t.name, t.backup)}"
                what = f"deploy of v{t.number}" if t.number else "the deploy"
                return OperationFailed(f"{what} failed at {step}; the live site is untouched "
                                       f"(still {live})\n{activation.indent(why)}", host=t.name, step=step, hint=hint)
            restored = activation.put_back(t)
            why += hooks.after_failure(self, t)   # on the release put back, still under the lock
            self.record_failure(t, why, step, restored=restored)
            return rolled_back(t, step, why)
        except AynaFabError as again:
            return NeedsAttention(f"v{t.number} failed ({why}) and restoring failed too: {again}",
                                  host=t.name, step="restore",
                                  hint=f"look at the host now: fab -H {t.name} status; then fab -H {t.name} rollback"
                                       + (f" --to {t.live_before.name}" if t.live_before else "")
                                       + f"; the deploy lock is left in place: fab -H {t.name} unlock")

    def record_failure(self, t: HostRun, why: str, step: str, restored: str | None) -> None:
        states, meta, log = self.failure(t, step, why, restored)
        res = t.call(cmd.finish(t.layout, t.project, t.token, states, meta, log, []))
        t.move(RunState.RECORDED_FAILED)
        if res and res.get("unlocked") == "busy":
            raise_busy(t)


def rolled_back(t: HostRun, step: str, why: str) -> OperationFailed:
    """The error for a release that failed after the flip, once the host is back on t.live_before (or,
    with none, its units stopped), by the host's own worker or by recovery."""
    what = (f"rolled back to {t.live_before.name}, which is serving and healthy" if t.live_before else
            "no earlier release existed: the units were stopped and current removed")
    hint = "fix the release and deploy again"
    if t.backup:
        hint += (f"; v{t.number} migrated the database, which was dumped first: "
                 + backup_rules.restore_hint(t.name, t.backup))
    return OperationFailed(f"v{t.number} failed after the flip at {step}; {what}\n{activation.indent(why)}",
                           host=t.name, step=step, hint=hint)


def raise_busy(t: HostRun) -> None:
    """The host still runs a step of this deploy (the link dropped while it ran): it finishes on its
    own, and the lock stays until it has, so nobody deploys over it."""
    raise OperationFailed("a step of this deploy is still running on the host; it will finish there, and "
                          "the deploy lock stays until it has ended, then the host releases it by itself",
                          host=t.name, step="record", hint=f"fab -H {t.name} status shows it")


def preflight(t: HostRun) -> None:
    """The pre-flip check alone (fleets, rollbacks): raise if vN's web or api is not healthy."""
    res = t.call(cmd.preflight(t.layout, t.project, t.token, t.number))
    if res is not None and res["failed"]:
        raise OperationFailed(f"v{t.number} failed its pre-flip check, so it never took traffic:\n"
                              + activation.indent(res.get("output", "")), host=t.name, step="preflight",
                              hint=HINTS["preflight"])


def prepare_steps(*, migrates: bool, backup: bool) -> tuple[str, ...]:
    """What prepare runs on a host: a lone host migrates and checks the release privately here too;
    a fleet does those later, once all hosts are prepared."""
    if migrates:
        return ("install", *(("backup",) if backup else ()), "check", "migrate", "collectstatic", "preflight")
    return ("install", "check", "collectstatic")


def migrate_steps(backup: bool) -> tuple[str, ...]:
    return (*(("backup",) if backup else ()), "migrate")


HINTS = {
    "install": "check uv.lock and that the host's package index has every locked wheel",
    "backup": "is PostgreSQL up, and DATABASE_URL in the host's .env right? (or backup_before_migrate = false)",
    "check": "the app does not import, fails `manage.py check --deploy` (run it locally), or would keep "
             "uploads inside the release (the fix is above)",
    "migrate": "the migration failed and was rolled back by PostgreSQL; fix it and deploy again",
    "collectstatic": "collectstatic failed; run it locally to see why",
    "preflight": "the new release's web or api did not answer its health endpoint when started on its own; "
                 "its output is above (the live site never saw it)",
}

PHASES = [
    Phase("lock + plan", Deploy.lock_and_plan, EACH),
    Phase("choose number", Deploy.choose_number, FLEET),
    Phase("prepare", Deploy.prepare, EACH),     # upload, install, after-install hooks, check, collectstatic (+ migrate alone)
    Phase("migrate", Deploy.migrate, ONCE),     # fleets: backup and migrate on one host (or each own database)
    Phase("preflight", Deploy.preflight, EACH),  # fleets: the pre-flip check on every host
    Phase("before flip", Deploy.before_flip, EACH),      # hooks, on every host before any flips
    Phase("activate", Deploy.activate, BATCHES),
    Phase("after success", Deploy.after_success, FLEET),  # hooks, once every host is live
    Phase("record", Deploy.finish, EACH),
]
