"""`fab init`: read an existing project, without running or changing it, and say how to deploy it.

Everything here is pure reading of files: where manage.py is, the settings module, the WSGI
and ASGI applications, the Celery app (and whether it has a beat schedule), the database the
settings use, the environment variables the code reads, whether uv.lock exists and is
committed. From that come a hosts.toml project entry (a free port range of the registry),
a `.env` with the standard's variables, and the list of what stands between the project and
a first deploy, or the standard (`fab validate`'s checks), each with its fix.

Nothing is imported or executed: a project's settings may need secrets or a database that
are not there yet, and reading must never have side effects.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import secrets
import subprocess
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from ayna_fab.config import model as cfgmod
from ayna_fab.config import registry
from ayna_fab.config import schema as configschema
from ayna_fab.provision import conformance, envcheck as envfile
from ayna_fab.scan import declaredenv, envreads, envvalues, healthurl, mediaroot, settingsmodule, wheels
from ayna_fab.scan import python as pyversion

SKIP_DIRS = {".git", ".hg", ".venv", "venv", "env", ".env", "node_modules", "__pycache__", ".tox", ".nox",
             "site-packages", "build", "dist", "staticfiles", "static_root", "media", ".mypy_cache",
             ".pytest_cache", ".ruff_cache", "htmlcov"}
MAX_FILES = 5000
MAX_BYTES = 512 * 1024
TEST_PARTS = {"tests", "test", "testing"}

SETTINGS_RE = re.compile(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([A-Za-z_][\w.]*)["']""")
WSGI_SETTING_RE = re.compile(r"""^WSGI_APPLICATION\s*=\s*["']([A-Za-z_][\w.]*)["']""", re.M)
FASTAPI_RE = re.compile(r"^([A-Za-z_]\w*)\s*(?::\s*[\w.]+\s*)?=\s*(?:fastapi\.)?FastAPI\(", re.M)
CELERY_RE = re.compile(r"^([A-Za-z_]\w*)\s*(?::\s*[\w.]+\s*)?=\s*(?:celery\.)?Celery\(", re.M)
BEAT_RE = re.compile(r"beat_schedule|CELERY_BEAT_SCHEDULE|add_periodic_task|django_celery_beat|@periodic_task")
DJANGO_HEALTH_RE = re.compile(r"""\b(?:path|re_path)\(\s*r?["']\^?([^"'$]*health[^"'$]*)\$?["']""")
FASTAPI_HEALTH_RE = re.compile(r"""@\w+\.(?:get|api_route)\(\s*["']([^"']*health[^"']*)["']""")
STATIC_ROOT_RE = re.compile(r"^STATIC_ROOT\s*=", re.M)
DB_PART_RE = re.compile(r"^(DB|DATABASE|POSTGRES|PG|SQL)(_|$)|_(DB|DATABASE)(_|$)")   # a database setting's piece
DATABASES_RE = re.compile(r"^DATABASES\s*(?::[^=\n]+)?=", re.M)   # DATABASES: Mapping[...] = too

# What the standard's .env holds; ayna-fab fills each (DJANGO_SETTINGS_MODULE: found in manage.py).
STANDARD_VARS = envfile.REQUIRED
SECRET_VARS = ("SECRET_KEY", "DATABASE_URL")
POSTGRES_DEPS = {"psycopg", "psycopg2", "psycopg2-binary", "psycopg-binary", "asyncpg"}


@dataclass(frozen=True)
class Gap:
    """One thing between the project and a deploy (blocking) or the standard, with its fix."""

    what: str
    fix: str
    blocking: bool = True


@dataclass
class Found:
    """What reading the project found; None where it found nothing."""

    root: Path
    name: str
    django_dir: str | None = None
    settings_module: str | None = None
    settings_files: list[Path] = field(default_factory=list)   # the module and what it imports, in running order
    settings_default: str | None = None   # manage.py's
    settings_why: str = ""
    debug_in: str | None = None           # the settings file that leaves DEBUG = True
    media_inside: mediaroot.Inside | None = None   # MEDIA_ROOT resolves inside each release
    wsgi_app: str | None = None
    asgi_dir: str | None = None
    asgi_app: str | None = None
    celery_app: str | None = None
    celery_var: str | None = None
    beat: bool = False
    alembic: str | None = None   # alembic.ini of a project without Django, relative to the release's root
    database: str | None = None          # postgresql | sqlite | another engine | None
    database_why: str = ""
    dependencies: set[str] = field(default_factory=set)
    uv_lock: bool = False
    uv_lock_committed: bool | None = None  # None: not in a git checkout (or no uv.lock)
    python: list[pyversion.Declaration] = field(default_factory=list)   # the Python the project declares
    unbuilt: list[wheels.Unbuilt] = field(default_factory=list)   # locked, with no wheel for the host
    pyproject: bool = False
    requirements: str | None = None
    health_web: str | None = None
    health_web_why: str = ""
    health_web_guess: healthurl.Health | None = None   # no health view: the URL deploys poll, and why
    health_api: str | None = None
    openapi_moved: str | None = None   # FastAPI(openapi_url=...) as written, when not the default /openapi.json
    health_routes: list[str] = field(default_factory=list)   # "file:line /path" of health routes in the package
    env_keys: list[str] = field(default_factory=list)
    env_optional: set[str] = field(default_factory=set)   # read with a default (or None) by the code
    env_reads: dict[str, list] = field(default_factory=dict)   # name: its envreads.Read, in the files' order
    env_when: dict[str, str] = field(default_factory=dict)   # needed only under an `if`: name: its condition
    env_declared: dict[str, tuple[str, str]] = field(default_factory=dict)   # .env.example, Docker ENV: (value, where)
    static_root: bool = True
    staticfiles: bool = False
    allowed_hosts: str | None = None      # the literal assignment, when not read from the environment
    databases_literal: bool = False       # settings assign DATABASES without reading DATABASE_URL
    others: list[str] = field(default_factory=list)   # further candidates, for the person to know

    @property
    def services(self) -> list[str]:
        out = []
        if self.django_dir is not None:
            out.append("web")
        if self.asgi_app:
            out.append("api")
        if self.celery_app:
            out.append("celery")
            if self.beat:
                out.append("beat")
        return out


