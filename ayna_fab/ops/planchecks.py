"""What a deploy's plan refuses before anything is built: the failures that would otherwise come
mid-deploy, found in the plan's answer (hostprog/plan.py) and hosts.toml.

- The commit has no uv.lock (checked on the laptop, before any connection: `unlocked`).
- A backup is due before migrate, but the host's DATABASE_URL names an engine ayna-fab cannot back
  up (only PostgreSQL and SQLite), or none at all: refused with the setting that turns backups off.
- The package index settings in hosts.toml are not what setup last wrote on the host: refused
  with `setup` as the fix, so a deploy never installs from an index nobody asked for.
- The host's /usr/bin/python3 (every release's venv is made from it) does not satisfy the Python
  the project declares (scan/python.py): refused with the host's version and the ways out.
- Another program listens on the project's ports or the pre-flip check's (provision/hostports.py).
- The commit's uv.lock holds packages with no wheel for the host's machine and Python
  (scan/wheels.py), and the host has no C compiler (`cc`) to build them: refused with the
  packages and the ways out, instead of a build backend's traceback at install.
"""

from __future__ import annotations

from ayna_fab.config import packageindex
from ayna_fab.config.model import package_index
from ayna_fab.errors import UsageError
from ayna_fab.hostprog import backups
from ayna_fab.provision import hostports
from ayna_fab.scan import python as pyversion, wheels


def refuse(t, *, backup_due: bool, python: list[pyversion.Declaration] = (), lock: str | None = None) -> None:
    """Raise UsageError (exit 2, nothing changed but the lock, which the runner releases).

    lock: the commit's uv.lock text, judged against the host's Python and machine."""
    name = t.project.name
    if python:
        have = t.plan.get("python") or "missing"
        missing = pyversion.unmet(have, list(python))
        if missing:
            problem, hint = pyversion.refusal(t.name, have, missing, name)
            raise UsageError(problem, host=t.name, step="plan", hint=hint)
    if lock and not t.plan.get("compiler", True):
        unbuildable(t, lock)
    hostports.refuse(t.plan.get("ports") or {}, host=t.name, project=name, root=t.layout.root, step="plan")
    if backup_due:
        why = backups.unsupported(t.plan.get("database"))
        if why:
            raise UsageError(f"{why}, and a backup is due before this deploy migrates", host=t.name,
                             step="plan",
                             hint=f"set backup_before_migrate = false under [projects.{name}] in hosts.toml "
                                  "(and back the database up your own way), or use PostgreSQL or SQLite")
    want = packageindex.digest(packageindex.uv_toml(package_index(t.host, t.project)))
    if t.plan.get("uv_config") != want:
        what = ("hosts.toml sets no package index settings, but the host has setup's uv config from "
                "earlier ones" if want is None else
                "the package index settings in hosts.toml are not what setup wrote on the host")
        raise UsageError(f"{what} ({t.layout.uv_config})", host=t.name, step="plan",
                         hint=f"fab -H {t.name} setup --project {name}")


def unlocked(project: str, source: str, revision: str, texts: dict[str, str]) -> None:
    """Refuse, before any connection, a commit with no uv.lock: deploys install exactly what it pins.
    texts: the commit's uv.lock, when it has one."""
    if "uv.lock" not in texts:
        raise UsageError(f"the commit {revision[:12]} of {project} has no uv.lock: deploys install exactly the "
                         "locked versions", step="plan",
                         hint=f"fab init {source} prints the commands that make one; commit uv.lock and deploy again")


def unbuildable(t, lock: str) -> None:
    """Refuse a host with no compiler when uv.lock has packages without a wheel for it."""
    version = pyversion.parse_version(t.plan.get("python") or "")
    machine = t.plan.get("machine") or "x86_64"
    todo = wheels.unbuilt_in(lock, version[:2] if version else None, machine)
    if not todo:
        return
    where = f"Linux {machine}" + (f" and Python {version[0]}.{version[1]}" if version else "")
    names = ", ".join(f"{u.name} {u.version}" for u in todo)
    unused = [u for u in todo if u.unused]
    needed = [f"{u.name} {u.version}" for u in todo if not u.unused]
    compiler = f"install a C compiler on {t.name} (apt-get install build-essential python3-dev)"
    remove = "; ".join(f"in {t.project.source}: uv remove {u.name} ({u.unused})" for u in unused)
    if not needed:
        hint = f"{remove}, then commit uv.lock; or {compiler}"
    else:
        build = f"{compiler}, or lock versions that have a wheel for the host"
        hint = f"{remove}, then commit uv.lock; and for {', '.join(needed)}: {build}" if unused else build
    raise UsageError(f"uv.lock has no wheel for {where} for {names}, and the host has no C compiler (cc) "
                     "to build " + ("them" if len(todo) > 1 else "it"), host=t.name, step="plan", hint=hint)
