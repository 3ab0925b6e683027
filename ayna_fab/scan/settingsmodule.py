"""Which Django settings module a deploy should run, why, and the files it is made of.

manage.py's default is the developer's (often `settings.dev`, DEBUG on). A project says what it
runs in production elsewhere: a Dockerfile's or Procfile's `DJANGO_SETTINGS_MODULE`, `heroku.yml`,
`app.json`, or a `production`/`prod` module beside the default. The first of those naming a module
that exists wins; manage.py's default only when there is none. A settings module is its file and
every project module it imports (`from .base import *`), in the order Python runs them, so what
it reads and what it sets (DEBUG, MEDIA_ROOT) is found across all of them.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

DECLARED_RE = re.compile(r"""DJANGO_SETTINGS_MODULE["']?\s*(?:=|:|\s)\s*["']?([A-Za-z_][\w.]*)""")
SETTINGS_FLAG_RE = re.compile(r"""--settings[= ]["']?([A-Za-z_][\w.]*)""")
DEV_PARTS = {"dev", "development", "local", "test", "tests", "testing", "ci"}
PRODUCTION_NAMES = ("production", "prod")
DEPLOY_FILES = ("Dockerfile", "Procfile", "heroku.yml", "app.json")
MAX_DEPTH = 3   # compose/production/django/Dockerfile


@dataclass(frozen=True)
class Choice:
    module: str
    why: str


def deploy_files(root: Path) -> list[Path]:
    """Dockerfiles (any name starting with Dockerfile, down to MAX_DEPTH), Procfile, heroku.yml, app.json."""
    out = [root / n for n in DEPLOY_FILES[1:] if (root / n).is_file()]
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for e in entries:
            if e.is_symlink():
                continue
            if e.is_dir() and depth < MAX_DEPTH and not e.name.startswith(".") and e.name not in ("node_modules",):
                stack.append((e, depth + 1))
            elif e.is_file() and e.name.startswith("Dockerfile"):
                out.append(e)
    return out


def declared(root: Path) -> list[tuple[str, Path]]:
    """(module, file) for every DJANGO_SETTINGS_MODULE a deploy file names."""
    out = []
    for path in deploy_files(root):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.name == "app.json":
            try:
                value = (json.loads(text).get("env") or {}).get("DJANGO_SETTINGS_MODULE")
            except (json.JSONDecodeError, AttributeError):
                value = None
            value = value.get("value") if isinstance(value, dict) else value
            if isinstance(value, str):
                out.append((value, path))
            continue
        for rx in (DECLARED_RE, SETTINGS_FLAG_RE):
            out += [(m.group(1), path) for m in rx.finditer(text)]
    return out


def is_dev(module: str) -> bool:
    return bool(DEV_PARTS & set(re.split(r"[._]", module.lower())))


def module_path(base: Path, module: str) -> Path | None:
    target = base.joinpath(*module.split("."))
    if target.with_suffix(".py").is_file():
        return target.with_suffix(".py")
    if (target / "__init__.py").is_file():
        return target / "__init__.py"
    return None


def choose(root: Path, base: Path, default: str) -> Choice:
    """The settings a deploy runs: base is manage.py's folder (on sys.path), default its module."""
    for module, path in declared(root):
        if module_path(base, module) and not is_dev(module):
            return Choice(module, f"{path.relative_to(root).as_posix()} sets it")
    package = default if (module_path(base, default) or Path()).name == "__init__.py" else default.rpartition(".")[0]
    if package:
        for name in PRODUCTION_NAMES:
            candidate = f"{package}.{name}"
            if candidate != default and module_path(base, candidate):
                return Choice(candidate, f"{candidate.replace('.', '/')}.py exists (manage.py's default is {default})")
    return Choice(default, "manage.py's default" + (
        "; no production settings were found (a production module, or a Dockerfile or Procfile naming one)"
        if is_dev(default) else ""))


def files(base: Path, module: str) -> list[Path]:
    """The module's file and the project modules it imports, each after what it imports."""
    out: list[Path] = []
    start = module_path(base, module)
    if start is not None:
        _visit(base, start, out, set())
    return out


def _visit(base: Path, path: Path, out: list[Path], seen: set[Path]) -> None:
    if path in seen:
        return
    seen.add(path)
    try:
        tree = ast.parse(path.read_text(errors="replace"))
    except (OSError, SyntaxError, ValueError):
        out.append(path)
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for dep in _imported(base, path, node):
                _visit(base, dep, out, seen)
    out.append(path)


def _imported(base: Path, path: Path, node: ast.ImportFrom) -> list[Path]:
    if node.level:
        folder = path.parent
        for _ in range(node.level - 1):
            folder = folder.parent
        try:
            prefix = ".".join(folder.relative_to(base).parts)
        except ValueError:
            return []
        module = ".".join(p for p in (prefix, node.module or "") if p)
    else:
        module = node.module or ""
    found = []
    target = module_path(base, module) if module else None
    if target:
        found.append(target)
    if target is None or target.name == "__init__.py":   # `from . import base`: modules by name
        for a in node.names:
            sub = module_path(base, f"{module}.{a.name}" if module else a.name)
            if sub:
                found.append(sub)
    return found


def assigned(paths: list[Path], name: str) -> tuple[ast.expr, Path] | None:
    """The value name has once the settings (paths[-1], importing the others) have run: its last
    top-level assignment, a star import counting where it stands."""
    return _last(paths, paths[-1], name, set()) if paths else None


def _last(paths: list[Path], path: Path, name: str, seen: set[Path]) -> tuple[ast.expr, Path] | None:
    if path in seen:
        return None
    seen.add(path)
    try:
        tree = ast.parse(path.read_text(errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return None
    last = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            last = (node.value, path)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name \
                and node.value is not None:
            last = (node.value, path)
        elif isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            star = _star_source(paths, path, node)
            found = _last(paths, star, name, seen) if star else None
            last = found or last
    return last


def _star_source(paths: list[Path], path: Path, node: ast.ImportFrom) -> Path | None:
    """Which of the settings' files `from X import *` in path reads."""
    parts = (node.module or "").split(".") if node.module else []
    if node.level:
        folder = path.parent
        for _ in range(node.level - 1):
            folder = folder.parent
        wanted = [folder.joinpath(*parts).with_suffix(".py"), folder.joinpath(*parts, "__init__.py")]
        return next((p for p in paths if p in wanted), None)
    tails = ["/".join(parts) + ".py", "/".join([*parts, "__init__.py"])]
    return next((p for p in paths if any(p.as_posix().endswith("/" + t) for t in tails)), None)


def debug_on(paths: list[Path]) -> Path | None:
    """The file that leaves DEBUG = True (a literal) in the settings, else None."""
    found = assigned(paths, "DEBUG")
    if found and isinstance(found[0], ast.Constant) and found[0].value is True:
        return found[1]
    return None