# --- reading -------------------------------------------------------------------------------------

def python_files(root: Path) -> list[Path]:
    out: list[Path] = []
    stack = [root]
    while stack and len(out) < MAX_FILES:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name not in SKIP_DIRS and not entry.name.endswith(".egg-info"):
                    stack.append(entry)
            elif entry.suffix == ".py":
                out.append(entry)
    return sorted(out, key=lambda p: (len(p.relative_to(root).parts), str(p)))


def read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_BYTES:
            return ""
        return path.read_text(errors="replace")
    except OSError:
        return ""


def rel(root: Path, path: Path) -> str:
    r = path.relative_to(root).as_posix()
    return "." if r in ("", ".") else r


def is_test(root: Path, path: Path) -> bool:
    parts = path.relative_to(root).parts
    return any(p in TEST_PARTS for p in parts[:-1]) or parts[-1].startswith("test_")


def module_of(base: Path, path: Path) -> str | None:
    """The dotted module of path when imported with base on sys.path (None if not below it)."""
    try:
        parts = list(path.relative_to(base).with_suffix("").parts)
    except ValueError:
        return None
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(re.fullmatch(r"[A-Za-z_]\w*", p) for p in parts):
        return None
    return ".".join(parts)


def import_root(path: Path, stop: Path) -> Path:
    """The directory to put on sys.path to import path: above its last package with __init__.py."""
    folder = path.parent
    while folder != stop and (folder / "__init__.py").exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def module_file(base: Path, module: str) -> list[Path]:
    """The files of a dotted module below base: module.py, or a package's .py files."""
    target = base.joinpath(*module.split("."))
    if target.with_suffix(".py").is_file():
        return [target.with_suffix(".py")]
    if (target / "__init__.py").is_file():
        return sorted(target.glob("*.py"))
    return []


