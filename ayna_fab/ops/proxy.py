"""The proxy's day-two side: the maintenance page, and what Caddy does for a project on a host.

The page is rendered here (pure) and written by the host program (hostprog/sitepage.py);
Caddy answers 503 with it, with Retry-After, while it exists (provision/caddyfile.py).
"""

from __future__ import annotations

import html
import json

from ayna_fab.commands import caddy as caddycmd
from ayna_fab.commands import hostcalls as hostcmd
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Config, Host, Project
from ayna_fab.config.sites import PAGE, Site, site
from ayna_fab.errors import UsageError
from ayna_fab.ops import answers
from ayna_fab.provision import caddyfile, unitfiles
from ayna_fab.remote.transport import Remote

DEFAULT_MESSAGE = "We are doing some maintenance and will be back shortly."


def page(project: str, message: str | None) -> str:
    """The maintenance page: the message as text, never as markup."""
    text = html.escape(message or DEFAULT_MESSAGE)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(project)}: maintenance</title>"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\n"
            f"<body style=\"font-family: sans-serif; max-width: 36em; margin: 4em auto\">"
            f"<h1>Back soon</h1><p>{text}</p></body></html>\n")


def require_site(config: Config, host: Host, project: Project, step: str) -> Site:
    found = site(config, host, project)
    if found is None:
        raise UsageError(f"{project.name} has no domains on {host.name}, so Caddy does not serve it", host=host.name,
                         step=step, hint=f"set projects.{project.name}.domains (or hosts.{host.name}.domains) "
                                         "and run setup")
    return found


def switch(config: Config, host: Host, project: Project, r: Remote, on: bool, message: str | None) -> dict:
    """Turn the project's maintenance page on (with `message`) or off on one host."""
    require_site(config, host, project, "maintenance")
    command = hostcmd.site_page(Layout.of(config, project), page(project.name, message) if on else None)
    return answers.read(host, r.run(command, check=False), "maintenance")


def caddy_state(s: Site, r: Remote, validate: bool = False) -> dict[str, str]:
    """Caddy on the host, the project's site file and its maintenance switch (changes nothing)."""
    return caddycmd.parse_state(r.run(caddycmd.state(s.project, f"{s.maintenance_dir}/{PAGE}", validate),
                                      check=False).stdout)


def summary(state: dict[str, str]) -> str:
    """One cell: `caddy active, site, maintenance on`."""
    if state.get("installed") != "1":
        return "caddy missing"
    parts = [f"caddy {state.get('active') or 'unknown'}",
             "site" if state.get("site") == "1" else "no site file"]
    if state.get("valid") == "0":
        parts.append("config INVALID")
    parts.append("maintenance on" if state.get("maintenance") == "1" else "maintenance off")
    return ", ".join(parts)


def probes(s: Site) -> list[tuple[str, str, str]]:
    """(domain, health path, tls) for every domain of the site: what validate asks Caddy for."""
    out = []
    for domain in s.domains:
        if s.web_port is not None and "web" in s.health:
            out.append((domain, s.health["web"], s.tls))
        elif s.api_prefix and "api" in s.health:
            out.append((domain, s.api_prefix + s.health["api"], s.tls))
    if "api" in s.health:
        out += [(domain, s.health["api"], s.tls) for domain in s.api_domains]
    return out


def problems(s: Site, state: dict[str, str], answers_: list[tuple[str, ...]]) -> list[str]:
    """What is wrong with the proxy of a site (pure): Caddy, the site file, every domain's health."""
    found = []
    if state.get("installed") != "1":
        return ["caddy is not installed: run setup"]
    if state.get("active") != "active":
        found.append(f"caddy is {state.get('active') or 'not running'}")
    if state.get("site") != "1":
        found.append(f"{caddyfile.path(s.project)} is missing: run setup")
    if state.get("imported") != "1":
        found.append(f"{caddyfile.MAIN} does not import the site files: run setup")
    if state.get("valid") == "0":
        found.append("caddy validate refuses the host's configuration")
    if state.get("media", "active") != "active":
        found.append(f"the media server ({unitfiles.media_name(s.project)}) is {state['media'] or 'missing'}: "
                     "run setup")
    for domain, path, head in answers_:
        parts = head.split(" ")
        if len(parts) < 2 or parts[1] != "200":
            found.append(f"https://{domain}{path} through Caddy: {head or 'no answer'}")
    if state.get("maintenance") == "1":
        found.append("maintenance is on (fab maintenance off)")
    return found


def check(config: Config, host: Host, project: Project, r: Remote) -> list[str] | None:
    """The proxy's problems for validate, or None when the project has no site on the host."""
    s = site(config, host, project)
    if s is None:
        return None
    state = caddy_state(s, r, validate=True)
    seen = []
    if state.get("installed") == "1":

        out = r.run(caddycmd.probe(probes(s)), check=False).stdout
        seen = [tuple(json.loads(line)) for line in out.splitlines() if line.startswith("[")]
    return problems(s, state, seen)
