"""Locked packages that the host would have to build: no wheel in uv.lock for its platform and Python.

A package with only a source distribution is built on the host at install time, which needs a
C compiler for C code (uwsgi, older psycopg2); without one, the install ends in a build
backend's traceback. Read from uv.lock alone: the packages the project installs (its own
entry's dependencies, followed, without development groups), each one's wheel file names,
and their tags (`cp312-cp312-manylinux_2_17_x86_64`). Packages the standard's units never run
(uwsgi: gunicorn serves) are named with the command that removes them.

`fab init` reads the checkout's uv.lock for the Python the project declares (scan/python.py);
a deploy's plan reads the commit's for the host's own Python and machine (ops/planchecks.py).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

# Servers the standard's units do not run, and what does.
UNUSED = {"uwsgi": "gunicorn serves the web unit", "mod-wsgi": "gunicorn serves the web unit",
          "daphne": "uvicorn serves the api unit"}
OTHER_PLATFORM_RE = re.compile(r"""(sys_platform|platform_system)\s*==\s*['"](win32|darwin|Windows|Darwin)['"]""")


@dataclass(frozen=True)
class Unbuilt:
    name: str
    version: str
    unused: str | None    # why the standard's units do not need it, or None


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def fits(filename: str, python: tuple[int, int] | None = None, arch: str = "x86_64") -> bool:
    """Whether a wheel installs on Linux `arch` (glibc) with CPython `python` (None: any 3.x)."""
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) < 5:
        return False
    pys, abi, plats = parts[-3].split("."), parts[-2], parts[-1].split(".")
    if not any(p == "any" or (p.endswith("_" + arch) and (p.startswith("manylinux") or p == "linux_" + arch))
               for p in plats):
        return False
    for tag in pys:
        m = re.fullmatch(r"(py|cp)(\d)(\d*)", tag)
        if not m or m.group(2) != "3":
            continue
        if python is None or not m.group(3):
            return True
        minor = int(m.group(3))
        if m.group(1) == "py" or abi in ("abi3", "none"):
            if minor <= python[1]:
                return True
        elif minor == python[1]:
            return True
    return False


def installed(lock: dict) -> list[dict]:
    """The lock's packages the project installs: its own entry's dependencies, followed."""
    packages = [p for p in lock.get("package", []) if isinstance(p, dict) and isinstance(p.get("name"), str)
                and isinstance(p.get("source", {}), dict)]
    by_name = {norm(p["name"]): p for p in packages}
    roots = [p for p in packages if {"virtual", "editable"} & set(p.get("source", {}))
             and p["source"].get("virtual", p["source"].get("editable")) == "."]
    todo = [(norm(r["name"]), ()) for r in roots]
    seen: dict[str, dict] = {}
    while todo:
        name, extras = todo.pop()
        pkg = by_name.get(name)
        if pkg is None or (name in seen and not extras):
            continue
        seen[name] = pkg
        deps = list(pkg.get("dependencies", []))
        for extra in extras:
            deps += pkg.get("optional-dependencies", {}).get(extra, [])
        for d in deps:
            if isinstance(d, dict) and d.get("name") and not OTHER_PLATFORM_RE.search(str(d.get("marker", ""))):
                todo.append((norm(d["name"]), tuple(d.get("extra", ()))))
    return [p for n, p in seen.items() if p not in roots]


def unbuilt(root: Path, python: tuple[int, int] | None = None) -> list[Unbuilt]:
    """Installed packages of root/uv.lock with no wheel for Linux x86_64 and `python`."""
    try:
        text = (root / "uv.lock").read_text()
    except OSError:
        return []
    return unbuilt_in(text, python)


def unbuilt_in(text: str, python: tuple[int, int] | None = None, arch: str = "x86_64") -> list[Unbuilt]:
    """Installed packages of a uv.lock's text with no wheel for Linux `arch` and `python`, by name."""
    try:
        lock = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    out = []
    for pkg in installed(lock):
        if "registry" not in pkg.get("source", {}):
            continue   # a git or path dependency: built from source by design
        names = [str(w.get("url", w.get("path", ""))).rsplit("/", 1)[-1] for w in pkg.get("wheels", [])
                 if isinstance(w, dict)]
        if not any(fits(n, python, arch) for n in names):
            name = norm(pkg["name"])
            out.append(Unbuilt(name, str(pkg.get("version", "")), UNUSED.get(name)))
    return sorted(out, key=lambda u: u.name)
