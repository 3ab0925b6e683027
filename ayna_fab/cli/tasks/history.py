"""`fab history`: what was deployed and rolled back where, when, by whom and how it ended, from the
deploy log every host already keeps (ops/history.py), merged across the target's hosts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ayna_fab.cli import output
from ayna_fab.cli.exitcodes import task
from ayna_fab.cli.tasks import common
from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config import targets
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Config, Host, Project
from ayna_fab.errors import AynaFabError, OperationFailed, UsageError
from ayna_fab.ops import history as hist
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Remote


def _read(cfg: Config, host: Host, projects: list[Project], limit: int) -> tuple[list[dict], str | None]:
    """The host's rows of every project, or the error that kept them from us."""
    rows: list[dict] = []
    try:
        with Remote.open(targets.endpoint(cfg, host)) as remote:
            for p in projects:
                res = hostcall.parse(remote.run(cmd.history(Layout.of(cfg, p), limit), check=False),
                                     host=host.name, step="history")
                rows += [hist.row(host.name, p.name, p.env, e) for e in res["entries"]]
                if res["unreadable"]:
                    output.warn(f"[{host.name}] {p.name}: {res['unreadable']} line(s) of its deploy log are "
                                "not JSON and were skipped")
    except AynaFabError as exc:
        return rows, str(exc).splitlines()[0]
    return rows, None


@task(help={"project": "only this project", "json": "print JSON for scripts",
            "limit": "the newest N entries (default 20)", "parallel": common.PARALLEL_HELP})
def history(c, project=None, json=False, limit=20, parallel=None):
    """Deploys and rollbacks, newest first: when, host, stage, release, revision, who, outcome, duration.

    Example: ayna-fab -H prod history --limit 10
    """
    cfg = common.with_parallel(common.load(), parallel)
    limit = int(limit)
    if limit < 1:
        raise UsageError(f"--limit {limit}: give a number of entries, 1 or more", step="history")
    jobs = []
    for host in common.hosts(c, cfg, all_when_none=True):
        if project is None or host.carries(project):
            jobs.append((host, common.projects_on(cfg, host, project)))
    if not jobs:
        raise UsageError(f"no host of the target carries {project!r}", step="history",
                         hint="fab status lists the hosts and their projects")
    with ThreadPoolExecutor(max_workers=max(1, min(cfg.defaults.parallel, len(jobs)))) as pool:
        answers = list(pool.map(lambda job: _read(cfg, job[0], job[1], limit), jobs))
    rows = hist.merged([rows for rows, _ in answers], limit)
    errors = [(host.name, error) for (host, _), (_, error) in zip(jobs, answers) if error]
    if json:
        output.emit_json({"entries": rows, "errors": [{"host": h, "error": e} for h, e in errors]})
    else:
        output.table("ayna-fab history", hist.HEADERS, [hist.cells(r) for r in rows])
        for name, error in errors:
            output.warn(f"[{name}] {error}")
    if errors:
        raise OperationFailed(f"{len(errors)} host(s) could not be read", step="history")
