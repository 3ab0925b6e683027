"""The demo project examples/uavcrew: conformance, failure modes, consistency.

These tests need neither Django nor the demo's other dependencies: they run
validate.sh, edit copies of the tree with failure_modes.py, and inspect
source files, TOML and the lock files.
"""

from __future__ import annotations

import ast
import importlib.util
import py_compile
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.prereqs import requires

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "uavcrew"
FAILURE_MODES = DEMO / "failure_modes.py"
UNITS = ("web", "api", "celery", "beat")
SECTIONS = (
    "[1/7] Required files exist",
    "[2/7] Required directories exist",
    "[3/7] Makefile has all required targets",
    "[4/7] Poe tasks are defined in pyproject.toml",
    "[5/7] Systemd units exist",
    "[6/7] Port assignments match registry",
    "[7/7] Environment files documented",
)
RUNTIME_DEPENDENCIES = {
    "django", "gunicorn", "uvicorn", "fastapi", "celery", "redis", "psycopg", "python-dotenv",
}

needs_bash = requires(shutil.which("bash") is not None, "validate.sh needs bash")

IGNORED = shutil.ignore_patterns(
    ".venv", "__pycache__", "*.pyc", ".pytest_cache", "staticfiles", "media", ".env"
)


def _name(requirement: str) -> str:
    """Normalised distribution name of a PEP 508 requirement string."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock_versions(path: Path) -> dict[str, str]:
    lock = tomllib.loads(path.read_text(encoding="utf-8"))
    return {pkg["name"]: pkg["version"] for pkg in lock["package"] if "version" in pkg}


def _wheelhouse() -> dict[str, str]:
    pins = {}
    for line in (DEMO / "wheelhouse-requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_name(name)] = version
    return pins


def run_validate(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(project / "validate.sh")],
        cwd=project, capture_output=True, text=True, timeout=60,
    )


def run_mode(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(project / "failure_modes.py"), *args, "--project-dir", str(project)],
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A private copy of the demo project, safe to break."""
    target = tmp_path / "uavcrew"
    shutil.copytree(DEMO, target, ignore=IGNORED)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


# --- validate.sh --------------------------------------------------------------


@needs_bash
def test_validate_passes_on_the_demo_and_prints_the_seven_checks():
    result = run_validate(DEMO)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for section in SECTIONS:
        assert section in out
    assert "✗" not in out
    for line in (
        "✓ Makefile exists",
        "✓ pyproject.toml exists",
        "✓ .template-version is 2.0.0",
        "✓ scripts/ exists",
        "✓ systemd/ exists",
        "✓ make deploy target defined (runs poe deploy)",
        "✓ make validate target defined (runs ./validate.sh)",
        "✓ pyproject.toml has [tool.poe.tasks]",
        "✓ poe task services:status defined",
        "✓ systemd/uavcrew-beat.service exists",
        "✓ Port 8130 matches registry for uavcrew",
        "✓ Port 8131 matches registry for uavcrew",
        "✓ .env.example documents DATABASE_URL",
    ):
        assert line in out