def pyproject(folder: Path) -> dict:
    """folder's pyproject.toml as a table: {} when it is missing, unreadable or malformed."""
    try:
        return tomllib.loads((folder / "pyproject.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def table(data: dict, *keys: str) -> dict:
    """data[k1][k2]...: {} where a key is missing or holds something other than a table."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def dependency_names(root: Path) -> tuple[set[str], bool, str | None]:
    """Normalized names of the declared dependencies, whether pyproject.toml has a [project] table
    (one that holds only tools' settings declares nothing uv can lock), requirements file."""
    names: set[str] = set()
    data = pyproject(root)
    has_project = isinstance(data.get("project"), dict)
    deps = table(data, "project").get("dependencies")
    specs = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
    specs += [name for name in table(data, "tool", "poetry", "dependencies") if name.lower() != "python"]
    req = requirements_file(root)
    if req:
        specs += requirement_lines(root / req, set())
    for spec in specs:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[([^\]]*)\])?", spec)
        if m:
            name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            names.add(name)
            for extra in (m.group(3) or "").split(","):
                if extra.strip():
                    names.add(f"{name}[{extra.strip().lower()}]")
    return names, has_project, req


REQUIREMENTS = ("requirements.txt", "requirements/production.txt", "requirements/prod.txt", "requirements/base.txt")


def requirements_file(root: Path) -> str | None:
    """The requirements file that lists the project's packages: at the root, else beside a manage.py
    one folder down (a project kept in app/ or src/, as Docker layouts often are), else in the one
    folder one level down that has one (a FastAPI app kept in project/)."""
    down = sorted({d.parent for d in root.glob("*/requirements.txt")
                   if d.parent.name not in ("docs", "doc", "tests", "test", "scripts", ".github", "ci")})
    for base in [root, *sorted(d.parent for d in root.glob("*/manage.py")), *(down if len(down) == 1 else [])]:
        for name in REQUIREMENTS:
            if (base / name).is_file():
                return (base / name).relative_to(root).as_posix()
    return None


def requirement_lines(path: Path, seen: set[Path]) -> list[str]:
    """A requirements file's requirements, with those of the files it includes (-r, -c not)."""
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    out = []
    for ln in read(path).splitlines():
        ln = ln.split(" #")[0].strip()
        m = re.match(r"(?:-r|--requirement)[ =]?\s*(\S+)$", ln)
        if m:
            out += requirement_lines(path.parent / m.group(1), seen)
        elif ln and not ln.startswith(("#", "-")):
            out.append(ln)
    return out


def project_name(root: Path) -> str:
    """pyproject's [project].name, or the directory's, made into a hosts.toml name."""
    raw = table(pyproject(root), "project").get("name")
    raw = raw if isinstance(raw, str) and raw else root.resolve().name
    name = re.sub(r"[^a-z0-9_-]+", "-", raw.lower()).strip("-_")
    if not name or not name[0].isalpha():
        name = "app-" + name if name else "app"
    return name[:32].rstrip("-_")


def committed(root: Path, name: str) -> bool | None:
    """Whether root/name is tracked by git (deploys send committed files only); None: not a checkout."""
    p = subprocess.run(["git", "-C", str(root), "ls-files", "--error-unmatch", "--", name],
                       capture_output=True, text=True)
    if p.returncode == 0:
        return True
    inside = subprocess.run(["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
                            capture_output=True, text=True)
    return False if inside.returncode == 0 else None


def inspect(root: Path, name: str | None = None) -> Found:
    """Read the project at root (nothing is imported or run)."""
    root = root.resolve()
    f = Found(root=root, name=name or project_name(root))
    files = python_files(root)
    texts = {p: read(p) for p in files}
    f.dependencies, f.pyproject, f.requirements = dependency_names(root)
    f.uv_lock = (root / "uv.lock").is_file()
    f.uv_lock_committed = committed(root, "uv.lock") if f.uv_lock else None
    f.python = pyversion.read(root)
    f.unbuilt = wheels.unbuilt(root, pyversion.oldest(f.python)) if f.uv_lock else []
    _django(f, files, texts)
    _asgi(f, files, texts)
    _celery(f, files, texts)
    _database(f)
    _env_keys(f, texts)
    if f.databases_literal and any(envvalues.role(k, rs) == "database" for k, rs in f.env_reads.items()):
        f.databases_literal = False   # DATABASE_URL is read after all, through a library (dj_database_url.config())
    if f.django_dir is None and (root / "alembic.ini").is_file():
        f.alembic = "alembic.ini"
    return f


def _django(f: Found, files: list[Path], texts: dict[Path, str]) -> None:
    manages = [p for p in files if p.name == "manage.py" and SETTINGS_RE.search(texts[p])
               and not is_test(f.root, p)]
    if not manages:
        return
    manage = manages[0]
    f.others += [f"another manage.py: {rel(f.root, m)}" for m in manages[1:]]
    f.django_dir = rel(f.root, manage.parent)
    base = manage.parent
    f.settings_default = SETTINGS_RE.search(texts[manage]).group(1)
    choice = settingsmodule.choose(f.root, base, f.settings_default)
    f.settings_module, f.settings_why = choice.module, choice.why
    f.settings_files = settingsmodule.files(base, f.settings_module) or module_file(base, f.settings_module)
    text = "\n".join(read(p) for p in f.settings_files)
    debug = settingsmodule.debug_on(f.settings_files)
    f.debug_in = rel(f.root, debug) if debug else None
    f.media_inside = mediaroot.inside_release(f.root, base, f.settings_files)
    m = WSGI_SETTING_RE.search(text)
    if m:
        module, _, attr = m.group(1).rpartition(".")
        f.wsgi_app = f"{module}:{attr}"
    else:
        top = f.settings_module.split(".")[0]
        if (base / top / "wsgi.py").is_file():
            f.wsgi_app = f"{top}.wsgi:application"
    f.staticfiles = "django.contrib.staticfiles" in text
    f.static_root = bool(STATIC_ROOT_RE.search(text))
    hosts = settingsmodule.assigned(f.settings_files, "ALLOWED_HOSTS")
    if hosts and _literal(hosts[0]):   # a value read from the environment is the .env's to set
        f.allowed_hosts = ast.unparse(hosts[0])
    f.databases_literal = bool(DATABASES_RE.search(text)) and "DATABASE_URL" not in text
    urlconf = settingsmodule.assigned(f.settings_files, "ROOT_URLCONF")
    urlconf_name = (urlconf[0].value if urlconf and isinstance(urlconf[0], ast.Constant)
                    else f.settings_module.split(".")[0] + ".urls")   # startproject's place
    health = healthurl.django(base, urlconf_name, settingsmodule.module_path)
    if health.view:
        f.health_web, f.health_web_why = health.url, health.why
        return
    for p in files:
        if p.name == "urls.py" and not is_test(f.root, p):
            m = DJANGO_HEALTH_RE.search(texts[p])
            if m:
                f.health_web, f.health_web_why = "/" + m.group(1).lstrip("/"), f"a health route in {rel(f.root, p)}"
                return
    f.health_web_guess = health


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


def _asgi(f: Found, files: list[Path], texts: dict[Path, str]) -> None:
    apps = [(p, m.group(1)) for p in files if not is_test(f.root, p)
            for m in [FASTAPI_RE.search(texts[p])] if m]
    if not apps:
        return
    path, var = apps[0]
    f.others += [f"another FastAPI app: {rel(f.root, p)} ({v})" for p, v in apps[1:]]
    base = import_root(path, f.root)
    module = module_of(base, path)
    if module is None:
        f.others.append(f"the FastAPI app in {rel(f.root, path)} cannot be imported by a dotted name")
        return
    f.asgi_dir, f.asgi_app = rel(f.root, base), f"{module}:{var}"
    m = FASTAPI_HEALTH_RE.search(texts[path])
    if m:
        f.health_api = m.group(1)
    f.openapi_moved = _openapi_url(texts[path])
    package = base / module.split(".")[0]
    f.health_routes = [f"{rel(f.root, p)}:{texts[p].count(chr(10), 0, m.start()) + 1} {m.group(1)}"
                       for p in files if p == path or (package.is_dir() and package in p.parents)
                       for m in FASTAPI_HEALTH_RE.finditer(texts[p])][:5]


def _openapi_url(text: str) -> str | None:
    """FastAPI(openapi_url=...) as written, when it is not "/openapi.json" (None: not set, or that)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).rpartition(".")[2] == "FastAPI":
            for kw in node.keywords:
                if kw.arg == "openapi_url" and not (isinstance(kw.value, ast.Constant) and kw.value.value == "/openapi.json"):
                    return ast.unparse(kw.value)
    return None


def _celery(f: Found, files: list[Path], texts: dict[Path, str]) -> None:
    apps = [(p, m.group(1)) for p in files if not is_test(f.root, p)
            for m in [CELERY_RE.search(texts[p])] if m]
    if not apps:
        return
    path, var = apps[0]
    workdir = f.root / (f.django_dir if f.django_dir is not None else (f.asgi_dir or "."))
    module = module_of(workdir, path)
    if module is None:
        f.others.append(f"the Celery app in {rel(f.root, path)} is not importable from {rel(f.root, workdir)}")
        return
    if module.endswith(".celery") and var in ("app", "celery"):
        module = module[: -len(".celery")]           # `celery -A config` finds config.celery's app
    f.celery_app, f.celery_var = module, var
    f.beat = any(BEAT_RE.search(t) for t in texts.values())


def _database(f: Found) -> None:
    text = "\n".join(read(p) for p in f.settings_files)
    pg_dep = sorted(f.dependencies & POSTGRES_DEPS)
    sqlite = "sqlite3" in text or "sqlite:" in text
    if pg_dep:   # settings that take DATABASE_URL may name every engine: the driver decides
        f.database, f.database_why = "postgresql", f"the dependencies include {pg_dep[0]}"
    elif sqlite:
        f.database, f.database_why = "sqlite", "the settings use SQLite, and no PostgreSQL driver is a dependency"
    elif "postgresql" in text or "postgres://" in text:
        f.database, f.database_why = "postgresql", "the settings name PostgreSQL"
    elif "mysql" in text or "mysqlclient" in f.dependencies:
        f.database, f.database_why = "mysql", "the settings name MySQL"
    elif f.django_dir is not None:
        f.database, f.database_why = "sqlite", "Django's default engine"


def _env_keys(f: Found, texts: dict[Path, str]) -> None:
    """Variables the settings, the ASGI app's and the Celery app's modules read from the environment."""
    relevant = list(f.settings_files)
    if f.asgi_app:   # the app's module, and its whole package when it is in one
        module = f.asgi_app.split(":")[0]
        package = f.root / f.asgi_dir / module.split(".")[0]
        relevant += module_file(f.root / f.asgi_dir, module)
        relevant += [p for p in texts if package.is_dir() and package in p.parents]
    if f.celery_app:
        workdir = f.root / (f.django_dir if f.django_dir is not None else (f.asgi_dir or "."))
        relevant += module_file(workdir, f.celery_app)
    by_name: dict[str, list[envreads.Read]] = {}
    sources = {p: texts.get(p) or read(p) for p in dict.fromkeys(relevant)}
    helpers = {name: passes for t in sources.values() for name, passes in envreads.helpers(t).items()}
    for p, text in sources.items():
        for r in envreads.reads(text, rel(f.root, p), helpers):
            if r.name != "DJANGO_SETTINGS_MODULE":
                by_name.setdefault(r.name, []).append(r)
    f.env_reads = by_name
    f.env_keys = list(by_name)
    # a variable any read takes with a default (or tests for first) is optional
    f.env_optional = {k for k, rs in by_name.items() if any(r.default for r in rs)}
    # a variable the code needs only in a branch (if STORAGE == "s3": ...) is needed only when it runs
    f.env_when = {k: rs[0].when for k, rs in by_name.items()
                  if k not in f.env_optional and all(r.when for r in rs)}
    f.env_declared = declaredenv.declared(f.root)


# --- what comes out ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """The hosts.toml entry and the .env for a Found project, in a given inventory."""

    found: Found
    name: str
    source: str               # as written in hosts.toml (relative to its folder when possible)
    port_base: int
    env: str
    env_file: str             # as written in hosts.toml
    base_dir: str
    health: dict[str, str]

    @property
    def web_port(self) -> int:
        return self.port_base

    @property
    def api_port(self) -> int:
        return self.port_base + 1


def free_port_base(ports, name: str) -> int:
    """The standard's range for a standard project, else the first free range after every other."""
    standard = registry.STANDARD.get(name)
    return standard.base if standard else registry.next_free_base(ports)


def plan(found: Found, *, hosts_dir: Path, ports=registry.STANDARD, env: str = "production",
         base_dir: str = "/opt/ayna", env_file: str | None = None) -> Plan:
    try:
        source = found.root.relative_to(hosts_dir.resolve()).as_posix() or "."
    except ValueError:   # a sibling of the inventory's folder stays relative; anything further, absolute
        source = _relative(found.root, hosts_dir.resolve())
        if source.startswith("../.."):
            source = str(found.root)
    health = {}
    if "web" in found.services:
        health["web"] = found.health_web or (found.health_web_guess.url if found.health_web_guess else "/")
    if "api" in found.services:
        health["api"] = found.health_api or "/openapi.json"
    return Plan(found, found.name, source, free_port_base(ports, found.name), env,
                env_file or f"{found.name}.env", base_dir, health)


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


def toml_entry(p: Plan) -> str:
    """The project's [projects.NAME] table: what was found, in hosts.toml's keys (config.schema's
    order), with a note on the lines a person should read."""
    f = p.found
    what = ", ".join(filter(None, [
        f"Django in {f.django_dir} (manage.py)" if f.django_dir is not None else None,
        f"FastAPI {f.asgi_app}" if f.asgi_app else None,
        f"Celery {f.celery_app}" + (" with a beat schedule" if f.beat else "") if f.celery_app else None,
        f"{f.database} ({f.database_why})" if f.database else None]))
    values: dict[str, object] = {"source": p.source, "env": p.env, "env_file": p.env_file,
                                 "port_base": p.port_base, "services": f.services}
    notes = {"env_file": "the .env that setup uploads (secrets: keep it out of git)",
             "port_base": f"web {p.web_port}, api {p.api_port}: a free range of the registry"}
    if f.django_dir is not None:
        values.update(django_dir=f.django_dir, wsgi_app=f.wsgi_app or "config.wsgi:application")
    if f.asgi_app:
        values.update(asgi_dir=f.asgi_dir, asgi_app=f.asgi_app)
    if f.celery_app:
        values["celery_app"] = f.celery_app
    if p.health:
        values["health"] = p.health
    if f.database == "postgresql":
        values["create_database"] = True
        notes["create_database"] = "setup creates DATABASE_URL's role and database (a local one)"
    elif f.database not in (None, "sqlite") and f.django_dir is not None:
        values["backup_before_migrate"] = False
        notes["backup_before_migrate"] = f"ayna-fab cannot back up {f.database}"
    entry = configschema.entry(f"[projects.{p.name}]", "project", values, notes)
    header, rest = entry.split("\n", 1)
    if f.alembic:   # ayna-fab migrates Django; Alembic's migrations run as a hook, once per deploy
        rest += ("\n# found alembic.ini: its migrations, once per deploy, before the new release is checked "
                 "(no backup is taken first: add a hook for one)\n"
                 + configschema.entry(f"[[projects.{p.name}.hooks]]", "hook",
                                      {"name": "alembic", "phase": "after-install", "once": True,
                                       "command": ["alembic", "upgrade", "head"]}))
    return f"{header}\n# found by fab init: {what}\n{rest}"


def redis_db(port_base: int) -> int:
    """A Redis database of the project's own (0-15), so two projects' Celery queues never mix."""
    return (port_base // registry.RANGE_SIZE) % 16


def unfilled(f: Found) -> list[str]:
    """Variables the code needs (no default) that fab init cannot fill in."""
    return [k for k in f.env_keys if k not in STANDARD_VARS and k not in f.env_optional and k not in f.env_when
            and envvalues.role(k, f.env_reads.get(k, ())) is None
            and not (k in f.env_declared and envvalues.usable(f.env_declared[k][0]))]


def _by_condition(f: Found) -> dict[str, list[str]]:
    """The variables needed only in a branch that fab init leaves to the person, by condition."""
    out: dict[str, list[str]] = {}
    for k, when in f.env_when.items():
        if k not in STANDARD_VARS and envvalues.role(k, f.env_reads.get(k, ())) is None \
                and not (k in f.env_declared and envvalues.usable(f.env_declared[k][0])):
            out.setdefault(when, []).append(k)
    return out


def env_values(p: Plan, *, generate: bool) -> list[tuple[str, str, str]]:
    """(key, value, comment) of the .env; secrets random when generate, else placeholders."""
    f = p.found
    ident = re.sub(r"[^a-z0-9_]", "_", p.name)
    root = f"{p.base_dir}/{p.name}"

    def secret() -> str:
        return secrets.token_urlsafe(50) if generate else "CHANGE-ME-generated-by-fab-init---write"
    redis = f"redis://localhost:6379/{redis_db(p.port_base)}"
    if f.database == "postgresql":
        password = secrets.token_hex(16) if generate else "CHANGE-ME"
        db = f"postgresql://{ident}:{password}@localhost:5432/{ident}"
        db_note = "setup creates this role and database (create_database = true)"
    elif f.database == "sqlite" or f.database is None:
        db = f"sqlite:///{root}/shared/db.sqlite3"
        db_note = ("in shared/: it outlives releases, and backups find it" if f.database else
                   "no database found in the code; the standard requires the variable")
    else:
        db = f"{f.database}://USER:PASSWORD@HOST/{ident}"
        db_note = "fill in: ayna-fab does not create or back up this engine"
    redis_note = "a Redis database of this project's own"

    def redis_for(reads) -> tuple[str, str]:
        if envvalues.appended(reads):
            return "redis://localhost:6379", "no database number: the code appends one"
        return redis, redis_note
    by_role = {"secret": lambda reads: (secret(), "random, made for this file" if generate else "random with --write"),
               "database": lambda reads: (db, db_note),
               "redis": redis_for,
               "hosts": lambda reads: (envvalues.separator(reads).join(("127.0.0.1", "localhost")),
                                       "health checks come from 127.0.0.1; add your domain"
                                       + (f" (the code splits on {envvalues.separator(reads)!r})"
                                          if envvalues.separator(reads) != "," else "")),
               "debug": lambda reads: ("", "empty: the code takes bool() of the text, true for any other value")
               if envvalues.truthy(reads) else (envvalues.false_in(reads), "production"),
               "origins": lambda reads: ("http://127.0.0.1", "add https://your.domain"),
               "media": lambda reads: (f"{root}/shared/media", "uploads outlive releases in shared/media")}
    values = [
        ("PROJECT_NAME", p.name, ""),
        ("DJANGO_SETTINGS_MODULE", f.settings_module or "none",
         f.settings_why if f.settings_module else "no Django in this project; the standard requires the variable"),
        ("SECRET_KEY", secret(), "random, made for this file" if generate else ""),
        ("DATABASE_URL", db, db_note),
        ("REDIS_URL", *(redis_for(f.env_reads.get("REDIS_URL", ())) if f.celery_app or "REDIS_URL" in f.env_keys
                        else (redis, "not used by the code found; the standard requires the variable"))),
        ("WEB_PORT", str(p.web_port), "the registry's"),
        ("API_PORT", str(p.api_port), "the registry's"),
    ]
    if f.media_inside or "media" in {envvalues.role(k) for k in f.env_keys}:
        values.append(("MEDIA_ROOT", f"{root}/shared/media", "uploads outlive releases in shared/media"))
    values = [(k, v, "; ".join(filter(None, [note, envvalues.where(f.env_reads.get(k, []))]))) for k, v, note in values]
    known = {k for k, _, _ in values}
    for key in [*f.env_keys, *(k for k in f.env_declared if k not in f.env_keys)]:
        if key in known:
            continue
        known.add(key)
        reads = f.env_reads.get(key, [])
        read_at = envvalues.where(reads) or f"listed in {f.env_declared[key][1]}"
        what = envvalues.role(key, reads)
        declared = f.env_declared.get(key)
        if what is not None:
            value, note = by_role[what](reads)
            values.append((key, value, f"{note}; {read_at}"))
        elif declared and envvalues.usable(declared[0]):
            values.append((key, declared[0], f"as {declared[1]} has it; {read_at}"))
        elif key in f.env_when:
            values.append(("#" + key, "", f"needed only when {f.env_when[key]}; {read_at}"))
        elif key in f.env_optional or not reads:
            values.append(("#" + key, "", f"optional: the code has a default; {read_at}" if reads else read_at))
        else:
            values.append((key, "", f"fill it in; {read_at}"))
    return values


def env_text(p: Plan, *, generate: bool) -> str:
    lines = [f"# {p.name}'s environment ({p.env}), written by fab init. setup uploads it as",
             f"# {p.base_dir}/{p.name}/shared/.env.{p.env} (mode 0600). Keep it out of git."]
    for key, value, note in env_values(p, generate=generate):
        if note:
            lines.append(f"# {key.lstrip('#')}: {note}")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


# --- what stands in the way ----------------------------------------------------------------------

def uv_workspace(path: Path) -> Path | None:
    """The root of the uv workspace whose members include path (a folder above it with a
    pyproject.toml whose [tool.uv.workspace] members match), or None."""
    here = path.resolve()
    for above in here.parents:
        uv = table(pyproject(above), "tool", "uv")
        if "workspace" in uv:
            ws = table(uv, "workspace")
            member = here.relative_to(above).as_posix()
            members, excluded = ([m for m in ws.get(k) or [] if isinstance(m, str)] if isinstance(ws.get(k) or [], list)
                                 else [] for k in ("members", "exclude"))
            if any(fnmatch.fnmatch(member, m) for m in members) and not any(fnmatch.fnmatch(member, m) for m in excluded):
                return above
            return None
    return None


# Packages whose extras install a server the units run.
PROVIDED_BY = {"uvicorn": ("fastapi[standard]", "fastapi[all]", "fastapi[standard-no-fastapi-cloud-cli]")}


def deploy_gaps(f: Found) -> list[Gap]:
    """What would make a first deploy fail, each with its fix."""
    gaps: list[Gap] = []
    path = f.root
    if not f.services:
        gaps.append(Gap("no Django project (manage.py), FastAPI app or Celery app was found",
                        "ayna-fab deploys Django (web), FastAPI (api) and Celery; point fab init at the "
                        "directory that holds them"))
    workspace = uv_workspace(path)
    if not f.uv_lock and workspace:
        member = path.resolve().relative_to(workspace).as_posix()
        gaps.append(Gap(f"this folder is a member of the uv workspace at {workspace}: its uv.lock is there, outside "
                        "what a deploy of this folder sends",
                        f"give it a lock of its own: take \"{member}\" out of [tool.uv.workspace] members in "
                        f"{workspace}/pyproject.toml, then cd {path} && uv lock && git add uv.lock "
                        f"{workspace}/pyproject.toml && git commit -m 'Lock dependencies'"))
    elif not f.uv_lock:
        commit = "git add pyproject.toml uv.lock && git commit -m 'Lock dependencies'"
        adds = f"uv add -r {f.requirements}" if f.requirements else "uv add DEPENDENCIES..."
        if f.pyproject:
            fix = f"cd {path} && uv lock && git add uv.lock && git commit -m 'Lock dependencies'"
        elif not f.requirements and ((path / "Pipfile").is_file() or "poetry" in table(pyproject(path), "tool")):
            # Poetry's or Pipenv's declarations: converted as they are, with their pins
            fix = f"cd {path} && uvx migrate-to-uv && uv lock && {commit}"
        elif (path / "pyproject.toml").is_file():
            # pyproject.toml holds only tools' settings: uv init refuses it, and `uv lock` would lock nothing
            spec = next((d.spec for d in f.python), ">=3.11")
            project_table = rf'\n[project]\nname = "{project_name(path)}"\nversion = "0"\nrequires-python = "{spec}"\ndependencies = []\n'
            fix = f"cd {path} && printf '{project_table}' >> pyproject.toml && {adds} && {commit}"
        else:
            fix = f"cd {path} && uv init --bare --no-workspace && {adds} && {commit}"
        gaps.append(Gap("uv.lock is missing: deploys install exactly the locked versions, with hashes", fix))
    elif f.uv_lock_committed is False:
        gaps.append(Gap("uv.lock is not committed: deploys send committed files only",
                        f"cd {path} && git add uv.lock && git commit -m 'Lock dependencies'"))
    target = wheel_target(f)
    for u in f.unbuilt:
        if u.unused:
            gaps.append(Gap(f"{u.name} {u.version} has no wheel for {target}, so installing it needs a C compiler "
                            f"on the host, and the standard's units never run it ({u.unused})",
                            remove_command(f, u.name)))
    built = [f"{u.name} {u.version}" for u in f.unbuilt if not u.unused]
    if built:
        gaps.append(Gap(f"no wheel for {target} in uv.lock: {', '.join(built)}; the host builds "
                        + ("them" if len(built) > 1 else "it") + " at install, which needs a C compiler for C code",
                        "install one on the host (apt-get install build-essential python3-dev), or lock a version "
                        "that has a wheel", blocking=False))
    needs = {"web": ("gunicorn", "the web unit runs gunicorn"), "api": ("uvicorn", "the api unit runs uvicorn"),
             "celery": ("celery", "the worker runs celery")}
    deps = f.dependencies
    if deps or f.pyproject or f.requirements:
        for service in f.services:
            dep, why = needs.get(service, (None, None))
            if dep and not any(d == dep or d.startswith(dep + "[") or d in PROVIDED_BY.get(dep, ()) for d in deps):
                gaps.append(Gap(f"{dep} is not a dependency, but {why}", f"cd {path} && uv add {dep}"))
        if f.celery_app and not any(d in deps for d in ("redis", "celery[redis]")):
            gaps.append(Gap("Celery's Redis transport is not a dependency, and the broker fab init writes is Redis",
                            f"cd {path} && uv add 'celery[redis]'"))
        if f.database == "postgresql" and not deps & POSTGRES_DEPS:
            gaps.append(Gap("no PostgreSQL driver is a dependency", f"cd {path} && uv add 'psycopg[binary]'"))
    if f.django_dir is not None:
        if not f.wsgi_app:
            gaps.append(Gap("no WSGI application was found (WSGI_APPLICATION or a wsgi.py beside the settings)",
                            "add wsgi.py next to the settings package (django-admin startproject makes one), "
                            "or set wsgi_app in hosts.toml"))
        if f.staticfiles and not f.static_root:
            gaps.append(Gap("STATIC_ROOT is not set, so collectstatic fails",
                            "add STATIC_ROOT = BASE_DIR / \"staticfiles\" to the settings"))
        if f.databases_literal:
            parts = [k for k in f.env_keys if DB_PART_RE.search(k)]
            gaps.append(Gap("the settings set DATABASES themselves and never read DATABASE_URL: a SQLite file "
                            "would live inside each release and be left behind by the next deploy",
                            "read DATABASES from DATABASE_URL in the settings (e.g. with dj-database-url, or "
                            "by parsing os.environ['DATABASE_URL'])"
                            + (f", or give the variables they read for it ({', '.join(parts)}) the values of the "
                               "project's database in the .env" if parts else "")))
        if f.allowed_hosts and "127.0.0.1" not in f.allowed_hosts and "*" not in f.allowed_hosts:
            gaps.append(Gap(f"ALLOWED_HOSTS = {f.allowed_hosts} leaves out 127.0.0.1, where health checks come from",
                            "read ALLOWED_HOSTS from the environment, or add '127.0.0.1'"))
    if f.media_inside:
        m = f.media_inside
        gaps.append(Gap(f"MEDIA_ROOT resolves inside each release ({m.where}, set at {m.file}:{m.line}), not through "
                        "its media link to shared/media: uploads would be left behind by the next deploy",
                        f"in {m.file}: MEDIA_ROOT = os.environ.get(\"MEDIA_ROOT\", {m.expression}); the .env "
                        "fab init writes sets MEDIA_ROOT to shared/media"))
    if f.debug_in:
        gaps.append(Gap(f"the settings {f.settings_module} leave DEBUG = True ({f.debug_in}): a deploy refuses them",
                        "read DEBUG from the environment (DEBUG = os.environ.get(\"DEBUG\") == \"1\"), or name "
                        "production settings in the .env's DJANGO_SETTINGS_MODULE; allow_debug = true in the "
                        "hosts.toml entry deploys them anyway"))
    for key in unfilled(f):
        gaps.append(Gap(f"the code reads {key} from the environment, without a default",
                        "give it a value in the project's .env (fab init leaves it empty)"))
    for when, keys in _by_condition(f).items():
        gaps.append(Gap(f"the code reads {', '.join(keys)} without a default, only when {when}",
                        "if that holds where you deploy, give them values in the project's .env (fab init leaves "
                        "them commented out)", blocking=False))
    if f.celery_var and f.celery_var not in ("app", "celery"):
        gaps.append(Gap(f"the Celery app is named {f.celery_var!r}; celery -A {f.celery_app} looks for app or celery",
                        f"name it app in {f.celery_app}"))
    fb = f.health_web_guess or healthurl.Health("/", "no health view was found: / must answer 200", True)
    if "web" in f.services and not f.health_web and fb.fallback:
        gaps.append(Gap(f"health.web is {fb.url}, a fallback: {fb.why}",
                        f"add a view answering 200 at /health/ and set health.web, or keep {fb.url} if it answers 200",
                        blocking=False))
    routes = f"; health routes in the package: {', '.join(f.health_routes)}" if f.health_routes else ""
    if "api" in f.services and not f.health_api and f.openapi_moved:
        gaps.append(Gap(f"no health route was found on the FastAPI app itself, and it serves its OpenAPI document "
                        f"elsewhere (openapi_url={f.openapi_moved}): /openapi.json, which deploys would poll, "
                        "answers 404",
                        "set health.api in hosts.toml to a path that answers 200 (with its routers' prefixes)" + routes))
    elif "api" in f.services and not f.health_api:
        gaps.append(Gap("no health route was found in the FastAPI app, so deploys poll /openapi.json",
                        "add @app.get(\"/health\") and set health.api" + routes, blocking=False))
    for other in f.others:
        gaps.append(Gap(other, "the entry uses the first one found; edit hosts.toml for another", blocking=False))
    return gaps


def wheel_target(f: Found) -> str:
    """The platform the wheels were judged for: "Linux x86_64 and Python 3.12" (the declared one)."""
    python = pyversion.oldest(f.python)
    return "Linux x86_64" + (f" and Python {python[0]}.{python[1]}" if python else "")


def remove_command(f: Found, name: str) -> str:
    """How to drop a dependency: uv remove when pyproject declares it, else the requirements file."""
    listed = [req for req in (f.requirements,) if req and any(
        re.match(rf"{re.escape(name)}\b", re.sub(r"[-_.]+", "-", ln.lower()))
        for ln in requirement_lines(f.root / req, set()))]
    lock = f"cd {f.root} && uv remove {name} && git commit -am 'Remove {name}, which no unit runs'"
    if listed and not _in_pyproject(f.root, name):
        return f"remove {name} from the requirements {listed[0]} includes, then: cd {f.root} && uv lock"
    return lock


def _in_pyproject(root: Path, name: str) -> bool:
    deps = table(pyproject(root), "project").get("dependencies")
    return isinstance(deps, list) and any(
        isinstance(d, str) and re.match(rf"{re.escape(name)}\b", re.sub(r"[-_.]+", "-", d.lower())) for d in deps)


STANDARD_FIXES = {
    1: "add what is missing: a Makefile with the standard's targets (the standard's template), "
       "pyproject.toml (uv init --bare), and .template-version (echo 2.0.0 > .template-version)",
    2: "mkdir scripts systemd (scripts/poe_commands.py holds the Poe tasks' code in the standard)",
    3: "add the missing targets to the Makefile; each runs its Poe task (e.g. `deploy:` runs `poe deploy`)",
    4: "add the missing [tool.poe.tasks] to pyproject.toml (deploy can run `fab deploy`)",
    5: "save the units `fab -H HOST setup` installs (/etc/systemd/system/PROJECT-*.service on a set-up host) "
       "into systemd/",
    6: "bind the registry's ports on 127.0.0.1 (the units setup renders do)",
    7: "add .env.example with every variable of the .env fab init writes, values left out",
}


def standard_gaps(config: cfgmod.Config, project: cfgmod.Project) -> list[Gap]:
    """`fab validate`'s seven checks on the project, each failing one with its fix."""
    out = []
    for check in conformance.local_checks(config, project):
        if not check.ok:
            out.append(Gap(f"{check.number}. {check.title}: " + "; ".join(check.problems),
                           STANDARD_FIXES.get(check.number, ""), blocking=False))
    return out


def project_config(p: Plan, hosts_file: Path) -> tuple[cfgmod.Config, cfgmod.Project]:
    """The entry as hosts.toml would load it, in a file of its own (for the standard's checks)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hosts.toml"
        source = (hosts_file.parent / p.source).resolve()
        entry = toml_entry(replace(p, source=str(source), env_file=str(Path(tmp) / "x.env")))
        path.write_text(entry + f'\n[hosts.init]\nhostname = "127.0.0.1"\nprojects = ["{p.name}"]\n')
        cfg = cfgmod.load(path)
        return cfg, cfg.projects[p.name]


# --- writing the entry into hosts.toml -----------------------------------------------------------

HOST_HEADER = r"^\[hosts\.{}\][ \t]*(#.*)?$"
PROJECTS_LINE = re.compile(r"^projects[ \t]*=[ \t]*(\[[^\]\n]*\])[ \t]*(#.*)?$")


def inventory_text(existing: str | None, entry: str, name: str, host: str | None,
                   hostname: str | None) -> str:
    """hosts.toml's text with the project entry added, and the project added to `host`'s projects
    (a new [hosts.HOST] table when it has none and a hostname is given). ValueError with the
    reason when the file cannot be edited safely by hand-made rules (the person edits it)."""
    text = (existing or "").rstrip("\n")
    if re.search(rf"^\[projects\.{re.escape(name)}\]", text, re.M):
        raise ValueError(f"hosts.toml already has [projects.{name}]")
    text = (text + "\n\n" if text else "") + entry.rstrip("\n") + "\n"
    if host is None:
        return text
    lines = text.split("\n")
    header = re.compile(HOST_HEADER.format(re.escape(host)))
    at = next((i for i, ln in enumerate(lines) if header.match(ln)), None)
    if at is None:
        if not hostname:
            raise ValueError(f"hosts.toml has no [hosts.{host}]: give --hostname to add it")
        return text + f"\n[hosts.{host}]\nhostname = {json.dumps(hostname)}\nprojects = [{json.dumps(name)}]\n"
    end = next((i for i in range(at + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    for i in range(at + 1, end):
        if lines[i].startswith("projects"):
            m = PROJECTS_LINE.match(lines[i])
            if not m:
                raise ValueError(f"[hosts.{host}]'s projects is not a one-line array: add {name!r} to it by hand")
            carried = tomllib.loads(f"p = {m.group(1)}")["p"]
            lines[i] = "projects = [" + ", ".join(json.dumps(x) for x in [*carried, name]) + "]" + (
                f"  {m.group(2)}" if m.group(2) else "")
            return "\n".join(lines)
    lines.insert(at + 1, f"projects = [{json.dumps(name)}]")
    return "\n".join(lines)
