"""Release tasks: deploy, rollback, status, releases, unlock. Task definitions only: the pipelines
are deploy.py and rollback.py, run by runner.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ayna_fab.cli import output, progress
from ayna_fab.cli.exitcodes import task
from ayna_fab.cli.tasks import common
from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config import model as config
from ayna_fab.config import targets
from ayna_fab.config.layout import Layout
from ayna_fab.errors import OperationFailed, UsageError
from ayna_fab.ops import report
from ayna_fab.ops import build, deploy as pipeline, hooks, lockrecord as lock, releasestates as releases, rollback as rollback_pipeline
from ayna_fab.ops import runner, status as fleet_status
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Remote, open_all


def _by_project(c, cfg, project) -> dict[str, list]:
    by: dict[str, list] = {}
    for host, proj in common.jobs(c, cfg, project):
        by.setdefault(proj.name, []).append(host)
    return by


def _run(op_for, cfg, hosts, proj, dry_run: bool, operation: str, message: str = ""):
    """Connect to every host, build one HostRun each, run the operation, close the connections."""
    remotes = open_all([targets.endpoint(cfg, h) for h in hosts], dry_run=dry_run, echo=output.say,
                       max_parallel=cfg.defaults.parallel)
    try:
        shown = progress.for_operation(terminal=output.is_terminal() and not dry_run)
        owner = lock.owner(operation, message)
        ts = [runner.HostRun(cfg, h, targets.staged(cfg, h, proj), remotes[h.name], owner, shown.message,
                             progress=shown) for h in hosts]   # each host with its stage's env
        op = op_for(ts)
        with shown:
            runner.run(op, shown.message)
        return op, remotes
    finally:
        for r in remotes.values():
            r.close()


JSON_HELP = "print one JSON document on stdout when it ends, also on failure (docs/json-output.md); lines for people go to stderr"


@contextmanager
def _json_report(on: bool, operation: str, outcomes: list, dry_run: bool) -> Iterator[None]:
    """--json: the operation's lines for people go to stderr, and its document (a list of them for
    several projects) to stdout once it has ended, whichever way."""
    if not on:
        yield
        return
    with output.people_to_stderr() as stdout:
        error = None
        try:
            yield
        except BaseException as exc:   # a bug too: the document says it failed
            error = exc
            raise
        finally:
            docs = [report.document(o, error if o is outcomes[-1] else None, dry_run=dry_run) for o in outcomes]
            if error is not None and not docs:
                docs = [report.refused(operation, error)]
            output.emit_json(docs[0] if len(docs) == 1 else docs, stdout)


@task(help={"ref": "branch, tag or commit of the project's source (default HEAD)",
            "project": "needed when a host carries several projects",
            "dry_run": "print the plan and every remote command that would change a host; change nothing",
            "message": "a note stored with the lock and the release",
            "batch": "fleets: flip all at once (all), N hosts at a time, or a percentage (25%)",
            "on_failure": "fleets: rollback (every flipped host goes back) or stop (flipped hosts stay)",
            "parallel": common.PARALLEL_HELP, "json": JSON_HELP})
def deploy(c, ref="HEAD", project=None, dry_run=False, message="", batch=None, on_failure=None, parallel=None,
           json=False):
    """Deploy REF: upload, install, check, migrate, flip, restart every unit, verify, health; roll back on failure.

    Example: ayna-fab -H prod deploy --ref v1.4.0
    """
    outcomes: list[hooks.Outcome] = []
    with _json_report(json, "deploy", outcomes, dry_run):
        _deploy(c, ref, project, dry_run, message, batch, on_failure, parallel, outcomes)


def _deploy(c, ref, project, dry_run, message, batch, on_failure, parallel, outcomes):
    cfg = common.with_parallel(common.load(), parallel)
    work = []
    for name, hosts in _by_project(c, cfg, project).items():  # every ref and option checked before connecting
        proj = cfg.projects[name]
        source, revision = pipeline.resolve(proj, ref)
        opts = pipeline.Options(ref=ref, dry_run=dry_run, message=message,
                                batch=str(batch) if batch is not None else proj.batch,
                                on_failure=on_failure or proj.on_failure)
        if not config.BATCH_RE.fullmatch(opts.batch) or opts.on_failure not in config.ON_FAILURE:
            raise UsageError(f"--batch {opts.batch!r} / --on-failure {opts.on_failure!r} not understood",
                             step="deploy", hint="--batch all|N|N% and --on-failure rollback|stop")
        work.append((proj, hosts, source, revision, opts))
    for proj, hosts, source, revision, opts in work:
        if source.dirty():
            output.warn(f"{proj.source} has uncommitted changes; they are not deployed (committed code only)")
        outcome = hooks.Outcome("deploy", proj, [h.name for h in hosts], revision)
        outcomes.append(outcome)
        with hooks.laptop_hooks(outcome, output.say, dry_run=dry_run):
            built = build.run(proj, source, revision, output.say, dry_run=dry_run)  # before anything remote
            op, remotes = _run(lambda ts: outcome.track(pipeline.Deploy(cfg, proj, source, revision, opts, ts, built)),
                               cfg, hosts, proj, dry_run, "deploy", message)
            outcome.problems += op.hook_problems
            for t in op.targets:
                if dry_run:
                    output.say(f"[{t.name}] dry run: v{t.number} of {proj.name} at {revision[:12]} would be "
                               "deployed; nothing was changed")
                else:
                    output.say(f"[{t.name}] {proj.name} v{t.number} ({revision[:12]}) is live and healthy "
                               f"({remotes[t.name].seconds:.1f}s in host calls, {remotes[t.name].round_trips} round trips)")
        hooks.report(outcome, output.warn)


@task(help={"to": "the release to go back to, e.g. v3 (default: the previous good one)",
            "project": "needed when a host carries several projects",
            "dry_run": "print what would run; change nothing", "parallel": common.PARALLEL_HELP,
            "json": JSON_HELP})
def rollback(c, to=None, project=None, dry_run=False, parallel=None, json=False):
    """Go back to the previous good release (or --to vN): code and venv, units restarted, health-checked.

    Example: ayna-fab -H prod rollback --to v3
    """
    outcomes: list[hooks.Outcome] = []
    with _json_report(json, "rollback", outcomes, dry_run):
        _rollback(c, to, project, dry_run, parallel, outcomes)


def _rollback(c, to, project, dry_run, parallel, outcomes):
    cfg = common.with_parallel(common.load(), parallel)
    opts = rollback_pipeline.Options(to=releases.parse_name(to) if to else None, dry_run=dry_run)
    for name, hosts in _by_project(c, cfg, project).items():
        proj = cfg.projects[name]
        outcome = hooks.Outcome("rollback", proj, [h.name for h in hosts])
        outcomes.append(outcome)
        with hooks.laptop_hooks(outcome, output.say, dry_run=dry_run):
            op, _ = _run(lambda ts: outcome.track(rollback_pipeline.Rollback(cfg, proj, opts, ts)), cfg, hosts, proj,
                         dry_run, "rollback")
            outcome.problems += op.hook_problems
            for t in op.targets:
                output.say(f"[{t.name}] {proj.name}: v{t.number} is live and healthy" + (" (dry run)" if dry_run else ""))
        hooks.report(outcome, output.warn)


@task(help={"json": "print JSON for scripts", "project": "only this project", "parallel": common.PARALLEL_HELP})
def status(c, json=False, project=None, parallel=None):
    """One row per host and project: release, revision, who/when, units, health, lock, releases, disk.

    Example: ayna-fab -H prod status --json
    """
    cfg = common.with_parallel(common.load(), parallel)
    jobs = []
    for host in common.hosts(c, cfg, all_when_none=True):
        projs = common.projects_on(cfg, host, project) if (project is None or host.carries(project)) else []
        if projs:
            jobs.append((host, projs))
    rows = fleet_status.collect(cfg, jobs)
    if json:
        output.emit_json(rows)
    else:
        output.table("ayna-fab status", ["host", "project", "stage", "release", "revision", "deployed", "units", "health",
                                         "lock", "releases", "disk free", "proxy", "drift"],
                     [fleet_status.cells(r) for r in rows])
    if any(r.get("error") for r in rows):
        raise OperationFailed(f"{sum(1 for r in rows if r.get('error'))} host(s) could not be queried",
                              step="status")


@task(name="releases", help={"project": "needed when a host carries several projects", "json": "print JSON"})
def list_releases(c, project=None, json=False):
    """The releases on each host with their states (active, previous, good, failed, rolled-back).

    Example: ayna-fab -H prod releases
    """
    cfg = common.load()
    rows = []
    for host, proj in common.jobs(c, cfg, project):
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
    """Remove a deploy lock left by a deploy that died; refuses a lock that may be live unless --force.

    Example: ayna-fab -H prod unlock
    """
    cfg = common.load()
    for host, proj in common.jobs(c, cfg, project):
        lay = Layout.of(cfg, proj)
        with Remote.open(targets.endpoint(cfg, host)) as r:
            holder = hostcall.parse(r.run(cmd.status(lay, proj), check=False), host=host.name, step="unlock")["lock"]
            if holder is None:
                output.say(f"[{host.name}] {proj.name}: not locked")
                continue
            reason = lock.may_remove(holder, host.name, force)
            res = hostcall.parse(r.run(cmd.unlock(lay, holder.get("token"), force=not holder.get("token")),
                                       check=False), host=host.name, step="unlock")
            if res["result"] == "busy":
                raise OperationFailed("a step of the lock's operation started running on the host meanwhile; "
                                      "nothing removed", host=host.name, step="unlock", hint="fab status")
            if res["result"] != "released":
                raise OperationFailed(f"the lock changed while we looked ({res['result']}); nothing removed",
                                      host=host.name, step="unlock", hint="look again: fab status")
            output.say(f"[{host.name}] {proj.name}: removed the lock of {lock.holder_text(holder)} ({reason})")
            settled = lock.settled_text(res.get("settled"))
            if settled:
                output.say(f"[{host.name}] {proj.name}: {settled}")
