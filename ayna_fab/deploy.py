"""The deploy pipeline for one host and project, as named steps read top to bottom.

    resolve ref -> connect -> lock + plan -> upload -> backup -> install -> check -> migrate
    -> collectstatic -> flip -> restart -> verify -> health -> record, clean up, unlock

Everything before the flip leaves the live site untouched: a failure there marks
the half-built release failed. A failure at or after the flip puts the previous
release back (flip, restart, verify, health) and exits 1; if even that fails,
exit 3 says what to run. The lock is released on every path, Ctrl-C included.
"""

from __future__ import annotations

import getpass
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ayna_fab import backup as backup_rules
from ayna_fab import releases, units
from ayna_fab.commands import backup as backup_cmd
from ayna_fab.commands import ops as ops_cmd
from ayna_fab.commands import release as cmd
from ayna_fab.config import Config, Host, Project
from ayna_fab.errors import AynaFabError, NeedsAttention, OperationFailed, UsageError
from ayna_fab.gitsource import Source
from ayna_fab.layout import Layout
from ayna_fab.remote import Remote

Say = Callable[[str], None]
PREPARE_STEPS = ("install", "check", "migrate", "collectstatic")


@dataclass
class Options:
    ref: str = "HEAD"
    dry_run: bool = False
    message: str = ""
    verify_timeout: float = 30.0
    health_timeout: float = 60.0


@dataclass
class Deploy:
    """One deploy's facts, filled in as the steps run."""

    config: Config
    host: Host
    project: Project
    source: Source
    revision: str
    options: Options
    say: Say
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    plan: dict = field(default_factory=dict)
    number: int | None = None
    base: releases.Release | None = None          # the live release when we started
    deps_changed: bool = True
    steps: dict[str, float] = field(default_factory=dict)
    flipped: bool = False
    locked: bool = False
    prepare_steps: tuple[str, ...] = PREPARE_STEPS   # a fleet migrates on one host only
    progress: object | None = None    # a fleet's live table (output.LiveHosts) on a terminal
    backup: str | None = None         # the dump taken before migrating, named in failure messages

    @property
    def layout(self) -> Layout:
        return Layout.of(self.config, self.project)

    @property
    def name(self) -> str:
        return self.host.name

    def show(self, step: str, seconds: float, ok: bool = True, note: str = "") -> None:
        self.steps[step] = round(seconds, 3)
        if self.progress is not None:
            self.progress.step(self.name, step, seconds, ok, note)
            return
        mark = "" if ok else "  FAILED"
        self.say(f"[{self.name}] {step:<13} {seconds:6.2f}s{mark}{('  ' + note) if note else ''}")


def resolve(config: Config, host: Host, project: Project, options: Options) -> tuple[Source, str]:
    """Local and first: a bad ref or source fails here, before any connection."""
    source = Source.open(project.source)
    return source, source.resolve(options.ref)


def lock_info(d: Deploy) -> dict:
    return {"by": getpass.getuser(), "from": socket.gethostname(), "pid": os.getpid(), "token": d.token,
            "at": _now(), "message": d.options.message, "ref": d.options.ref, "revision": d.revision}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def host_releases(plan: dict) -> list[releases.Release]:
    out = []
    for r in plan.get("releases", []):
        m = r["meta"] or {}
        out.append(releases.Release(number=r["number"], state=m.get("state", "failed"),
                                    revision=m.get("revision", ""), ref=m.get("ref", ""),
                                    deployed_by=m.get("deployed_by", ""), deployed_at=m.get("deployed_at", ""),
                                    complete=r["complete"], meta=m))
    return out


# --- the steps -------------------------------------------------------------------------------

def step_lock_and_plan(d: Deploy, r: Remote) -> None:
    """Take the deploy lock and read the releases in one round trip (a dry run takes no lock)."""
    t = time.monotonic()
    args = {"root": d.layout.root, "env_file": d.layout.env_file, "units": units.unit_names(d.project),
            "lock": None if d.options.dry_run else lock_info(d)}
    res = cmd.parse(r.run(cmd.host_program("plan", args, changes=False)).stdout)
    if res.get("error") == "no-layout":
        raise UsageError(f"{res['detail']}: the host is not set up for {d.project.name}", host=d.name,
                         step="plan", hint=f"fab -H {d.name} setup")
    if res.get("error") == "locked":
        h = res["holder"]
        raise OperationFailed(
            f"another deploy holds the lock: {h.get('by')}@{h.get('from')} (pid {h.get('pid')}) since "
            f"{h.get('at')}" + (f", {h.get('message')!r}" if h.get("message") else "") + "; nothing was changed",
            host=d.name, step="lock",
            hint=f"wait for it, or if it died: fab -H {d.name} unlock (add --force if it is not stale)")
    d.locked = not d.options.dry_run
    d.plan = res
    d.number = res["next"]
    rels = host_releases(res)
    d.base = releases.active(rels, res["current"])
    if not res["env_file"]:
        raise UsageError(f"{d.layout.env_file} does not exist, so the release would start without its "
                         "settings", host=d.name, step="plan", hint=f"fab -H {d.name} setup (with env_file set)")
    if not res["uv"]:
        raise UsageError("uv is not installed on the host", host=d.name, step="plan",
                         hint=f"fab -H {d.name} setup")
    lock_blob = d.source.blob(d.revision, "uv.lock")
    d.deps_changed = d.base is None or d.base.meta.get("lock_blob") != lock_blob
    live = d.base.name if d.base else "none"
    d.show("lock + plan", time.monotonic() - t,
           note=f"v{d.number} (live: {live}; dependencies {'changed' if d.deps_changed else 'unchanged'})")