@needs_bash
def test_validate_accepts_a_project_dir_argument(project: Path, tmp_path: Path):
    result = subprocess.run(
        ["bash", str(DEMO / "validate.sh"), str(project)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout
    assert str(project) in result.stdout


def _remove(rel: str):
    def mutate(root: Path) -> None:
        path = root / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return mutate


def _replace(rel: str, old: str, new: str):
    def mutate(root: Path) -> None:
        edit(root / rel, old, new)
    return mutate


def _drop_lines(rel: str, pattern: str):
    def mutate(root: Path) -> None:
        path = root / rel
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not re.search(pattern, line)]
        assert len(kept) < len(lines), f"{pattern!r} matched nothing in {rel}"
        path.write_text("".join(kept), encoding="utf-8")
    return mutate


BREAKAGES = {
    "no Makefile": (_remove("Makefile"), "✗ Makefile is missing"),
    "old template version": (
        _replace(".template-version", "2.0.0", "1.0.0"),
        "✗ .template-version is '1.0.0', expected 2.x",
    ),
    "no systemd dir": (_remove("systemd"), "✗ systemd/ is missing"),
    "no rollback target": (
        _replace("Makefile", "rollback:\n\t@poe rollback\n", ""),
        "✗ make rollback target missing",
    ),
    "deploy target runs something else": (
        _replace("Makefile", "\t@poe deploy production", "\t@./deploy.sh"),
        "✗ make deploy does not run 'poe deploy'",
    ),
    "no poe tasks table": (
        _replace("pyproject.toml", "[tool.poe.tasks]", "[tool.other.tasks]"),
        "✗ pyproject.toml has no [tool.poe.tasks]",
    ),
    "no services:stop task": (
        _drop_lines("pyproject.toml", r'^"services:stop"'),
        "✗ poe task services:stop missing from [tool.poe.tasks]",
    ),
    "no beat unit": (_remove("systemd/uavcrew-beat.service"), "✗ systemd/uavcrew-beat.service is missing"),
    "unit outside the venv": (
        _replace("systemd/uavcrew-celery-blue.service", "ExecStart=/opt/ayna/uavcrew/releases/blue/.venv/bin/celery",
                 "ExecStart=/usr/bin/celery"),
        "✗ systemd/uavcrew-celery-blue.service: ExecStart does not run from /opt/ayna/uavcrew/venv/bin (or a slot's venv)",
    ),
    "web binds every address": (
        _replace("systemd/uavcrew-web-blue.service", "--bind 127.0.0.1:8130", "--bind 0.0.0.0:8130"),
        "✗ systemd/uavcrew-web-blue.service binds '0.0.0.0:8130', expected 127.0.0.1:8130",
    ),
    "api on another project's port": (
        _replace("systemd/uavcrew-api-blue.service", "--port 8131", "--port 8141"),
        "✗ systemd/uavcrew-api-blue.service binds '127.0.0.1:8141', expected 127.0.0.1:8131",
    ),
    "project not in the registry": (
        _replace("Makefile", "PROJECT_NAME ?= uavcrew", "PROJECT_NAME ?= mystery"),
        "✗ mystery is not in the port registry",
    ),
    "no .env.example": (_remove(".env.example"), "✗ .env.example is missing"),
    "REDIS_URL undocumented": (
        _drop_lines(".env.example", r"^REDIS_URL="),
        "✗ .env.example does not document REDIS_URL",
    ),
}


@needs_bash
@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_validate_fails_with_the_right_line(project: Path, breakage: str):
    mutate, expected = BREAKAGES[breakage]
    mutate(project)
    result = run_validate(project)
    assert result.returncode == 1, result.stdout
    assert any(line.startswith(expected) for line in result.stdout.splitlines()), result.stdout
    for section in SECTIONS:  # every check still runs and reports
        assert section in result.stdout


@needs_bash
@requires(shutil.which("git") is not None, "needs git")
def test_validate_fails_when_an_env_file_is_committed(project: Path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    (project / ".env").write_text("SECRET_KEY=oops\n")
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "add", "-f", ".env"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], cwd=project, check=True)
    result = run_validate(project)
    assert result.returncode == 1
    assert any(
        line.startswith("✗ environment files are tracked by git") and ".env" in line
        for line in result.stdout.splitlines()
    ), result.stdout


# --- failure_modes.py -------------------------------------------------------


def test_failure_modes_lists_every_mode():
    result = subprocess.run([sys.executable, str(FAILURE_MODES), "--list"], capture_output=True, text=True)
    assert result.returncode == 0
    names = {line.split()[0] for line in result.stdout.splitlines()}
    assert names == {
        "import-error", "health-500", "migration-fails",
        "bad-dependency", "code-change", "dependency-change",
    }


def test_unknown_mode_is_a_usage_error(project: Path):
    assert run_mode(project, "no-such-mode").returncode == 2


