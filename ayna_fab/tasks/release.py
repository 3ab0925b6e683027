"""Release tasks: deploy, rollback, status, releases, unlock."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

from concurrent.futures import ThreadPoolExecutor

from ayna_fab import config, fleet, output, releases, targets
from ayna_fab import deploy as pipeline
from ayna_fab import rollback as rollback_pipeline
from ayna_fab import status as fleet_status
from ayna_fab.cli import task
from ayna_fab.commands import release as cmd
from ayna_fab.errors import AynaFabError, NeedsAttention, OperationFailed, UsageError
from ayna_fab.layout import Layout
from ayna_fab.remote import Remote
from ayna_fab.tasks import common


def _jobs(c, cfg, project):
    """(host, project) pairs: the project is implied when the host carries just one."""
    return [(h, targets.project_for(cfg, h, project)) for h in common.hosts(c, cfg)]


def _connect_all(cfg, hosts, dry_run: bool) -> dict[str, Remote]:
    """One connection per host, opened in parallel; if any host is unreachable, none is used."""
    def one(host):
        return host.name, Remote.open(targets.endpoint(cfg, host), dry_run=dry_run, echo=output.say)
    with ThreadPoolExecutor(max_workers=min(fleet.MAX_PARALLEL, len(hosts))) as pool:
        futures = [pool.submit(one, h) for h in hosts]
    remotes, errors = {}, []
    for f in futures:
        if f.exception():
            errors.append(f.exception())
        else:
            name, r = f.result()
            remotes[name] = r
    if errors:
        for r in remotes.values():
            r.close()
        first = errors[0]
        cls = first.__class__ if isinstance(first, (UsageError, OperationFailed)) else OperationFailed
        raise cls(f"{first}\nno host was changed: every host must be reachable first",
                  step="connect", hint=getattr(first, "hint", None))
    return remotes


@task(help={"ref": "branch, tag or commit of the project's source (default HEAD)",
            "project": "needed when a host carries several projects",
            "dry_run": "print every remote command that would change the host; change nothing",
            "message": "a note stored with the lock and the release",
            "batch": "fleets: flip all at once (all), N hosts at a time, or a percentage (25%)",
            "on_failure": "fleets: rollback (every flipped host goes back) or stop (flipped hosts stay)"})
def deploy(c, ref="HEAD", project=None, dry_run=False, message="", batch=None, on_failure=None):
    """Deploy REF: upload, install, check, migrate, flip, reload, verify, health; roll back on failure."""
    cfg = common.load()
    options = pipeline.Options(ref=ref, dry_run=dry_run, message=message)
    by_project: dict[str, list] = {}
    for host, proj in _jobs(c, cfg, project):
        by_project.setdefault(proj.name, []).append(host)
    plans = []
    for name, hosts in by_project.items():  # every ref and option is checked before any connection
        proj = cfg.projects[name]
        source, revision = pipeline.resolve(cfg, hosts[0], proj, options)
        fo = fleet.FleetOptions(batch=str(batch) if batch is not None else proj.batch,
                                on_failure=on_failure or proj.on_failure)
        if not config.BATCH_RE.fullmatch(fo.batch) or fo.on_failure not in config.ON_FAILURE:
            raise UsageError(f"--batch {fo.batch!r} / --on-failure {fo.on_failure!r} not understood",
                             step="deploy", hint='--batch all|N|N% and --on-failure rollback|stop')
        plans.append((proj, hosts, source, revision, fo))
    for proj, hosts, source, revision, fo in plans:
        if source.dirty():
            output.warn(f"{proj.source} has uncommitted changes; they are not deployed (committed code only)")
        remotes = _connect_all(cfg, hosts, dry_run)
        try:
            deploys = [pipeline.Deploy(cfg, h, proj, source, revision, options, output.say) for h in hosts]
            if len(deploys) == 1:
                pipeline.run(deploys[0], remotes[hosts[0].name])
            elif output.is_terminal() and not dry_run:
                with output.LiveHosts([h.name for h in hosts]) as live:
                    for d in deploys:
                        d.progress = live
                    fleet.Fleet(deploys, remotes, fo, live.message).run()
            else:
                fleet.Fleet(deploys, remotes, fo, output.say).run()
        finally:
            for r in remotes.values():
                r.close()
        for d in deploys:
            if dry_run:
                output.say(f"[{d.name}] dry run: v{d.number} of {proj.name} at {revision[:12]} would be deployed; "
                           "nothing was changed")
            else:
                output.say(f"[{d.name}] {proj.name} v{d.number} ({revision[:12]}) is live and healthy "
                           f"({sum(d.steps.values()):.1f}s in steps, {remotes[d.name].round_trips} round trips)")


@task(help={"to": "the release to go back to, e.g. v3 (default: the previous good one)",
            "project": "needed when a host carries several projects",
            "dry_run": "print what would run; change nothing"})
def rollback(c, to=None, project=None, dry_run=False):
    """Go back to the previous good release (or --to vN): code and venv, units restarted, health-checked."""
    cfg = common.load()
    number = releases.parse_name(to) if to else None
    jobs = _jobs(c, cfg, project)
    remotes = _connect_all(cfg, [h for h, _ in jobs], dry_run)
    try:
        if len(jobs) > 1:  # every host to the same release
            plans = {}
            for host, proj in jobs:
                plans[host.name] = cmd.parse(remotes[host.name].run(cmd.host_program("plan", {
                    "root": Layout.of(cfg, proj).root, "env_file": Layout.of(cfg, proj).env_file,
                    "units": [], "lock": None})).stdout)
            number = fleet.rollback_target_for_fleet(plans, number)
            output.say(f"fleet: every host to v{number}")

        def one(job):
            host, proj = job
            d = pipeline.Deploy(cfg, host, proj, None, "", pipeline.Options(dry_run=dry_run), output.say)
            return rollback_pipeline.run(d, remotes[host.name], number)

        with ThreadPoolExecutor(max_workers=min(fleet.MAX_PARALLEL, len(jobs))) as pool:
            futures = {pool.submit(one, job): job for job in jobs}
        errors = {job[0].name: f.exception() for f, job in futures.items() if f.exception()}
        for f, (host, proj) in futures.items():
            if not f.exception():
                output.say(f"[{host.name}] {proj.name}: {f.result()} is live and healthy"
                           + (" (dry run)" if dry_run else ""))
        if errors:
            worst = next((e for e in errors.values() if isinstance(e, NeedsAttention)), next(iter(errors.values())))
            if len(errors) == 1 and len(jobs) == 1:
                raise worst
            raise worst.__class__(f"rollback failed on {', '.join(errors)}: {worst}", step="rollback") \
                if isinstance(worst, AynaFabError) else worst
    finally:
        for r in remotes.values():
            r.close()


@task(help={"json": "print JSON for scripts", "project": "only this project"})
def status(c, json=False, project=None):
    """One row per host and project: release, revision, who/when, units, health, lock, releases, disk."""
    cfg = common.load()
    jobs = []
    for host in common.hosts(c, cfg, all_when_none=True):
        projs = common.projects_on(cfg, host, project) if (project is None or host.carries(project)) else []
        if projs:
            jobs.append((host, projs))
    rows = fleet_status.collect(cfg, jobs)
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
        for r in fleet_status.collect(cfg, [(host, [proj])]):
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
