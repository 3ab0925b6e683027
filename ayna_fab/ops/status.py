"""Fleet status: one row per host and project, hosts queried in parallel; drift flagged.

An unreachable host is a row with its error, never a crash.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config import sites, targets
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Config, Host, Project
from ayna_fab.errors import AynaFabError
from ayna_fab.ops import proxy
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Remote


def lock_text(lock: dict | None) -> str | None:
    """Who holds the lock, and what the host knows of it: a step running, its laptop gone."""
    if not lock:
        return None
    text = f"{lock.get('by')}@{lock.get('from')} since {lock.get('at')}"
    running = ", ".join(f"{w['what']} {w['seconds']}s" for w in lock.get("workers") or [])
    if running:
        text += f" (running: {running})"
    if lock.get("orphaned"):
        text += " (its laptop is gone: the next deploy or rollback settles it)"
    return text


def activation_text(j: dict | None) -> str | None:
    """An activation the host is carrying now, else None."""
    if not j or j.get("phase") == "done":
        return None
    return f"v{j.get('number')}: {j.get('phase')}"


def row(config: Config, host: Host, project: Project, res: dict | None, error: str | None,
        proxy_state: dict | None = None) -> dict:
    """`project` is as the host runs it (its stage applied): `stage` is the env it runs with."""
    if error:
        return {"host": host.name, "project": project.name, "stage": project.env, "error": error}
    meta = res["meta"] or {}
    rels = res["releases"]
    return {
        "host": host.name, "project": project.name, "stage": project.env, "error": None,
        "release": f"v{res['current']}" if res["current"] is not None else None,
        "revision": meta.get("revision"), "ref": meta.get("ref"),
        "deployed_at": meta.get("deployed_at"), "deployed_by": meta.get("deployed_by"),
        "units": res["units"],
        "health": {k: ("ok" if v["ok"] else f"{v['status'] or 'down'}") for k, v in res["health"].items()},
        "lock": lock_text(res["lock"]),
        "activation": activation_text(res.get("activation")),
        "releases": len(rels),
        "states": {f"v{r['number']}": (r["meta"] or {}).get("state", "?") for r in rels},
        "disk_free_gb": round(res["disk_free"] / 2**30, 1) if res["disk_free"] is not None else None,
        "maintenance": res.get("maintenance"),
        "proxy": proxy.summary(proxy_state) if proxy_state is not None else None,
    }


def query(config: Config, host: Host, projects: list[Project]) -> list[dict]:
    try:
        with Remote.open(targets.endpoint(config, host)) as r:
            rows = []
            for p in projects:
                res = hostcall.parse(r.run(cmd.status(Layout.of(config, p), p), check=False),
                                     host=host.name, step="status")
                site = sites.site(config, host, p)
                rows.append(row(config, host, p, res, None, proxy.caddy_state(site, r) if site else None))
            return rows
    except AynaFabError as exc:
        return [row(config, host, p, None, str(exc).splitlines()[0]) for p in projects]


def collect(config: Config, jobs: list[tuple[Host, list[Project]]]) -> list[dict]:
    with ThreadPoolExecutor(max_workers=max(1, min(config.defaults.parallel, len(jobs)))) as pool:
        results = list(pool.map(lambda job: query(config, *job), jobs))
    rows = [r for rs in results for r in rs]
    flag_drift(rows)
    return rows


def flag_drift(rows: list[dict]) -> None:
    """Hosts of one project and stage on different releases or revisions are marked drift=True (a
    staging host ahead of production is the point of stages, not drift)."""
    by_project: dict[tuple, set] = {}
    for r in rows:
        if not r.get("error"):
            by_project.setdefault((r["project"], r.get("stage")), set()).add((r["release"], r["revision"]))
    for r in rows:
        r["drift"] = len(by_project.get((r["project"], r.get("stage")), ())) > 1 and not r.get("error")


def cells(r: dict) -> list:
    """A status row as the table's cells."""
    if r.get("error"):
        return [r["host"], r["project"], r.get("stage", ""), "?", "", "", "", "", "", "", "", "", r["error"]]
    units = units_cell(r["project"], r["units"])
    health = " ".join(f"{k}:{v}" for k, v in r["health"].items())
    return [r["host"], r["project"], r.get("stage", ""), r["release"] or "-", (r["revision"] or "")[:12],
            f"{r['deployed_at'] or ''} {r['deployed_by'] or ''}".strip(), units, health or "-",
            lock_cell(r), r["releases"], f"{r['disk_free_gb']} GB", r.get("proxy") or "-",
            "DRIFT" if r["drift"] else ""]


def units_cell(project: str, states: dict[str, str]) -> str:
    """One word per service: its state and, for a slotted one (web, api, celery), the slot that runs
    (web:active/green); an idle slot is normal and not shown, two running slots are."""
    services: dict[str, dict[str, str]] = {}
    for unit, state in states.items():
        name = unit.removeprefix(f"{project}-").removesuffix(".service")
        service, _, slot = name.partition("-")
        services.setdefault(service, {})[slot] = state
    words = []
    for service, slots in services.items():
        running = [slot for slot, state in slots.items() if state == "active" and slot]
        if running:
            words.append(f"{service}:active/{'+'.join(running)}")
        else:
            states_ = sorted({state for state in slots.values()} - ({"inactive"} if len(slots) > 1 else set()))
            words.append(f"{service}:{'/'.join(states_) or 'inactive'}")
    return " ".join(words)


def lock_cell(r: dict) -> str:
    activating = f"activating {r['activation']}" if r.get("activation") else None
    return " ".join(x for x in (r["lock"], activating) if x) or "-"