def test_import_error_makes_the_django_app_unimportable(project: Path):
    models = project / "src/web/crew/models.py"
    result = run_mode(project, "import-error")
    assert result.returncode == 0
    assert "changed src/web/crew/models.py" in result.stdout
    tree = ast.parse(models.read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    missing = [name for name in imported if name.startswith("uavcrew_failure_mode")]
    assert missing and importlib.util.find_spec(missing[0]) is None
    py_compile.compile(str(models), doraise=True)  # still valid Python: it fails at import
    before = models.read_text()
    again = run_mode(project, "import-error")
    assert again.returncode == 0 and "unchanged" in again.stdout
    assert models.read_text() == before


def _first_statement(path: Path, function: str) -> ast.stmt:
    tree = ast.parse(path.read_text())
    func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    body = func.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return body[0]


def test_health_500_makes_both_health_handlers_raise(project: Path):
    web, api = project / "src/web/crew/views.py", project / "src/api/main.py"
    assert not isinstance(_first_statement(web, "health"), ast.Raise)
    result = run_mode(project, "health-500")
    assert result.returncode == 0
    for path in (web, api):
        stmt = _first_statement(path, "health")
        assert isinstance(stmt, ast.Raise), path
        py_compile.compile(str(path), doraise=True)
    # Only the health handlers: the index views are untouched.
    assert not isinstance(_first_statement(web, "index"), ast.Raise)
    assert not isinstance(_first_statement(api, "index"), ast.Raise)
    assert "unchanged" in run_mode(project, "health-500").stdout


def test_health_500_refuses_a_tree_it_does_not_recognise(project: Path):
    edit(project / "src/api/main.py", 'build_report("api")', 'make_report("api")')
    result = run_mode(project, "health-500")
    assert result.returncode == 1
    assert "src/api/main.py" in result.stderr


def test_migration_fails_adds_a_raising_migration_after_the_latest(project: Path):
    migrations = project / "src/web/crew/migrations"
    before = sorted(p.name for p in migrations.glob("[0-9]*.py"))
    result = run_mode(project, "migration-fails")
    assert result.returncode == 0
    added = sorted(set(p.name for p in migrations.glob("[0-9]*.py")) - set(before))
    assert len(added) == 1
    path = migrations / added[0]
    assert int(added[0][:4]) == int(before[-1][:4]) + 1
    source = path.read_text()
    py_compile.compile(str(path), doraise=True)
    assert f'("crew", "{before[-1][:-3]}")' in source
    assert "migrations.RunPython(fail" in source
    # The operation itself raises (run just the function; no Django needed).
    tree = ast.parse(source)
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "fail")
    namespace: dict = {}
    exec(compile(ast.Module(body=[func], type_ignores=[]), str(path), "exec"), namespace)
    with pytest.raises(RuntimeError, match="migration-fails"):
        namespace["fail"](None, None)
    assert "unchanged" in run_mode(project, "migration-fails").stdout


def _dependencies(pyproject: Path) -> set[str]:
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    return {_name(req) for req in data["project"]["dependencies"]}


def test_bad_dependency_locks_a_package_the_wheelhouse_lacks(project: Path):
    result = run_mode(project, "bad-dependency")
    assert result.returncode == 0
    added = _dependencies(project / "pyproject.toml") - _dependencies(DEMO / "pyproject.toml")
    assert added == {"cowsay"}
    assert "cowsay" in _lock_versions(project / "uv.lock")
    assert "cowsay" not in _wheelhouse()


def test_dependency_change_adds_a_package_the_wheelhouse_has(project: Path):
    result = run_mode(project, "dependency-change")
    assert result.returncode == 0
    added = _dependencies(project / "pyproject.toml") - _dependencies(DEMO / "pyproject.toml")
    assert added == {"humanize"}
    locked = _lock_versions(project / "uv.lock")
    assert _wheelhouse()["humanize"] == locked["humanize"]


def _banners(project: Path) -> tuple[str, str]:
    pattern = re.compile(r'^BANNER = "([^"]*)"$', re.M)
    return tuple(
        pattern.search((project / rel).read_text()).group(1)
        for rel in ("src/web/crew/banner.py", "src/api/banner.py")
    )