def step_upload(d: Deploy, r: Remote) -> None:
    """Send only what changed since the live release; the rest is hard-linked on the host."""
    t = time.monotonic()
    base = d.base if d.base and d.base.complete and d.source.has_commit(d.base.revision) else None
    if base:
        changed, deleted = d.source.changes(base.revision, d.revision)
        data = d.source.archive(d.revision, changed) if changed else None
    else:
        changed, deleted = None, []
        data = d.source.archive(d.revision)
    archive = f"{d.layout.releases}/.upload-v{d.number}.tar.gz" if data else None
    if data:
        r.put_bytes(data, archive, step="upload")
    meta = {"release": f"v{d.number}", "number": d.number, "revision": d.revision, "ref": d.options.ref,
            "deployed_by": f"{getpass.getuser()}@{socket.gethostname()}", "deployed_at": _now(),
            "lock_blob": d.source.blob(d.revision, "uv.lock"), "project": d.project.name}
    links = {".env": d.layout.env_file, "media": f"{d.layout.shared}/media"}
    result = r.run(cmd.host_program("stage", {
        "root": d.layout.root, "number": d.number, "base": base.number if base else None,
        "archive": archive, "deleted": deleted, "meta": meta, "links": links}))
    res = {"unpacked": len(changed) if changed is not None else "all", "linked": "the rest"} if r.dry_run \
        else cmd.parse(result.stdout)
    d.show("upload", time.monotonic() - t,
           note=f"{len(data or b'')} bytes; {res.get('unpacked')} files sent, {res.get('linked')} linked"
                + (f" from {base.name}" if base else ""))


def step_backup(d: Deploy, r: Remote) -> None:
    """Dump the database before this deploy migrates it (backup_before_migrate, keep_backups)."""
    if "migrate" not in d.prepare_steps or not backup_rules.before_migrate(d.project) or d.base is None:
        return  # a first deploy has no data of its own to lose
    t = time.monotonic()
    res = r.run(backup_cmd.take_backup(d.layout, d.project, d.base.name,
                                       backup_rules.keep_for(d.project, d.config.defaults)))
    if r.dry_run:
        return
    d.backup = ops_cmd.result(res.stdout)["backup"]
    d.show("backup", time.monotonic() - t, note=d.backup)


def step_prepare(d: Deploy, r: Remote) -> None:
    """Install the venv, then check, migrate and collect static files: nothing live changes yet."""
    base_venv = f"{d.layout.release(d.base.number)}/.venv" if d.base and d.base.complete else None
    args = {"root": d.layout.root, "number": d.number, "steps": list(d.prepare_steps), "base_venv": base_venv,
            "env_file": d.layout.env_file, "uv_cache": d.layout.uv_cache, "django_dir": d.project.django_dir,
            "asgi_dir": d.project.asgi_dir, "asgi_app": d.project.asgi_app if "api" in d.project.services else None}
    result = r.run(cmd.host_program("prepare", args), check=False, timeout=1800)
    if r.dry_run:
        return
    res = _parse_or_fail(d, result, "prepare")
    for name in d.prepare_steps:
        if name in res["steps"]:
            d.show(name, res["steps"][name], ok=res["failed"] != name)
    if res["failed"]:
        raise OperationFailed(f"{res['failed']} failed:\n" + _indent(res.get("output", "")), host=d.name,
                              step=res["failed"], hint=_hint_for(res["failed"]))


def _hint_for(step: str) -> str:
    return {
        "install": "check uv.lock and that the host's package index has every locked wheel",
        "check": "the app does not import or fails `manage.py check --deploy`; run it locally",
        "migrate": "the migration failed and was rolled back by PostgreSQL; fix it and deploy again",
        "collectstatic": "collectstatic failed; run it locally to see why",
    }.get(step, "see the output above")


