"""The Python a project declares, and whether a host's Python satisfies it: pure, read in one place.

Four files say it, in the forms projects use:

- `pyproject.toml`'s `[project] requires-python`: a PEP 440 specifier set, taken as written;
- `.python-version` (pyenv, uv), `runtime.txt` (`python-3.12.1`, Heroku's form) and the
  Dockerfile's `FROM python:3.12-slim`: one version each, read as *that minor version or newer*.
  They name the Python the project was built and tested with; a host has the one Python its
  distribution ships, and a newer minor version runs such code far more often than an older one.

hosts.toml's `python` key (a version or a specifier) replaces what the files say: the person
deploying has the last word. `declared` gathers the declarations, `unmet` judges a version.
Both `fab init` (scan) and a deploy's plan (ops/planchecks.py) call them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The files read, relative to the project's root, in the order they are reported.
FILES = ("pyproject.toml", ".python-version", "runtime.txt", "Dockerfile")

_VERSION = r"(\d+)(?:\.(\d+|\*))?(?:\.(\d+|\*))?"
_SPEC_RE = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)?\s*v?" + _VERSION + r"[\w.+-]*\s*$")
_BARE_RE = re.compile(r"^\s*(?:python-?|cpython-?)?(3)\.(\d+)(?:\.\d+)?\S*\s*$", re.I)
_FROM_RE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(?:[\w.:/-]+/)?python:(3)\.(\d+)", re.I | re.M)


@dataclass(frozen=True)
class Declaration:
    """One place that says which Python the project needs."""

    source: str                 # "pyproject.toml (requires-python)", "runtime.txt", "hosts.toml (python)", ...
    text: str                   # as written there
    spec: str                   # as a specifier set: ">=3.12", ">=3.10,<3.13"

    def __str__(self) -> str:
        return f"{self.source}: {self.text}"


def minimum(version: str) -> str | None:
    """A bare version as a specifier ("3.12.1" -> ">=3.12"); a specifier as it is; None if neither."""
    m = _BARE_RE.match(version)
    if m:
        return f">={m.group(1)}.{m.group(2)}"
    parts = [p.strip() for p in version.split(",") if p.strip()]
    if parts and all(_SPEC_RE.match(p) and re.match(r"^\s*[<>=!~]", p) for p in parts):
        return ",".join(parts)
    return None


def declared(files: Mapping[str, str], override: str | None = None) -> list[Declaration]:
    """What the project's files (name -> text, as in FILES) declare; override (hosts.toml) replaces them.

    A file that cannot be read as a declaration is passed over: a wrong guess would refuse a
    host for nothing."""
    if override:
        spec = minimum(override)
        return [Declaration("hosts.toml (python)", override, spec)] if spec else []
    out: list[Declaration] = []
    text = files.get("pyproject.toml")
    if text:
        try:
            req = tomllib.loads(text).get("project", {}).get("requires-python")
        except (tomllib.TOMLDecodeError, AttributeError):
            req = None
        spec = minimum(req) if isinstance(req, str) else None
        if spec:
            out.append(Declaration("pyproject.toml (requires-python)", req, spec))
    for name in (".python-version", "runtime.txt"):
        lines = [ln.strip() for ln in (files.get(name) or "").splitlines()
                 if ln.strip() and not ln.strip().startswith("#")]
        m = _BARE_RE.match(lines[0]) if lines else None
        if m:
            out.append(Declaration(name, lines[0], f">=3.{m.group(2)}"))
    m = _FROM_RE.search(files.get("Dockerfile") or "")
    if m:
        out.append(Declaration("Dockerfile (FROM)", m.group(0).strip(), f">=3.{m.group(2)}"))
    return out


def read(project_dir: Path, override: str | None = None) -> list[Declaration]:
    """What a project's checkout declares (fab init reads the working tree; a deploy the commit)."""
    files = {}
    for name in FILES:
        try:
            files[name] = (Path(project_dir) / name).read_text(errors="replace")
        except OSError:
            continue
    return declared(files, override)


def describe(declarations: list[Declaration]) -> str:
    """One line for people: "Python >=3.12 (runtime.txt: python-3.12.1)", or that nothing says."""
    if not declarations:
        return "Python: the project does not say which (requires-python, .python-version, runtime.txt, Dockerfile)"
    specs = ",".join(dict.fromkeys(d.spec for d in declarations))
    return f"Python {specs} (" + "; ".join(str(d) for d in declarations) + ")"


def oldest(declarations: list[Declaration]) -> tuple[int, int] | None:
    """The oldest Python 3 minor version that satisfies every declaration (">=3.12" -> (3, 12)):
    the one the project was made with, whose wheels uv.lock must hold. None when nothing is declared
    or no 3.x satisfies them all."""
    if not declarations:
        return None
    return next(((3, minor) for minor in range(40)
                 if any(not unmet(f"3.{minor}.{patch}", declarations) for patch in (0, 99))), None)


def parse_version(text: str) -> tuple[int, ...] | None:
    """"3.11.2" -> (3, 11, 2); None if text is no version."""
    m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def _clause(version: tuple[int, ...], clause: str) -> bool:
    m = _SPEC_RE.match(clause)
    if not m:
        return True   # declared() never builds one; a stranger is not ours to refuse on
    op = m.group(1) or "=="
    parts = [g for g in m.groups()[1:] if g is not None]
    if "*" in parts:
        fixed = [int(p) for p in parts[:parts.index("*")]]
        same = list(version[:len(fixed)]) == fixed
        return same if op == "==" else not same if op == "!=" else True
    want = tuple(int(p) for p in parts)
    have = (version + (0, 0, 0))[:max(len(want), 1)]
    if op == "~=":
        prefix = want[:-1] if len(want) > 1 else want
        return have >= want and version[:len(prefix)] == prefix
    return {"==": have == want, "===": have == want, "!=": have != want, ">=": have >= want,
            "<=": have <= want, ">": have > want, "<": have < want}[op]


def satisfies(version: str, spec: str) -> bool:
    """Whether a version ("3.11.2") meets a specifier set (">=3.10,<3.13"); an unreadable version does not."""
    have = parse_version(version)
    if have is None:
        return False
    return all(_clause(have, c) for c in spec.split(",") if c.strip())


def unmet(version: str, declarations: list[Declaration]) -> list[Declaration]:
    """The declarations a host's Python version does not satisfy (none: it may run the project)."""
    return [d for d in declarations if not satisfies(version, d.spec)]


def refusal(host: str, version: str, missing: list[Declaration], project: str) -> tuple[str, str]:
    """(problem, ways out) for a host whose Python does not satisfy the project."""
    said = "; ".join(str(d) for d in missing)
    problem = f"the host's Python is {version}, and {project} needs Python {missing[0].spec} ({said})"
    hint = (f"deploy to a host whose /usr/bin/python3 satisfies {missing[0].spec} (Debian 13 ships 3.13, "
            f"Ubuntu 24.04 3.12), or, if the project runs on {version}, say so: "
            f'python = "{".".join(version.split(".")[:2])}" under [projects.{project}] in hosts.toml')
    return problem, hint
