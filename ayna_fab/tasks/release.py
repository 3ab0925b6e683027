"""Release tasks: deploy, rollback, status, releases, unlock."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

from ayna_fab import deploy as pipeline
from ayna_fab import output, releases, rollback as rollback_pipeline, status as fleet, targets
from ayna_fab.cli import task
from ayna_fab.commands import release as cmd
from ayna_fab.errors import OperationFailed, UsageError
from ayna_fab.layout import Layout
from ayna_fab.remote import Remote
from ayna_fab.tasks import common


def _jobs(c, cfg, project):
    """(host, project) pairs: the project is implied when the host carries just one."""
    return [(h, targets.project_for(cfg, h, project)) for h in common.hosts(c, cfg)]


@task(help={"ref": "branch, tag or commit of the project's source (default HEAD)",
            "project": "needed when a host carries several projects",
            "dry_run": "print every remote command that would change the host; change nothing",
            "message": "a note stored with the lock and the release"})
def deploy(c, ref="HEAD", project=None, dry_run=False, message=""):
    """Deploy REF: upload, install, check, migrate, flip, reload, verify, health; roll back on failure."""
    cfg = common.load()
    options = pipeline.Options(ref=ref, dry_run=dry_run, message=message)
    jobs = _jobs(c, cfg, project)
    prepared = []
    for host, proj in jobs:  # every ref and source is checked before the first connection
        source, revision = pipeline.resolve(cfg, host, proj, options)
        prepared.append((host, proj, source, revision))
    for host, proj, source, revision in prepared:
        if source.dirty():
            output.warn(f"{proj.source} has uncommitted changes; they are not deployed (committed code only)")
        d = pipeline.Deploy(cfg, host, proj, source, revision, options, output.say)
        with Remote.open(targets.endpoint(cfg, host), dry_run=dry_run, echo=output.say) as r:
            pipeline.run(d, r)
        total = sum(d.steps.values())
        if dry_run:
            output.say(f"[{host.name}] dry run: v{d.number} of {proj.name} at {revision[:12]} would be deployed; "
                       "nothing was changed")
        else:
            output.say(f"[{host.name}] {proj.name} v{d.number} ({revision[:12]}) is live and healthy "
                       f"({total:.1f}s in steps, {r.round_trips} round trips)")


@task(help={"to": "the release to go back to, e.g. v3 (default: the previous good one)",
            "project": "needed when a host carries several projects",
            "dry_run": "print what would run; change nothing"})
def rollback(c, to=None, project=None, dry_run=False):
    """Go back to the previous good release (or --to vN): code and venv, units restarted, health-checked."""
    cfg = common.load()
    number = releases.parse_name(to) if to else None
    for host, proj in _jobs(c, cfg, project):
        d = pipeline.Deploy(cfg, host, proj, None, "", pipeline.Options(dry_run=dry_run), output.say)
        with Remote.open(targets.endpoint(cfg, host), dry_run=dry_run, echo=output.say) as r:
            live = rollback_pipeline.run(d, r, number)
        output.say(f"[{host.name}] {proj.name}: {live} is live and healthy" + (" (dry run)" if dry_run else ""))


@task(help={"json": "print JSON for scripts", "project": "only this project"})
def status(c, json=False, project=None):
    """One row per host and project: release, revision, who/when, units, health, lock, releases, disk."""
    cfg = common.load()
    jobs = []
    for host in common.hosts(c, cfg, all_when_none=True):
        projs = common.projects_on(cfg, host, project) if (project is None or host.carries(project)) else []
        if projs:
            jobs.append((host, projs))
    rows = fleet.collect(cfg, jobs)
    if json:
        output.emit_json(rows)
    else:
        output.table("ayna-fab status", ["host", "project", "release", "revision", "deployed", "units", "health",
                                         "lock", "releases", "disk free", "drift"],
                     [_status_cells(r) for r in rows])
    if any(r.get("error") for r in rows):
        raise OperationFailed(f"{sum(1 for r in rows if r.get('error'))} host(s) could not be queried",
                              step="status")


def _status_cells(r: dict) -> list:
    if r.get("error"):
        return [r["host"], r["project"], "?", "", "", "", "", "", "", "", r["error"]]
    units = " ".join(f"{u.split('-')[-1].removesuffix('.service')}:{s}" for u, s in r["units"].items())
    health = " ".join(f"{k}:{v}" for k, v in r["health"].items())
    return [r["host"], r["project"], r["release"] or "-", (r["revision"] or "")[:12],
            f"{r['deployed_at'] or ''} {r['deployed_by'] or ''}".strip(), units, health or "-",
            r["lock"] or "-", r["releases"], f"{r['disk_free_gb']} GB", "DRIFT" if r["drift"] else ""]


@task(name="releases", help={"project": "needed when a host carries several projects", "json": "print JSON"})
def list_releases(c, project=None, json=False):
    """The releases on each host with their states (active, previous, good, failed, rolled-back)."""
    cfg = common.load()
    rows = []
    for host, proj in _jobs(c, cfg, project):
        for r in fleet.collect(cfg, [(host, [proj])]):
            if r.get("error"):
                raise OperationFailed(r["error"], host=host.name, step="releases")
            rows.append(r)
    if json:
        output.emit_json([{"host": r["host"], "project": r["project"], "releases": r["states"]} for r in rows])
        return
    output.table("releases", ["host", "project", "release", "state"],
                 [[r["host"], r["project"], name, state]
                  for r in rows for name, state in sorted(r["states"].items(), key=lambda kv: -int(kv[0][1:]))])


@task(help={"project": "needed when a host carries several projects",
            "force": "remove the lock even if its holder may still be running"})
def unlock(c, project=None, force=False):
    """Remove a deploy lock left by a deploy that died; refuses a lock that may be live unless --force."""
    cfg = common.load()
    for host, proj in _jobs(c, cfg, project):
        root = Layout.of(cfg, proj).root
        with Remote.open(targets.endpoint(cfg, host)) as r:
            res = cmd.parse(r.run(cmd.host_program("status", {"root": root, "units": [], "health": []})).stdout)
            holder = res["lock"]
            if holder is None:
                output.say(f"[{host.name}] {proj.name}: not locked")
                continue
            stale, why = lock_is_stale(holder)
            desc = f"{holder.get('by')}@{holder.get('from')} pid {holder.get('pid')} since {holder.get('at')}"
            if not (stale or force):
                raise UsageError(f"the lock is held by {desc} and may be live ({why})", host=host.name,
                                 step="unlock", hint="if you are sure that deploy is gone: fab unlock --force")
            r.run(cmd.host_program("unlock", {"root": root, "force": True}))
            output.say(f"[{host.name}] {proj.name}: removed the lock of {desc} ({why if stale else 'forced'})")


STALE_AFTER_SECONDS = 6 * 3600


def lock_is_stale(holder: dict, now: datetime | None = None, here: str | None = None,
                  pid_alive=None) -> tuple[bool, str]:
    """Stale: its process is gone (when it was taken from this machine), or it is hours old."""
    here = here or socket.gethostname()
    alive = pid_alive or _pid_alive
    if holder.get("from") == here and isinstance(holder.get("pid"), int):
        return (not alive(holder["pid"]), f"pid {holder['pid']} on this machine is "
                + ("gone" if not alive(holder["pid"]) else "still running"))
    try:
        age = ((now or datetime.now(timezone.utc)) - datetime.fromisoformat(holder["at"])).total_seconds()
    except (KeyError, ValueError):
        return True, "the lock records no valid time"
    if age > STALE_AFTER_SECONDS:
        return True, f"taken {age / 3600:.1f} hours ago"
    return False, f"taken {age / 60:.0f} minutes ago from {holder.get('from')}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