def unit_actions(project: Project, deps_changed: bool, restart_all: bool) -> list[tuple[str, str]]:
    """gunicorn reloads gracefully (HUP, new workers import through `current`) unless the venv changed;
    uvicorn, the Celery worker and beat are restarted, so their processes run from the new release."""
    actions = []
    for service in project.services:
        graceful = service == "web" and not deps_changed and not restart_all
        actions.append((units.unit_name(project, service), "reload-or-restart" if graceful else "restart"))
    return actions


def health_checks(project: Project) -> list[dict]:
    return [{"name": s, "url": f"http://127.0.0.1:{project.port(s)}{project.health[s]}"}
            for s in ("web", "api") if s in project.services and s in project.health]


def activate_args(d: Deploy, number: int, actions: list[tuple[str, str]]) -> dict:
    return {"root": d.layout.root, "number": number, "units": actions, "health": health_checks(d.project),
            "http_units": [units.unit_name(d.project, s) for s in ("web", "api") if s in d.project.services],
            "verify_timeout": d.options.verify_timeout, "health_timeout": d.options.health_timeout}


def step_activate(d: Deploy, r: Remote) -> None:
    """Flip current atomically, reload/restart the units, verify their processes, poll health."""
    actions = unit_actions(d.project, d.deps_changed, restart_all=False)
    command = cmd.host_program("activate", activate_args(d, d.number, actions))
    d.flipped = True  # from here on, a failure means putting the previous release back
    result = r.run(command, check=False, timeout=d.options.verify_timeout + d.options.health_timeout + 120)
    if r.dry_run:
        return
    res = _parse_or_fail(d, result, "activate")
    for name in ("flip", "restart", "health", "verify"):
        ok = {"restart": not res["unit_errors"], "verify": res["verified"], "health": res["healthy"]}.get(name, True)
        d.show(name, res["steps"][name], ok=ok)
    if not res["ok"]:
        raise OperationFailed(describe_activation(res), host=d.name, step="verify" if res["healthy"] else "health")


def describe_activation(res: dict) -> str:
    lines = list(res.get("unit_errors", []))
    for unit, v in res.get("verify", {}).items():
        if v["active"] != "active":
            lines.append(f"{unit} is {v['active']}")
        for pid, cwd in v["stale"]:
            lines.append(f"{unit}: pid {pid} still runs from {cwd}")
    for name, h in res.get("health", {}).items():
        if not h["ok"]:
            lines.append(f"{name} health: status {h['status']}, release {h['release']}: {h['body'][:160]}")
    return "v" + str(res["number"]) + " is not healthy:\n" + _indent("\n".join(lines))


def step_finish(d: Deploy, r: Remote) -> None:
    """Record the new states and a log line, clean up old releases (not in the way), unlock."""
    t = time.monotonic()
    rels = host_releases(d.plan)
    old = d.base.number if d.base else None
    states = releases.after_activation(rels + [releases.Release(d.number, "active")], d.number, old)
    merged = [releases.Release(x.number, states.get(x.number, x.state), complete=x.complete) for x in rels]
    merged.append(releases.Release(d.number, "active"))
    remove = releases.to_remove(merged, d.number, d.config.defaults.keep_releases)
    log = {"event": "deploy", "result": "ok", "release": f"v{d.number}", "previous": d.base.name if d.base else None,
           "revision": d.revision, "ref": d.options.ref, "by": f"{getpass.getuser()}@{socket.gethostname()}",
           "at": _now(), "steps": d.steps, "message": d.options.message}
    r.run(cmd.host_program("finish", {"root": d.layout.root, "states": {str(k): v for k, v in states.items()},
                                      "meta": {str(d.number): {"steps": d.steps}}, "log": log,
                                      "remove": remove, "unlock": True, "token": d.token}))
    d.locked = False
    verb = "would remove" if r.dry_run else "removed"
    d.show("record", time.monotonic() - t, note=f"{verb} {', '.join(f'v{n}' for n in remove)}" if remove else "")


STEPS: list[tuple[str, Callable[[Deploy, Remote], None]]] = [
    ("lock + plan", step_lock_and_plan),
    ("upload", step_upload),
    ("backup", step_backup),          # a dump of the database, before anything migrates it
    ("prepare", step_prepare),        # install, check, migrate, collectstatic
    ("activate", step_activate),      # flip, restart, verify, health
    ("finish", step_finish),          # record, clean up, unlock
]


# --- running it, and failing well ------------------------------------------------------------

