"""The standard's seven conformance checks, for a project's source and for a host.

Pure: local checks read the project's files; host checks judge facts gathered
in one round trip (the host program's facts call, hostprog/facts.py). Each check is one ✓/✗ line with reasons.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from ayna_fab.config import sites
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Config, Host, Project
from ayna_fab.provision import envcheck as envfile, envwriter, sudoers, unitfiles as units

MAKE_TARGETS = ("run", "deploy", "rollback", "migrate", "shell", "logs", "start", "stop", "restart",
                "status", "validate")
POE_TASKS = ("dev", "deploy", "rollback", "migrate", "shell", "logs", "services:start", "services:stop",
             "services:restart", "services:status")


@dataclass(frozen=True)
class Check:
    number: int
    title: str
    problems: tuple[str, ...]      # empty: the check holds

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _check(number: int, title: str, problems: list[str]) -> Check:
    return Check(number, title, tuple(problems))


# --- the project's source -------------------------------------------------------------

def local_checks(config: Config, project: Project, source: Path | None = None) -> list[Check]:
    src = Path(source or project.source)
    makefile = _read(src / "Makefile")
    pyproject = _read(src / "pyproject.toml")
    checks = [
        _check(1, "required files exist (Makefile, pyproject.toml, .template-version)",
               [f"{name} is missing" for name in ("Makefile", "pyproject.toml", ".template-version")
                if not (src / name).is_file()]),
        _check(2, "required directories exist (scripts/, systemd/)",
               [f"{name}/ is missing" for name in ("scripts", "systemd") if not (src / name).is_dir()]),
        _check(3, "Makefile has every required target",
               ["no Makefile"] if makefile is None else
               [f"target '{t}' is missing" for t in MAKE_TARGETS
                if not re.search(rf"^{re.escape(t)}\s*:", makefile, re.M)]),
        _check(4, "Poe tasks are defined in pyproject.toml", _poe_problems(pyproject)),
        _check(5, "systemd units exist and match what setup installs",
               _local_unit_problems(config, project, src)),
        _check(6, "ports match the registry and bind 127.0.0.1", _local_port_problems(project, src)),
        _check(7, "environment variables are documented in .env.example", _env_doc_problems(project, src)),
    ]
    return checks


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _poe_problems(pyproject: str | None) -> list[str]:
    if pyproject is None:
        return ["no pyproject.toml"]
    try:
        tasks = tomllib.loads(pyproject).get("tool", {}).get("poe", {}).get("tasks")
    except tomllib.TOMLDecodeError as exc:
        return [f"pyproject.toml does not parse: {exc}"]
    if not isinstance(tasks, dict):
        return ["pyproject.toml has no [tool.poe.tasks]"]
    return [f"Poe task '{t}' is missing" for t in POE_TASKS if t not in tasks]


def _local_unit_problems(config: Config, project: Project, src: Path) -> list[str]:
    rendered = units.render_all(config, None, project)
    out = []
    for name, text in rendered.items():
        have = _read(src / "systemd" / name)
        if have is None:
            out.append(f"systemd/{name} is missing")
        elif have != text:
            out.append(f"systemd/{name} differs from the unit setup installs "
                       f"(first difference at line {_first_diff_line(have, text)})")
    return out


def _first_diff_line(a: str, b: str) -> int:
    for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines()), 1):
        if x != y:
            return i
    return min(len(a.splitlines()), len(b.splitlines())) + 1


def _unit_ports(text: str) -> list[tuple[str, int]]:
    """(address, port) pairs a unit's ExecStart binds: --bind A:P, or --host A --port P."""
    pairs = [(a, int(p)) for a, p in re.findall(r"--bind[= ]+([\w.:\[\]]+?):(\d+)", text)]
    host = re.search(r"--host[= ]+(\S+)", text)
    port = re.search(r"--port[= ]+(\d+)", text)
    if port:
        pairs.append((host.group(1) if host else "0.0.0.0", int(port.group(1))))
    return pairs


def _port_problems_in_unit(name: str, text: str, project: Project) -> list[str]:
    out = []
    for service in ("web", "api"):
        if name in units.service_units(project, service) or name == units.standard_name(project, service):
            binds = _unit_ports(text)
            want = project.port(service)
            if not binds:
                out.append(f"{name} binds no port (expected 127.0.0.1:{want})")
            for addr, port in binds:
                if port != want:
                    out.append(f"{name} binds port {port}, the registry gives {project.name} {service} {want}")
                if addr != "127.0.0.1":
                    out.append(f"{name} binds {addr}, not 127.0.0.1")
    return out