def test_code_change_changes_the_visible_text_every_time(project: Path):
    original = _banners(project)
    assert original[0] == original[1]
    assert run_mode(project, "code-change").returncode == 0
    first = _banners(project)
    assert first[0] == first[1] != original[0]
    assert run_mode(project, "code-change").returncode == 0
    second = _banners(project)
    assert second[0] == second[1] not in (original[0], first[0])
    assert run_mode(project, "code-change", "--text", "Crew roster, redeployed").returncode == 0
    assert _banners(project) == ("Crew roster, redeployed",) * 2
    for rel in ("src/web/crew/banner.py", "src/api/banner.py"):
        py_compile.compile(str(project / rel), doraise=True)


# --- the project's files ------------------------------------------------------


def test_every_python_file_compiles(tmp_path: Path):
    files = [p for p in DEMO.rglob("*.py") if ".venv" not in p.parts]
    assert len(files) > 20
    for path in files:
        py_compile.compile(str(path), cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_pyproject_follows_the_deployment_rules():
    data = tomllib.loads((DEMO / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["project"]["requires-python"] == ">=3.11"
    assert data["tool"]["uv"]["package"] is False
    assert _dependencies(DEMO / "pyproject.toml") == RUNTIME_DEPENDENCIES
    assert {_name(r) for r in data["dependency-groups"]["dev"]} == {"poethepoet", "pytest"}
    tasks = data["tool"]["poe"]["tasks"]
    for task in ("dev", "deploy", "rollback", "migrate", "shell", "logs", "test", "lint",
                 "services:start", "services:stop", "services:restart", "services:status"):
        assert task in tasks
    assert (DEMO / ".template-version").read_text().strip() == "2.0.0"


def test_dependency_variants_differ_from_the_project_by_one_dependency():
    base_text = (DEMO / "pyproject.toml").read_text(encoding="utf-8").splitlines()
    base_lock = _lock_versions(DEMO / "uv.lock")
    for variant, extra in (("bad-dependency", "cowsay"), ("dependency-change", "humanize")):
        folder = DEMO / "failure_modes" / variant
        lines = (folder / "pyproject.toml").read_text(encoding="utf-8").splitlines()
        added = [line for line in lines if line not in base_text]
        assert [line for line in base_text if line not in lines] == [], variant
        assert [line for line in added if not line.strip().startswith("#")] == [
            line for line in added if extra in line and not line.strip().startswith("#")
        ], variant
        locked = _lock_versions(folder / "uv.lock")
        assert set(locked) - set(base_lock) == {extra}, variant
        assert {name: locked[name] for name in base_lock} == base_lock, variant


def test_wheelhouse_requirements_match_the_lock():
    lock = tomllib.loads((DEMO / "uv.lock").read_text(encoding="utf-8"))
    packages = {pkg["name"]: pkg for pkg in lock["package"]}
    # Runtime closure of the project, markers ignored (the wheelhouse is a superset).
    seen: set[str] = set()
    todo = list(packages["uavcrew"]["dependencies"])
    while todo:
        dep = todo.pop()
        pkg = packages[dep["name"]]
        if dep["name"] not in seen:
            seen.add(dep["name"])
            todo.extend(pkg.get("dependencies", []))
        for extra in dep.get("extra", []):
            todo.extend(pkg.get("optional-dependencies", {}).get(extra, []))
    wheelhouse = _wheelhouse()
    assert set(wheelhouse) == seen | {"humanize"}
    for name in seen:
        assert wheelhouse[name] == packages[name]["version"], name
    assert "async-timeout" in wheelhouse  # Debian's Python 3.11.2 needs it
    assert not RUNTIME_DEPENDENCIES - set(wheelhouse)


def _unit(service: str, slot: str = "blue") -> str:
    """The demo's unit of service (of its slot, for the slotted web, api and celery)."""
    name = f"uavcrew-{service}.service" if service == "beat" else f"uavcrew-{service}-{slot}.service"
    return (DEMO / "systemd" / name).read_text(encoding="utf-8")


def _exec_start(text: str) -> str:
    match = re.search(r"^ExecStart=(.*?)(?<!\\)$", text, re.M | re.S)
    return re.sub(r"\\\n\s*", " ", match.group(1))


def test_units_apply_the_release_and_reload_rules():
    for service in UNITS:
        for slot in ("blue", "green"):
            text = _unit(service, slot)
            # beat runs the live release; a slot's unit runs the release its link names
            release = "current" if service == "beat" else slot
            venv = "venv" if service == "beat" else f"releases/{slot}/.venv"
            assert "User=adonis" in text and "Group=adonis" in text
            assert f"WorkingDirectory=/opt/ayna/uavcrew/releases/{release}\n" in text
            # The venv first; the system's directories after it, for relocatable entry-point shims.
            assert f'Environment="PATH=/opt/ayna/uavcrew/{venv}/bin:/usr/local/bin:/usr/bin:/bin"' in text
            assert "EnvironmentFile=/opt/ayna/uavcrew/shared/.env.production" in text
            assert _exec_start(text).startswith(f"/opt/ayna/uavcrew/{venv}/bin/")
            assert "0.0.0.0" not in text
            if service != "beat":   # only the slot that runs the live release starts
                assert f'readlink -f /opt/ayna/uavcrew/releases/{slot})" = "$$(readlink -f /opt/ayna/uavcrew/releases/current)' in text
    web = _unit("web")
    assert "Type=notify" in web
    assert "--chdir /opt/ayna/uavcrew/releases/blue/src/web" in _exec_start(web)
    assert "--bind 127.0.0.1:8130" in _exec_start(web)
    assert "--preload" not in _exec_start(web)
    assert "ExecReload=/bin/kill -s HUP $MAINPID" in web
    api = _unit("api")
    assert "--app-dir /opt/ayna/uavcrew/releases/blue/src" in _exec_start(api)
    assert re.search(r"--host 127\.0\.0\.1 .*--port 8131 .*--workers [2-9]", _exec_start(api))
    assert "ExecReload=/bin/kill -s HUP $MAINPID" in api
    celery = _unit("celery")
    assert "KillMode=mixed" in celery
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", celery, re.M).group(1))
    base = (DEMO / "src/web/config/settings/base.py").read_text()
    longest = int(re.search(r"^CELERY_TASK_TIME_LIMIT = (\d+)$", base, re.M).group(1))
    assert stop > longest
    assert "--workdir /opt/ayna/uavcrew/releases/blue/src/web" in _exec_start(_unit("celery"))
    assert "--workdir /opt/ayna/uavcrew/releases/current/src/web" in _exec_start(_unit("beat"))
    assert "--schedule /opt/ayna/uavcrew/logs/" in _exec_start(_unit("beat"))


def test_environment_helpers_parse_database_urls_without_django(tmp_path: Path):
    path = tmp_path / "environment.py"  # a copy: no __pycache__ in the demo tree
    shutil.copy(DEMO / "src/web/config/environment.py", path)
    spec = importlib.util.spec_from_file_location("uavcrew_environment", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    db = module.parse_database_url("postgresql://crew:p%40ss@localhost:5432/uavcrew")
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "uavcrew", "crew", "p@ss", "localhost", "5432",
    )
    with pytest.raises(module.ConfigurationError):
        module.parse_database_url("mysql://u:p@localhost/db")
    assert module.read_release(DEMO)["release"] == "dev"


def test_env_example_documents_every_variable_the_code_reads():
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (DEMO / ".env.example").read_text(), re.M))
    read = set()
    for path in (DEMO / "src").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        read |= set(re.findall(r"""env_(?:str|int|bool|list)\(\s*["']([A-Z][A-Z0-9_]*)["']""", text))
        read |= set(re.findall(r"""os\.environ(?:\.get)?\(\s*["']([A-Z][A-Z0-9_]*)["']""", text))
        read |= set(re.findall(r"""_required\(\s*["']([A-Z][A-Z0-9_]*)["']""", text))
    read.discard("DJANGO_SETTINGS_MODULE")  # set with setdefault; documented anyway
    assert read, "no environment reads found"
    assert read <= documented, read - documented