def run(d: Deploy, r: Remote) -> Deploy:
    try:
        for _, step in STEPS:
            step(d, r)
        return d
    except (AynaFabError, KeyboardInterrupt, Exception) as exc:
        if r.dry_run:
            raise
        with _no_interrupts():
            raise recover(d, r, exc) from exc


def recover(d: Deploy, r: Remote, exc: BaseException) -> AynaFabError:
    """Put the host back in a good state after exc; return the error to report."""
    reason = ("interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt)
              else exc.message if isinstance(exc, AynaFabError) else f"{type(exc).__name__}: {exc}")
    step = getattr(exc, "step", None) or "deploy"
    if not d.locked:  # failed before we held the lock: nothing of ours to undo
        return exc if isinstance(exc, AynaFabError) else OperationFailed(reason, host=d.name, step=step)
    try:
        if not d.flipped:
            live = d.base.name if d.base else "nothing (first deploy)"
            hint = getattr(exc, "hint", None)
            try:
                _finish_failed(d, r, reason, step, restored=None)
            except AynaFabError as lost:  # unreachable now: the site was never touched, the lock stays
                reason += f"\nthe lock could not be released ({lost.message})"
                hint = f"once the host answers again: fab -H {d.name} unlock"
            if d.backup and step == "migrate":
                hint = (hint or "") + f"; the database was dumped first: {backup_rules.restore_hint(d.name, d.backup)}"
            return OperationFailed(f"deploy of v{d.number} failed at {step}; the live site is untouched "
                                   f"(still {live})\n{_indent(reason)}", host=d.name, step=step, hint=hint)
        restored = restore(d, r)
        _finish_failed(d, r, reason, step, restored=restored)
        what = f"rolled back to {d.base.name}, which is serving and healthy" if d.base else \
            "no earlier release existed: the units were stopped and current removed"
        hint = "fix the release and deploy again"
        if d.backup:
            hint += (f"; v{d.number} migrated the database, which was dumped first: "
                     + backup_rules.restore_hint(d.name, d.backup))
        return OperationFailed(f"v{d.number} failed after the flip at {step}; {what}\n{_indent(reason)}",
                               host=d.name, step=step, hint=hint)
    except AynaFabError as again:
        return NeedsAttention(f"v{d.number} failed ({reason}) and restoring failed too: {again}",
                              host=d.name, step="restore",
                              hint=f"look at the host now: fab -H {d.name} status; then fab -H {d.name} rollback"
                                   + (f" --to {d.base.name}" if d.base else "")
                                   + f"; the deploy lock is left in place: fab -H {d.name} unlock")


def restore(d: Deploy, r: Remote) -> str:
    """Flip back to the release that was live, restart everything, verify it, check health."""
    t = time.monotonic()
    if d.base is None:
        res = cmd.parse(r.run(cmd.host_program("deactivate", {"root": d.layout.root,
                                                             "units": units.unit_names(d.project)})).stdout)
        if not res["ok"]:
            raise OperationFailed("; ".join(res["errors"]), host=d.name, step="restore")
        d.show("restore", time.monotonic() - t, note="stopped the units; no earlier release")
        return "deactivated"
    actions = unit_actions(d.project, deps_changed=True, restart_all=True)
    res = _parse_or_fail(d, r.run(cmd.host_program("activate", activate_args(d, d.base.number, actions),
                                                   step="restore"), check=False), "restore")
    d.show("restore", time.monotonic() - t, ok=res["ok"], note=f"back on {d.base.name}")
    if not res["ok"]:
        raise OperationFailed(describe_activation(res), host=d.name, step="restore")
    return d.base.name


def _finish_failed(d: Deploy, r: Remote, reason: str, step: str, restored: str | None) -> None:
    log = {"event": "deploy", "result": "failed", "release": f"v{d.number}", "failed_step": step,
           "reason": reason[-2000:], "restored": restored, "revision": d.revision, "ref": d.options.ref,
           "by": f"{getpass.getuser()}@{socket.gethostname()}", "at": _now(), "steps": d.steps}
    states = {str(d.number): "failed"} if d.number else {}
    r.run(cmd.host_program("finish", {"root": d.layout.root, "states": states,
                                      "meta": {str(d.number): {"steps": d.steps, "failed_step": step}},
                                      "log": log, "remove": [], "unlock": True, "token": d.token}))
    d.locked = False


def _parse_or_fail(d: Deploy, result, step: str) -> dict:
    try:
        return cmd.parse(result.stdout)
    except ValueError as exc:
        raise OperationFailed(f"the host program failed:\n{_indent((result.stderr or result.stdout)[-2000:])}",
                              host=d.name, step=step) from exc


@contextmanager
def _no_interrupts():
    """While putting a host back, a second Ctrl-C must not leave it half-restored."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals are not ours to manage
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines())