def _local_port_problems(project: Project, src: Path) -> list[str]:
    out = []
    for service in ("web", "api"):
        if service in project.services:
            name = units.standard_name(project, service)
            text = _read(src / "systemd" / name)
            if text is not None:
                out += _port_problems_in_unit(name, text, project)
    example = _read(src / ".env.example")
    if example is not None:
        values = envfile.parse(example)
        for key, service in (("WEB_PORT", "web"), ("API_PORT", "api")):
            if key in values and values[key] != str(project.port(service)):
                out.append(f".env.example has {key}={values[key]}, the registry gives {project.port(service)}")
    return out


def _env_doc_problems(project: Project, src: Path) -> list[str]:
    example = _read(src / ".env.example")
    if example is None:
        return [".env.example is missing"]
    values = envfile.parse(example)
    return [f".env.example does not document {key}" for key in envfile.REQUIRED if key not in values]


# --- a host -----------------------------------------------------------------------------

def host_checks(config: Config, host: Host, project: Project, facts: dict) -> list[Check]:
    lay = Layout.of(config, project)
    user = host.user
    rendered = units.render_all(config, host, project)

    layout = []
    for path, owner, group, mode in lay.dirs(user, served=sites.site(config, host, project) is not None):
        st = facts["dirs"].get(path)
        if st is None or not st["dir"]:
            layout.append(f"{path} is missing")
        elif (st["owner"], st["group"], st["mode"]) != (owner, group, mode):
            layout.append(f"{path} is {st['owner']}:{st['group']} {st['mode']}, expected {owner}:{group} {mode}")

    access = []
    if not facts["user"]["exists"]:
        access.append(f"deploy user {user} does not exist")
    elif "systemd-journal" in facts["user"]["groups"]:
        access.append(f"{user} is in systemd-journal: it reads every service's logs (run setup)")
    sudo = facts.get("sudo") or ""
    if sudoers.journal_reader(project.name) not in sudo:
        access.append(f"{user} may not read its units' logs with sudo {sudoers.journal_reader(project.name)}")
    if envwriter.path(project.name) not in sudo:
        access.append(f"{user} may not replace its env file with sudo {envwriter.path(project.name)} (run setup)")
    for name in units.unit_names(project):
        if f"/usr/bin/systemctl restart {name}" not in sudo:
            access.append(f"{user} may not run 'systemctl restart {name}' with sudo")

    present, match, enabled, ports = [], [], [], []
    for name, text in rendered.items():
        u = facts["units"].get(name) or {}
        if not u.get("sha256"):
            present.append(f"{name} is not installed")
            continue
        if u["sha256"] != hashlib.sha256(text.encode()).hexdigest():
            match.append(f"{name} differs from its template (run setup)")
        if u.get("enabled") != "enabled":
            enabled.append(f"{name} is {u.get('enabled') or 'not enabled'}")
        ports += _port_problems_in_unit(name, text, project) if u["sha256"] else []
    for addr, port in facts.get("listening", []):
        if project.ports.base <= port <= project.ports.last and addr not in ("127.0.0.1", "::1"):
            ports.append(f"something listens on {addr}:{port}: the registry's ports bind 127.0.0.1 only")

    env = []
    st = facts["env"]["stat"]
    if st is None:
        env.append(f"{lay.env_file} is missing")
    else:
        if (st["owner"], st["group"], st["mode"]) != ("root", user, "640"):
            env.append(f"{lay.env_file} is {st['owner']}:{st['group']} {st['mode']}, expected root:{user} 640")
        if facts["env"]["text"] is None:
            env.append(f"{lay.env_file} is not readable by {facts['whoami']}")
        else:
            env += envfile.problems(envfile.parse(facts["env"]["text"]), project.name,
                                    project.port("web"), project.port("api"))
    return [
        _check(1, "layout: directories exist with their owners and modes", layout),
        _check(2, f"deploy user {user}: exists, reads logs, may manage its units and nothing more", access),
        _check(3, "systemd units are installed", present),
        _check(4, "installed units match their templates", match),
        _check(5, "units are enabled", enabled),
        _check(6, "ports match the registry and bind 127.0.0.1", ports),
        _check(7, f"environment file {lay.env_file}: present, private, complete", env),
    ]
